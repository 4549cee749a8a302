"""Make docs/img/monitor-report.png: the HTML monitoring report of a shifted AI4I window.

    python docs/img/monitor_report.py            (needs chromium on PATH; about a minute)

A throwaway project trains on 3,000 random AI4I 2020 rows (budget 10 s), then 2,000 other rows
are shifted as in the issue (process temperature +1.5 K on half of them, torque × 1.2) and
compared with `planta monitor failure --current shifted.csv --html report.html`; Chromium
renders the report headless and the screenshot lands next to this script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def main() -> None:
    from planta.services.demo import demo_data

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    work = Path(tempfile.mkdtemp(prefix="planta-report-"))
    root = work / "plant"
    raw = pd.read_csv(demo_data())
    raw = raw.iloc[np.random.default_rng(1).permutation(len(raw))].reset_index(drop=True)
    raw.iloc[:3000].to_csv(work / "history.csv", index=False)
    shifted = raw.iloc[3000:5000].copy()
    rng = np.random.default_rng(2)
    shifted["Torque [Nm]"] *= 1.2
    half = rng.random(len(shifted)) < 0.5
    shifted.loc[half, "Process temperature [K]"] += 1.5
    shifted.to_csv(work / "shifted.csv", index=False)

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
    planta("monitor", "failure", "--current", str(work / "shifted.csv"), "--html",
           str(work / "report.html"))
    target = HERE / "monitor-report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1200,1900",
                    f"--screenshot={target}", f"file://{work / 'report.html'}"],
                   check=True, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    print(target)


if __name__ == "__main__":
    main()
