"""The use-case wizard against a real `planta serve`: upload the AI4I sample, preview it, pick
the target (suggested), state the objective in plain terms, read the data-quality and leakage
report, train with a tiny budget while polling the progress JSON, and find the new use case on
/ui and /v1/usecases. Bad uploads get a plain message and change nothing."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from servers import PLANTA, Server, launch

from planta.services.demo import demo_data
from planta.services.workspace import Workspace
from planta.ui.i18n import translator
from planta.ui.wizard import objective_text, suggest_targets, suggest_task

ROWS = 1500
BUDGET_S = "2"


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _section(html: str, section_id: str) -> str:
    found = re.search(rf'<section[^>]*id="{section_id}".*?</section>', html, flags=re.S)
    assert found, section_id
    return _text(found.group(0))


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    return pd.read_csv(demo_data()).iloc[:ROWS]


@pytest.fixture(scope="module")
def ai4i_csv(ai4i: pd.DataFrame) -> bytes:
    return ai4i.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def wserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own on a new project with one use case and no model yet (the
    wizard adds use cases and models; no trained fixture needed, so the module stays fast)."""
    root = tmp_path_factory.mktemp("wizard") / "plant"
    env = os.environ | {"PLANTA_USER": "trainer"}
    subprocess.run([PLANTA, "init", str(root)], check=True, capture_output=True, env=env)
    subprocess.run([PLANTA, "usecase", "add", "failure", "--target", "Machine failure",
                    "--objective", "recall>=0.5"], cwd=root, check=True, capture_output=True,
                   env=env)
    srv = launch(root, wait_ready=False)
    yield srv
    srv.stop()


def _audit(root: Path) -> list[tuple[str, str, str]]:
    ws = Workspace.open(root)
    try:
        return [(e.action, e.subject, e.actor) for e in ws.audit.events(limit=None)]
    finally:
        ws.close()


def _upload(c: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return c.post("/ui/wizard/upload", files={"file": (name, data, "application/octet-stream")},
                  follow_redirects=False)


# -- pure parts -------------------------------------------------------------------------------


def test_objective_in_plain_terms_maps_to_the_spec_grammar() -> None:
    t = translator("en")
    assert objective_text("binary", {"recall": "80", "precision": "50"}, t) == \
        "recall>=0.80 and precision>=0.50"
    assert objective_text("binary", {"recall": "85,5 %", "precision": ""}, t) == "recall>=0.855"
    assert objective_text("multiclass", {"accuracy": "90"}, t) == "accuracy>=0.90"
    assert objective_text("regression", {"rmse": "12"}, t) == "rmse<=12"
    for task, form in (("binary", {"recall": "180"}), ("binary", {"recall": "lots"}),
                       ("binary", {"recall": "80", "precision": "0"}),
                       ("regression", {"rmse": "-1"}), ("multiclass", {})):
        with pytest.raises(Exception, match="not"):
            objective_text(task, form, t)


def test_targets_and_task_are_suggested(ai4i: pd.DataFrame) -> None:
    from planta.ui.wizard import column_kind

    kinds = {str(c): column_kind(ai4i[c]) for c in ai4i.columns}
    targets = suggest_targets(ai4i, kinds)
    assert targets[0] == "Machine failure"
    assert "UDI" not in targets and "Product ID" not in targets
    assert suggest_task(ai4i["Machine failure"]) == "binary"
    assert suggest_task(ai4i["Type"]) == "multiclass"
    assert suggest_task(ai4i["Torque [Nm]"]) == "regression"


# -- the whole path over HTTP -----------------------------------------------------------------


def test_upload_preview_create_report_train(wserver: Server, ai4i_csv: bytes) -> None:
    label = f"ai4i-{uuid.uuid4().hex[:8]}.csv"
    with wserver.client() as c:
        r = _upload(c, label, ai4i_csv)
        assert r.status_code == 303, r.text
        draft = r.headers["location"]
        assert re.fullmatch(r"/ui/wizard/[A-Za-z0-9_-]+", draft)

        # Preview: the first rows, the columns with their kinds, likely targets.
        page = c.get(draft)
        assert page.status_code == 200, page.text
        text = _text(page.text)
        assert f"{label}: 1,500 rows and 14 columns" in text
        columns = _text(re.search(r'<table id="columns">.*?</table>', page.text, re.S).group(0))
        for column in ("UDI", "Product ID", "Air temperature [K]", "Machine failure", "TWF"):
            assert column in columns
        assert "whole numbers" in columns and "numbers" in columns
        suggestions = _text(re.search(r'<p id="suggestions">.*?</p>', page.text, re.S).group(0))
        assert "Machine failure" in suggestions
        assert 'name="recall"' not in page.text  # no objective before a target

        # Target picked: the task is suggested, the objective asked in plain terms.
        page = c.get(draft, params={"target": "Machine failure"})
        assert '<option value="binary" selected>' in page.text
        assert "Suggested for “Machine failure”: yes or no (binary)." in _text(page.text)
        assert 'name="recall"' in page.text and 'name="precision"' in page.text

        r = c.post(f"{draft}/create", data={
            "target": "Machine failure", "task": "binary", "name": "wfail",
            "recall": "80", "precision": "50"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/ui/usecases/wfail/data"
        # The uploaded file is gone once ingested.
        leftovers = list(Path(tempfile.gettempdir()).glob(f"planta-wizard-*/{label}"))
        assert leftovers == []
        assert c.get(draft).status_code == 404

        config = tomllib.loads((wserver.root / "planta.toml").read_text())
        assert config["usecases"]["wfail"] == {"task": "binary", "target": "Machine failure",
                                               "objective": "recall>=0.80 and precision>=0.50"}
        actions = [a for a in _audit(wserver.root) if "wfail" in a[1]]
        assert [a[0] for a in actions] == ["usecase_add", "contract_create", "ingest"]
        assert {a[2] for a in actions} == {"operator"}   # the caller (local user here)

        # The data-quality and leakage report, in the CLI's words.
        page = c.get("/ui/usecases/wfail/data")
        assert page.status_code == 200
        quality = _section(page.text, "quality")
        assert f"{label} → dataset version 1: 1,500 rows read, 1,500 accepted" in quality
        leakage = _section(page.text, "leakage")
        for column in ("UDI", "Product ID", "TWF", "PWF", "OSF"):
            assert f"{column}:" in leakage
        assert "it counts rows" in leakage and "describe the outcome" in leakage
        assert "catch at least 80 % of the real cases" in _text(page.text)

        # Training in a server thread; the progress JSON shows trials, then the version.
        r = c.post("/ui/usecases/wfail/train", data={"budget": BUDGET_S},
                   follow_redirects=False)
        assert r.status_code == 303, r.text
        progress = r.headers["location"]
        assert re.fullmatch(r"/ui/usecases/wfail/training/[0-9a-f]{16}", progress)
        page = c.get(progress)
        assert page.status_code == 200
        assert 'src="/ui/static/wizard.js"' in page.text
        if 'data-status="running"' in page.text:
            assert '<noscript><meta http-equiv="refresh"' in page.text
        seen_trials = 0
        deadline = time.monotonic() + 60
        while True:
            run = c.get(progress + ".json").json()
            assert run["ok"] is True
            seen_trials = max(seen_trials, run["n_trials"])
            if run["status"] != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert run["status"] == "done", run
        assert seen_trials > 0 and run["trials"] and run["trials"][0]["estimator"]
        version = run["version"]
        assert isinstance(version, int) and version >= 1
        assert run["model_url"] == f"/ui/usecases/wfail?version={version}"
        page = c.get(progress)
        assert "noscript" not in page.text
        assert f'href="/ui/usecases/wfail?version={version}"' in page.text
        assert c.get(run["model_url"]).status_code == 200
        train_events = [a for a in _audit(wserver.root) if a[0] == "train" and "wfail" in a[1]]
        assert train_events == [("train", f"usecase/wfail/model/{version}", "operator")]

        # The new use case is on the home page and, through the hub, on the API.
        assert "/ui/usecases/wfail" in c.get("/ui").text
        names = []
        for _ in range(20):
            names = [u["name"] for u in c.get("/v1/usecases").json()["usecases"]]
            if "wfail" in names:
                break
            time.sleep(0.25)
        assert "wfail" in names and "failure" in names

        # Progress of an unknown training: a plain 404 in JSON and in HTML.
        missing = c.get("/ui/usecases/wfail/training/0123456789abcdef.json")
        assert missing.status_code == 404 and missing.json()["ok"] is False
        assert c.get("/ui/usecases/failure/training/" + progress[-16:]).status_code == 404


def test_bad_uploads_get_a_plain_message_and_change_nothing(wserver: Server) -> None:
    before = _audit(wserver.root)
    config = (wserver.root / "planta.toml").read_text()
    cases = [("empty.csv", b"", "empty.csv: the file is empty."),
             ("notes.pdf", b"%PDF-1.4 ...", "notes.pdf: planta reads tables only from"),
             ("header.csv", b"a,b,c\n", "header.csv"),
             ("binary.csv", bytes(range(256)) * 40, "binary.csv")]
    with wserver.client() as c:
        for name, data, expected in cases:
            r = _upload(c, name, data)
            assert r.status_code == 422, (name, r.status_code)
            text = _text(r.text)
            assert expected in text, (name, text)
            assert "Traceback" not in r.text and "planta-wizard-" not in r.text
            assert 'role="alert"' in r.text
        r = c.post("/ui/wizard/upload", data={"nothing": "here"}, follow_redirects=False)
        assert r.status_code == 400 and "Choose a file" in _text(r.text)
        assert c.get("/ui/wizard/not-a-draft").status_code == 404
    assert _audit(wserver.root) == before
    assert (wserver.root / "planta.toml").read_text() == config


def test_refused_objective_or_name_keeps_the_draft_and_writes_nothing(
        wserver: Server, ai4i_csv: bytes) -> None:
    before = _audit(wserver.root)
    with wserver.client() as c:
        draft = _upload(c, "again.csv", ai4i_csv).headers["location"]
        base = {"target": "Machine failure", "task": "binary", "name": "other"}
        for form, status, words in (
                (base | {"recall": "120"}, 400, "“120” is not a share between 0 and 100 %"),
                (base | {"recall": "80", "name": "failure"}, 400,
                 "There is already a use case called failure"),
                (base | {"recall": "80", "name": "Bad Name"}, 400, "must be lower-case"),
                (base | {"target": "Type", "task": "regression", "rmse": "1"}, 422,
                 "not a column of numbers")):
            r = c.post(f"{draft}/create", data=form, follow_redirects=False)
            assert r.status_code == status, (form, r.status_code, _text(r.text)[:300])
            assert words in _text(r.text)
            assert 'id="preview"' in r.text  # the same draft, shown again with the message
        assert c.get(draft).status_code == 200
    assert _audit(wserver.root) == before


def test_a_wizard_page_in_spanish(wserver: Server, ai4i_csv: bytes) -> None:
    with wserver.client() as c:
        start = _text(c.get("/ui/wizard", params={"lang": "es"}).text)
        assert "Nuevo caso de uso" in start and "Subir y ver" in start
        draft = _upload(c, "es.csv", ai4i_csv).headers["location"]
        page = _text(c.get(draft, params={"target": "Machine failure"}).text)
    assert "Columnas, y cómo las lee planta" in page
    assert "Sugerido para «Machine failure»: sí o no (binaria)." in page
    assert "Detectar al menos esta parte de los casos reales" in page
