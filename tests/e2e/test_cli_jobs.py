"""Async jobs through the `planta` command: a file job scored by `planta worker --once`, its
result fetched with `planta jobs show -o`, and a worker process stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from clikit import PLANTA, planta, planta_json, runner

from planta.cli.app import app
from planta.services.demo import demo_data
from planta.services.jobs import submit_file, submit_records
from planta.services.workspace import Workspace
from planta.store.jobs import JobQueue
from planta.store.predictions import PredictionLog

DEADLINE_S = 30.0




@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("cli-jobs") / "plant-a"
    cwd = os.getcwd()
    planta("init", str(root))
    os.chdir(root)
    try:
        raw = pd.read_csv(demo_data())
        raw.iloc[:1500].to_csv(root / "history.csv", index=False)
        new = raw.iloc[9000:9040].drop(columns=["Machine failure"])
        new.loc[new.index[5], "Torque [Nm]"] = -7.0    # below the physical minimum
        new.loc[new.index[9], "Type"] = "X"            # not a known category
        new.to_csv(root / "march.csv", index=False)
        planta("usecase", "add", "failure", "--target", "Machine failure", "--task", "binary",
               "--objective", "recall>=0.10")
        planta_json("ingest", "failure", "history.csv")
        trained = runner.invoke(app, ["train", "failure", "--budget", "2", "--json"])
        assert trained.exit_code in (0, 3), trained.output
        state = json.loads(trained.output)["state"]
        planta("promote", "failure", "1", "--reason", "jobs test",
               *(["--exception"] if state == "rejected" else []))
        yield root
    finally:
        os.chdir(cwd)


def test_file_job_is_scored_by_worker_once_like_planta_score(project: Path) -> None:
    ws = Workspace.open(project)
    try:
        job = submit_file(ws, "failure", "march.csv", (project / "march.csv").read_bytes(),
                          caller="line-3-mes", options={"format": "parquet"})
    finally:
        ws.close()
    listed = planta_json("jobs", "--status", "queued")
    assert [j["id"] for j in listed] == [job.id]
    out = planta_json("worker", "--once")
    assert out["handled"] is True and out["job"]["id"] == job.id
    assert out["job"]["status"] == "done"
    assert out["job"]["result_name"] == "scored-march.parquet"
    assert out["job"]["summary"]["rows"] == 40 and out["job"]["summary"]["rejected"] == 2

    shown = planta_json("jobs", "show", job.id, "-o", "result.parquet")
    assert shown["status"] == "done" and shown["saved_to"] == "result.parquet"
    result = pd.read_parquet(project / "result.parquet")
    planta_json("score", "failure", "march.csv", "-o", "direct.parquet")
    direct = pd.read_parquet(project / "direct.parquet")
    assert len(result) == 40
    assert result["status"].tolist() == direct["status"].tolist()
    assert result["reason"].tolist() == direct["reason"].tolist()
    rejected = result[result["status"] == "rejected"]
    assert sorted(rejected.index.tolist()) == [5, 9]
    assert rejected["reason"].str.startswith(("below_physical", "below_min",
                                              "unknown_category")).all()
    ok = result[result["status"] == "ok"]
    assert ok["prediction"].notna().all() and ok["probability"].between(0, 1).all()
    ws = Workspace.open(project)
    try:
        with PredictionLog(ws.store) as log:
            logged = log.query("failure", limit=100)
    finally:
        ws.close()
    assert len(logged) == 38 and {r.request_id for r in logged} == {job.id}
    # The batch and its audit event name the job's caller, not the worker's OS user.
    events = planta_json("audit", "log", "--action", "score")
    assert any(e["actor"] == "line-3-mes" for e in events)

    text = planta("jobs")
    assert job.id in text and "done" in text
    text = planta("jobs", "show", job.id)
    assert "scored-march.parquet" in text and "line-3-mes" in text
    assert "No job is waiting" in planta("worker", "--once")


def test_mistakes_get_one_line(project: Path) -> None:
    out = planta("jobs", "show", "01J9ZQ4M6T3V8K2X5N7R0B1C4D", code=1)
    assert "no job" in out.lower()
    out = planta("jobs", "--status", "lost", code=1)
    assert "lost" in out
    ws = Workspace.open(project)
    try:
        job = submit_records(ws, "failure", [{"Type": "L"}], caller="ana")
        JobQueue(ws.store).cancel(job.id, "ana")
    finally:
        ws.close()
    out = planta("jobs", "show", job.id, "-o", "nothing.json", code=1)
    assert "cancelled" in out and not (project / "nothing.json").exists()


def test_worker_process_scores_then_stops_cleanly_on_sigterm(project: Path) -> None:
    ws = Workspace.open(project)
    try:
        records = pd.read_csv(project / "march.csv").head(3).to_dict(orient="records")
        job = submit_records(ws, "failure", records, caller="ana")
        proc = subprocess.Popen([PLANTA, "worker", "--poll", "0.1"], cwd=project,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while JobQueue(ws.store).get(job.id).status != "done":
                assert proc.poll() is None and time.monotonic() < deadline, \
                    proc.stdout.read() if proc.stdout else ""
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=DEADLINE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out
        assert "SIGTERM" in out and "stopped after 1 job" in out
        planta("jobs", "show", job.id, "-o", "r.json")
        doc = json.loads((project / "r.json").read_text())
        assert [r["status"] for r in doc["results"]] == ["ok", "ok", "ok"]
    finally:
        ws.close()
