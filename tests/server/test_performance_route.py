"""GET /v1/usecases/{name}/performance against a real `planta serve` process: the same
document as `planta performance --json`, realised where labels came back, estimated elsewhere,
and plain 4xx answers for bad questions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from servers import GOOD_RECORD, PLANTA, launch

URL = "/v1/usecases/failure/performance"


def _records(n: int) -> list[dict[str, Any]]:
    return [GOOD_RECORD | {"torque_nm": 20.0 + 5 * (i % 9), "tool_wear_min": (11 * i) % 240,
                           "type": "LMH"[i % 3]} for i in range(n)]


def test_performance_route_matches_the_cli(project_copy: Path) -> None:
    server = launch(project_copy)
    try:
        with server.client() as c:
            answers = c.post("/v1/usecases/failure/predict",
                             json={"records": _records(60)}).json()["predictions"]
            ids = [a["prediction_id"] for a in answers]
            # Ground truth for 40 of the 60: the first 20 failures, the next 20 not.
            sent = c.post("/v1/usecases/failure/feedback", json={"feedback": [
                {"prediction_id": pid, "value": int(i < 20)} for i, pid in enumerate(ids[:40])]})
            assert sent.status_code == 200, sent.text
            r = c.get(URL, params={"since": "2h", "window": "1h"})
            assert r.status_code == 200, r.text
            doc = r.json()
            bad_window = c.get(URL, params={"window": "fortnight"})
            too_long = c.get(URL, params={"since": "900d"})
            unknown = c.get("/v1/usecases/boiler/performance")
            bad_since = c.get(URL, params={"since": "yesterday-ish"})
    finally:
        server.stop()
    assert doc["usecase"] == "failure" and doc["task"] == "binary"
    assert doc["window_s"] == 3600 and doc["metric"] == "recall"
    assert sum(w["n_predictions"] for w in doc["windows"]) == 60
    assert sum(w["n_labelled"] for w in doc["windows"]) == 40
    labelled = [w for w in doc["windows"] if w["realised"]]
    assert labelled and {"recall", "precision"} <= set(labelled[-1]["realised"])
    # The ranking metrics are left out of the windows unless the objective names them.
    assert "roc_auc" not in labelled[-1]["realised"]
    assert doc["windows"][-1]["estimated"] or doc["windows"][-2]["estimated"]
    assert doc["signals"]["labelled_rows_total"] == 40.0
    # The CLI reads the same log into the same document.
    cli = subprocess.run([PLANTA, "performance", "failure", "--since", doc["since"],
                          "--until", doc["until"], "--window", "1h", "--json"],
                         cwd=project_copy, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    from_cli = json.loads(cli.stdout)
    assert [w["n_predictions"] for w in from_cli["windows"]] == \
        [w["n_predictions"] for w in doc["windows"]]
    assert from_cli["windows"][-1]["realised"] == doc["windows"][-1]["realised"]
    assert bad_window.status_code == 400 and "window width" in bad_window.text
    assert too_long.status_code == 400 and "longer than" in too_long.text
    assert unknown.status_code == 404
    assert bad_since.status_code == 400


def test_warm_up_fills_the_caches_the_pages_read(project_copy: Path) -> None:
    from planta.services.warmup import warm_caches
    from planta.services.workspace import Workspace

    ws = Workspace.open(project_copy)
    try:
        done = warm_caches(ws, ["failure", "boiler"])
    finally:
        ws.close()
    failure, boiler = (d.to_dict() for d in done)
    assert failure["skipped"] is None
    assert failure["drift_s"] is not None and failure["performance_s"] is not None
    assert list((project_copy / ".planta" / "cache" / "monitor" / "failure").rglob("*.json"))
    assert boiler["skipped"] and "boiler" in boiler["skipped"]
