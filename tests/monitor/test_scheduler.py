"""The scheduler (planta.services.scheduler): catch-up once after downtime, retries with
backoff, one scheduler per project through a lease (threads, two real processes on SQLite and
PostgreSQL), and a kill -9 of a real `planta scheduler` handing the lease to the scheduler
inside a real `planta serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from receivers import free_port
from typer.testing import CliRunner

from planta.cli.app import app
from planta.core.schedule import JobSpec, SchedulerConfig
from planta.errors import StateError
from planta.services.scheduler import LEASE_NAME, JobRun, Scheduler
from planta.services.workspace import Workspace
from planta.store.schedule import ScheduleStore

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DEADLINE_S = 60.0


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class Recorder:
    """A job function that records its runs and fails while ``failures`` is above zero."""

    def __init__(self, failures: int = 0) -> None:
        self.runs: list[JobRun] = []
        self.failures = failures

    def __call__(self, ws: Workspace, spec: JobSpec, run: JobRun) -> dict[str, Any]:
        self.runs.append(run)
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("the historian did not answer")
        return {"ok": True}


def scheduler(ws: Workspace, clock: Clock, job: Recorder, *, schedule: str = "*/15 * * * *",
              owner: str = "a") -> Scheduler:
    config = SchedulerConfig(jobs=(JobSpec("probe:failure", "probe", schedule, "failure"),))
    return Scheduler(ws, config=config, jobs={"probe": job}, owner=owner, clock=clock,
                     retrain=lambda *a, **k: None)


@pytest.fixture
def ws(tmp_path: Path, make_project):
    make_project(tmp_path)
    workspace = Workspace.open(tmp_path)
    yield workspace
    workspace.close()


def test_a_missed_run_is_caught_up_once_after_downtime(ws: Workspace) -> None:
    clock, job = Clock(), Recorder()
    s = scheduler(ws, clock, job)
    assert s.tick() == []                       # first seen at 08:00: the first run is 08:15
    clock.advance(minutes=15)
    [first] = s.tick()
    assert first.ok and first.scheduled_for == T0 + timedelta(minutes=15) and first.missed == 0
    assert s.tick() == []                       # the same time never runs twice
    # Down for a day: 96 quarter-hours pass; a new scheduler comes up.
    clock.advance(days=1, minutes=7)
    s2 = scheduler(ws, clock, job, owner="b")
    clock.advance(seconds=31)                   # a's lease has run out
    [caught] = s2.tick()
    assert caught.scheduled_for == T0 + timedelta(days=1, minutes=15)
    assert caught.missed == 95
    assert len(job.runs) == 2 and job.runs[1].missed == 95
    assert s2.tick() == []
    clock.advance(minutes=8)
    assert [r.scheduled_for for r in s2.tick()] == [T0 + timedelta(days=1, minutes=30)]
    [event] = ws.audit.events(action="schedule_catch_up")
    assert event.payload["missed"] == 95


def test_a_failing_job_is_retried_with_backoff_then_given_up_and_reported(ws: Workspace) -> None:
    clock, job = Clock(), Recorder(failures=10)
    s = scheduler(ws, clock, job, schedule="0 * * * *")
    s.tick()
    clock.advance(hours=1)
    [r1] = s.tick()
    assert not r1.ok and r1.retry_at == clock.at + timedelta(seconds=30)
    assert r1.error == "RuntimeError: the historian did not answer"
    assert s.tick() == []                       # waiting for the backoff
    waits = []
    for attempt in (2, 3, 4):
        waits.append((s.state.get("probe:failure").retry_at - clock.at).total_seconds())
        clock.at = s.state.get("probe:failure").retry_at
        [r] = s.tick()
        assert r.attempt == attempt and r.scheduled_for == T0 + timedelta(hours=1)
    assert waits == [30.0, 60.0, 120.0]
    assert r.gave_up and not r.ok
    row = s.state.get("probe:failure")
    assert (row.last_status, row.failures, row.retry_at) == ("failed", 0, None)
    assert row.last_error == "RuntimeError: the historian did not answer"
    assert row.next_due == T0 + timedelta(hours=2)
    assert [e.action for e in ws.audit.events()
            if e.action.startswith("schedule_")] == ["schedule_failed"] * 3 + [
        "schedule_gave_up"]
    # The next time is a fresh start.
    job.failures = 0
    clock.at = T0 + timedelta(hours=2)
    [fresh] = s.tick()
    assert fresh.ok and fresh.attempt == 1
    listed = CliRunner().invoke(app, ["scheduler", "--list", "--json"],
                                env={"PLANTA_PROJECT": str(ws.project.root)})
    assert listed.exit_code == 0, listed.output


def test_two_schedulers_never_run_the_same_job_and_the_second_takes_over(ws: Workspace) -> None:
    clock, job = Clock(), Recorder()
    a, b = scheduler(ws, clock, job, owner="a"), scheduler(ws, clock, job, owner="b")
    a.tick()
    assert b.tick() == [] and not b.is_leader
    for _ in range(4):
        clock.advance(minutes=15)
        a.tick()
        assert b.tick() == []
    assert len(job.runs) == 4
    # a renews its lease 10 s before the next time, then dies; the job is due, but b must
    # wait for a's lease to run out before it runs anything.
    clock.advance(minutes=15, seconds=-10)
    assert a.tick() == []
    clock.advance(seconds=10)
    assert b.tick() == [] and not b.is_leader
    clock.advance(seconds=21)
    assert len(b.tick()) == 1 and b.is_leader
    assert len({r.scheduled_for for r in job.runs}) == len(job.runs) == 5
    taken = ws.audit.events(action="lease_taken")
    assert [(e.actor, (e.payload["previous"] or {}).get("holder")) for e in taken] == [
        ("a", None), ("b", "a")]


def test_an_unknown_job_kind_is_refused_up_front(ws: Workspace) -> None:
    config = SchedulerConfig(jobs=(JobSpec("x", "dance", "@daily"),))
    with pytest.raises(StateError, match="no job function for 'dance'"):
        Scheduler(ws, config=config, jobs={})


def _wait(predicate, what: str, timeout_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


PROBE = textwrap.dedent("""
    import os, sys, threading, time
    from planta.core.schedule import JobSpec, SchedulerConfig
    from planta.services.scheduler import Scheduler
    from planta.services.workspace import Workspace

    root, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    me = f"p{os.getpid()}"

    def probe(ws, spec, run):
        line = f"{run.scheduled_for.isoformat()} {me}\\n".encode()
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)  # one short O_APPEND write: lines never interleave
        finally:
            os.close(fd)
        time.sleep(0.3)     # a job that takes a while, so the other process really waits

    ws = Workspace.open(root)
    config = SchedulerConfig(jobs=(JobSpec("probe", "probe", "* * * * * *"),))
    s = Scheduler(ws, config=config, jobs={"probe": probe}, owner=me, lease_s=3, poll_s=0.05,
                  retrain=lambda *a, **k: None)
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    s.run(stop)
    ws.close()
""")


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql",
                                                           marks=pytest.mark.postgres)])
def test_two_real_processes_on_one_store_never_run_the_same_time(
        tmp_path: Path, engine: str, request: pytest.FixtureRequest, make_project) -> None:
    url = None if engine == "sqlite" else request.getfixturevalue("postgres_url")
    root = make_project(tmp_path / "p", store_url=url)
    Workspace.open(root).close()             # create the store before the race
    script, out = tmp_path / "probe.py", tmp_path / "runs.txt"
    script.write_text(PROBE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The first runs 1.5 s, the second 3 s, started once the first ran a job: both try all
    # along, and the lease changes hands when the first stops.
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(out), "1.5"],
                              env=env, stderr=subprocess.PIPE)]
    _wait(lambda: out.exists() and out.read_text(), "the first process's first run")
    procs.append(subprocess.Popen([sys.executable, str(script), str(root), str(out), "3"],
                                  env=env, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=DEADLINE_S)
        assert p.returncode == 0, err.decode(errors="replace")
    lines = out.read_text().split()
    times, owners = lines[0::2], lines[1::2]
    assert len(times) >= 3
    assert len(set(times)) == len(times), "a scheduled time ran twice"
    assert times == sorted(times)
    assert len(set(owners)) == 2              # the second took over when the first stopped


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # nosec B310 - loopback test
            return bool(answer.status == 200)
    except OSError:
        return False


def test_kill_9_of_a_planta_scheduler_hands_the_lease_to_planta_serve_and_loses_nothing(
        tmp_path: Path, make_project) -> None:
    planta = Path(sys.executable).with_name("planta")
    if not planta.exists():
        pytest.skip("the planta command is not installed next to this Python")
    # A monitoring window every second; it fails here (no model yet): retried and audited.
    root = make_project(tmp_path / "p", rules=[{"when": "recall < 0.7"}],
                        usecase={"schedule": "* * * * * *"})
    env = {**os.environ, "PLANTA_PROJECT": str(root), "PLANTA_USER": "ops"}
    first = subprocess.Popen([str(planta), "scheduler", "--lease", "2", "--poll", "0.1"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    log = (tmp_path / "serve.log").open("wb")
    try:
        ws = Workspace.open(root)
        state = ScheduleStore(ws.store)
        holder = _wait(lambda: state.holder(LEASE_NAME), "the first scheduler's lease")[0]
        assert f":{first.pid}:" in holder
        port = free_port()
        server = subprocess.Popen([str(planta), "serve", "--port", str(port)], cwd=root,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        [failed, *_] = _wait(lambda: ws.audit.events(action="schedule_failed"),
                             "a recorded job failure")
        assert failed.subject == "scheduler/job/monitor:failure"
        assert "no model version" in failed.payload["error"]
        _wait(lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), "the server")
        time.sleep(0.5)                                # the server's scheduler polls...
        assert state.holder(LEASE_NAME)[0] == holder   # ...and leaves a held lease alone
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=DEADLINE_S)
        taken = _wait(lambda: (h := state.holder(LEASE_NAME)) and h[0] != holder and h,
                      "the server's scheduler to take over")
        assert f":{server.pid}:" in taken[0]
        # The takeover is audited with the lease, in the same transaction.
        starts = [(e.actor, (e.payload["previous"] or {}).get("holder"))
                  for e in ws.audit.events(action="lease_taken")]
        assert starts == [(holder, None), (taken[0], holder)]
        assert ws.audit.verify().ok           # every event of the killed process is intact
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=DEADLINE_S) == 0
        assert state.holder(LEASE_NAME) is None   # a clean stop gives the lease back
        ws.close()
    finally:
        for p in (first, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=DEADLINE_S)
        log.close()


def test_the_monitor_job_reads_drift_and_performance_and_opens_alerts(tmp_path: Path) -> None:
    """The glue to planta.services.monitor and .performance, on a real trained model and a
    real prediction log: torque × 1.2 in the last hours opens the drift rule's alert."""
    import json as json_module

    import pandas as pd

    from planta.core.spec import UseCase
    from planta.project import Project
    from planta.services.demo import demo_data
    from planta.services.ingest import ingest
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle, train_version
    from planta.store.ids import reserve
    from planta.store.predictions import LogEntry, PredictionLog

    root = tmp_path / "plant"
    Project.init(root, name="plant")
    project = Project.open(root)
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.5",
        "schedule": "*/15 * * * *", "report_schedule": "0 6 * * *",
        "rules": [{"name": "torque", "when": "psi(torque_nm) > 0.2"},
                  {"name": "estimate", "when": "estimated_recall <= 1"},
                  {"name": "labels", "when": "recall < objective"}]}))
    ws = Workspace.from_project(project)
    raw = pd.read_csv(demo_data())
    raw.iloc[:2000].to_csv(root / "history.csv", index=False)
    ingest(ws, "failure", root / "history.csv")
    trained = train_version(ws, "failure", budget_s=1.0)
    ws.registry.move("failure", trained.version, "production", action="promote", actor="ana",
                     role="admin", reason="test", exception=trained.state == "rejected")
    scorer = Scorer.from_bundle(load_bundle(ws, "failure"), version=trained.version)
    later = raw.iloc[2000:2400].copy()
    later["Torque [Nm]"] = later["Torque [Nm]"] * 1.2
    records = [{f.name: row[f.label] if f.label in row else row.get(f.name)
                for f in scorer.contract.fields if f.role not in ("target", "ignored")}
               for row in later.to_dict("records")]
    batch = scorer.predict(records, range_policy="flag")
    now = datetime.now(UTC)
    with PredictionLog(ws.store) as log:
        log.write_now(LogEntry(
            first_id=reserve(len(records)), n=len(records), at=now - timedelta(hours=2),
            usecase="failure", version=trained.version, route="production", channel="sync",
            caller="line-4", inputs_json=json_module.dumps(records),
            outputs_json=json_module.dumps({"prediction": list(batch.prediction),
                                            "probability": list(batch.probability),
                                            "score": None})))
    s = Scheduler(ws, clock=Clock(now), retrain=lambda *a, **k: None)
    report = s.run_now("monitor:failure", actor="ana")
    assert report.ok, report.error
    rules = {r["rule"]: r for r in report.result["rules"]}
    assert rules["torque"]["decision"] == "open"
    assert rules["torque"]["evaluation"]["values"]["psi(torque_nm)"] > 0.2
    assert rules["estimate"]["decision"] == "open"        # performance signals arrived too
    assert rules["labels"]["evaluation"]["message"] == "cannot be evaluated: no value for recall"
    assert {a.rule for a in s.alerts.store.list()} == {"torque", "estimate"}
    # Three quiet days later the window has no rows: no value, so the alert stays open.
    quiet = Scheduler(ws, clock=Clock(now + timedelta(days=3)), retrain=lambda *a, **k: None)
    rules = {r["rule"]: r for r in quiet.run_now("monitor:failure", actor="ana").result["rules"]}
    assert rules["torque"]["decision"] == "unknown"
    assert rules["torque"]["evaluation"]["missing"] == ["psi(torque_nm)"]
    assert [a.state for a in s.alerts.store.list() if a.rule == "torque"] == ["open"]
    # The report job keeps the HTML report as an artifact and says where in the audit trail.
    written = s.run_now("report:failure", actor="ana")
    assert written.ok, written.error
    [event] = ws.audit.events(action="monitor_report")
    html = ws.artifacts.get_bytes(event.payload["report_sha256"]).decode("utf-8")
    assert "<html" in html.lower() and "torque_nm" in html
    assert "torque_nm" in event.payload["drifted"]
    ws.close()
