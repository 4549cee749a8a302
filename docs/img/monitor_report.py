"""Make docs/img/monitor-report.png: the HTML monitoring report of a week of prediction log.

    python docs/img/monitor_report.py            (needs chromium on PATH; about a minute)

A throwaway project trains on 3,000 random AI4I 2020 rows (budget 10 s). A week of other rows
is scored by that model and written to the prediction log (600 a day); from day 4 on they are
shifted as in the issue (process temperature +1.5 K on half of them, torque × 1.2), and the
outcomes of the first five days come back as feedback. Then `planta monitor failure --since
… --until … --html report.html` reports the whole week; Chromium renders it headless and the
screenshot, reduced to 64 colours, lands next to this script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PER_DAY = 600
DAYS = 7


def _log_week(root: Path, raw: pd.DataFrame, start: datetime) -> None:
    """Score a week of rows with the production model and log them, with feedback."""
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle
    from planta.services.workspace import Workspace
    from planta.store.feedback import FeedbackStore
    from planta.store.ids import reserve
    from planta.store.predictions import LogEntry, PredictionLog

    ws = Workspace.open(root)
    scorer = Scorer.from_bundle(load_bundle(ws, "failure"), version=1)
    week = raw.iloc[3000:3000 + DAYS * PER_DAY].reset_index(drop=True)
    rng = np.random.default_rng(2)
    shifted = week.index >= 3 * PER_DAY
    week.loc[shifted, "Torque [Nm]"] *= 1.2
    week.loc[shifted & (rng.random(len(week)) < 0.5), "Process temperature [K]"] += 1.5
    records = [{f.name: row[f.label] for f in scorer.contract.inputs}
               for row in week.to_dict("records")]
    batch = scorer.predict(records, range_policy="flag")
    log = PredictionLog(ws.store)
    labels = []
    try:
        for i, record in enumerate(records):
            first = reserve(1)
            outputs = {"prediction": [batch.prediction[i]],
                       "probability": [batch.probability[i]], "score": None}  # type: ignore
            entry = LogEntry(first_id=first, n=1, usecase="failure", version=1,
                             at=start + timedelta(seconds=i * 86400 / PER_DAY),
                             route="production", channel="sync", caller="line-4",
                             inputs_json=json.dumps([record], default=str),
                             outputs_json=json.dumps(outputs, default=str))
            log.write_now(entry) if i == len(records) - 1 else log.submit(entry)
            if i < 5 * PER_DAY:
                labels.append({"prediction_id": entry.prediction_id,
                               "value": int(week.loc[i, "Machine failure"])})
        FeedbackStore(ws.store, log).add("failure", labels, actor="qa", source="picture")
    finally:
        log.close()
        ws.close()


def main() -> None:
    from planta.services.demo import demo_data

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    work = Path(tempfile.mkdtemp(prefix="planta-report-"))
    root = work / "plant"
    raw = pd.read_csv(demo_data())
    raw = raw.iloc[np.random.default_rng(1).permutation(len(raw))].reset_index(drop=True)
    # The sensors and the outcome (the failure-mode columns are known only after a failure).
    raw = raw.drop(columns=["UDI", "Product ID", "TWF", "HDF", "PWF", "OSF", "RNF"])
    raw.iloc[:3000].to_csv(work / "history.csv", index=False)

    def planta(*args: str) -> None:
        subprocess.run(["planta", *args], cwd=root, check=True, stdout=subprocess.DEVNULL)

    subprocess.run(["planta", "init", str(root)], check=True, stdout=subprocess.DEVNULL)
    planta("usecase", "add", "failure", "--target", "Machine failure",
           "--objective", "recall>=0.5")
    planta("ingest", "failure", str(work / "history.csv"))
    trained = subprocess.run(["planta", "train", "failure", "--budget", "10"], cwd=root,
                             stdout=subprocess.DEVNULL)
    # Exit 3: the gate rejected it; the picture needs a model in production all the same.
    exception = ["--exception"] if trained.returncode == 3 else []
    planta("promote", "failure", "1", "--reason", "documentation picture", *exception)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    _log_week(root, raw, start)
    planta("monitor", "failure", "--since", start.isoformat(), "--until", end.isoformat(),
           "--html", str(work / "report.html"))
    target = HERE / "monitor-report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1200,3350",
                    f"--screenshot={target}", f"file://{work / 'report.html'}"],
                   check=True, capture_output=True)
    from PIL import Image

    with Image.open(target) as image:  # 64 colours keep the README light (< 200 kB)
        image.convert("RGB").quantize(colors=64).save(target, optimize=True)
    shutil.rmtree(work, ignore_errors=True)
    print(target)


if __name__ == "__main__":
    main()
