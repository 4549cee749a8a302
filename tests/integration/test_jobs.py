"""The job queue and the worker on real stores: a SQLite file and a PostgreSQL database.

Queue rules (claim order, leases, fencing, retries, cancel) run on both engines; exclusivity is
checked with threads and with two processes; durability kills a worker with SIGKILL mid-job and
checks that a second worker finishes every job, each completed exactly once.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from planta.core.spec import UseCase
from planta.errors import FileFormatError, InputError, NotFoundError, StateError
from planta.project import Project
from planta.services.demo import demo_data
from planta.services.ingest import ingest
from planta.services.jobs import (
    JobOutput,
    Worker,
    result_bytes,
    submit_file,
    submit_records,
)
from planta.services.versions import train_version
from planta.services.workspace import Workspace
from planta.store.jobs import Job, JobQueue, retry_delay_s
from planta.store.metadata import Store, utc_now

DIGEST = "ab" * 32
DEADLINE_S = 30.0


def wait_for(condition: Any, what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


def submit(queue: JobQueue, n: int = 1, **kw: Any) -> list[Job]:
    return [queue.submit("failure", "file", DIGEST, f"part-{i}.csv", {"format": "csv"},
                         caller="ana", **kw) for i in range(n)]


# -- queue rules, on both engines -------------------------------------------------------------

def test_submit_claim_renew_complete(store: Store) -> None:
    queue = JobQueue(store)
    first, second = submit(queue, 2)
    assert first.status == "queued" and first.attempts == 0
    claimed = queue.claim("w1", lease_s=30)
    assert claimed is not None and claimed.id == first.id  # oldest first
    assert claimed.status == "running" and claimed.lease_owner == "w1" and claimed.attempts == 1
    assert claimed.lease_until is not None and claimed.lease_until > utc_now()
    renewed = queue.renew(first.id, "w1", lease_s=60)
    assert renewed.lease_until is not None and claimed.lease_until < renewed.lease_until
    done = queue.complete(first.id, "w1", "cd" * 32, "scored-part-0.csv", {"rows": 3})
    assert done.status == "done" and done.result_digest == "cd" * 32
    assert done.summary == {"rows": 3} and done.finished_at is not None
    with pytest.raises(StateError):
        queue.complete(first.id, "w1", "cd" * 32, "again.csv", {})
    assert queue.get(first.id) == done
    assert [j.id for j in queue.list()] == [second.id, first.id]
    assert [j.id for j in queue.list(status="done")] == [first.id]
    assert queue.list(usecase="other") == []
    assert queue.counts() == {"queued": 1, "running": 0, "done": 1, "failed": 0,
                              "cancelled": 0}
    assert queue.get(second.id).options == {"format": "csv"}


def test_bad_requests_are_refused(store: Store) -> None:
    queue = JobQueue(store)
    with pytest.raises(InputError):
        queue.submit("failure", "video", DIGEST, "x.mp4", {}, caller="ana")
    with pytest.raises(InputError):
        queue.submit("failure", "file", "../../etc/passwd", "x.csv", {}, caller="ana")
    with pytest.raises(InputError):
        queue.list(status="lost")
    with pytest.raises(NotFoundError):
        queue.get("not-an-id")
    with pytest.raises(NotFoundError):
        queue.get("01J9ZQ4M6T3V8K2X5N7R0B1C4D")


def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced(store: Store) -> None:
    queue = JobQueue(store)
    (job,) = submit(queue)
    assert queue.claim("w1", lease_s=0.3) is not None
    assert queue.claim("w2", lease_s=30) is None  # still w1's
    wait_for(lambda: utc_now() > queue.get(job.id).lease_until + timedelta(milliseconds=20),
             "the lease to run out")
    taken = queue.claim("w2", lease_s=30)
    assert taken is not None and taken.id == job.id
    assert taken.lease_owner == "w2" and taken.attempts == 2
    for step in (lambda: queue.renew(job.id, "w1", 30),
                 lambda: queue.complete(job.id, "w1", DIGEST, "late.csv", {}),
                 lambda: queue.fail(job.id, "w1", "late", retry=True),
                 lambda: queue.release(job.id, "w1")):
        with pytest.raises(StateError, match="no longer held by w1"):
            step()
    assert queue.complete(job.id, "w2", DIGEST, "ok.csv", {}).lease_owner == "w2"


def test_retries_back_off_then_fail_with_a_plain_message(store: Store) -> None:
    queue = JobQueue(store, backoff_s=0.2)
    (job,) = submit(queue, max_attempts=3)
    waits = []
    for attempt in (1, 2):
        claimed = wait_for(lambda: queue.claim("w1", lease_s=30), f"attempt {attempt}")
        assert claimed.attempts == attempt
        before = utc_now()
        requeued = queue.fail(job.id, "w1", "The disk is full.", retry=True)
        assert requeued.status == "queued" and requeued.lease_owner is None
        assert requeued.not_before is not None
        waits.append((requeued.not_before - before).total_seconds())
        assert "The disk is full." in (requeued.error or "")
        assert queue.claim("w1", lease_s=30) is None  # not before the backoff
    assert waits[0] == pytest.approx(0.2, abs=0.1) and waits[1] == pytest.approx(0.4, abs=0.1)
    wait_for(lambda: queue.claim("w1", lease_s=30), "attempt 3")
    failed = queue.fail(job.id, "w1", "The disk is full.", retry=True)
    assert failed.status == "failed" and failed.finished_at is not None
    assert failed.error == "Failed after 3 attempts. Last error: The disk is full."
    assert [retry_delay_s(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]


def test_no_retry_fails_at_once(store: Store) -> None:
    queue = JobQueue(store)
    (job,) = submit(queue)
    queue.claim("w1", lease_s=30)
    failed = queue.fail(job.id, "w1", "part-0.csv: the file is empty.", retry=False)
    assert (failed.status, failed.attempts, failed.error) == (
        "failed", 1, "part-0.csv: the file is empty.")


def test_a_job_whose_worker_dies_on_its_last_attempt_fails(store: Store) -> None:
    queue = JobQueue(store)
    (job,) = submit(queue, max_attempts=1)
    queue.claim("w1", lease_s=0.1)
    wait_for(lambda: utc_now() > queue.get(job.id).lease_until, "the lease to run out")
    assert queue.claim("w2", lease_s=30) is None
    failed = queue.get(job.id)
    assert failed.status == "failed" and "worker stopped" in (failed.error or "")


def test_cancel_and_release(store: Store) -> None:
    queue = JobQueue(store)
    waiting, running, finished = submit(queue, 3)
    assert queue.cancel(waiting.id, "ana").error == "Cancelled by ana."
    assert queue.cancel(waiting.id, "ana").status == "cancelled"  # idempotent
    claimed = queue.claim("w1", lease_s=30)
    assert claimed is not None and claimed.id == running.id
    queue.cancel(running.id, "bob")
    with pytest.raises(StateError, match="cancelled"):
        queue.renew(running.id, "w1", 30)
    with pytest.raises(StateError, match="cancelled"):
        queue.complete(running.id, "w1", DIGEST, "x.csv", {})
    claimed = queue.claim("w1", lease_s=30)
    assert claimed is not None and claimed.id == finished.id
    released = queue.release(finished.id, "w1")
    assert (released.status, released.attempts, released.lease_owner) == ("queued", 0, None)
    again = queue.claim("w2", lease_s=30)
    assert again is not None and again.id == finished.id and again.attempts == 1
    queue.complete(finished.id, "w2", DIGEST, "x.csv", {})
    with pytest.raises(StateError, match="already done"):
        queue.cancel(finished.id, "ana")


def test_threads_never_claim_the_same_job(store: Store) -> None:
    queue = JobQueue(store)
    jobs = submit(queue, 40)
    claims: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(name: str) -> None:
        got = claims.setdefault(name, [])
        try:
            start.wait()
            while (job := queue.claim(name, lease_s=30)) is not None:
                got.append(job.id)
                queue.complete(job.id, name, DIGEST, "x.csv", {})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not errors, errors
    taken = Counter(i for ids in claims.values() for i in ids)
    assert set(taken) == {j.id for j in jobs} and set(taken.values()) == {1}
    assert queue.counts()["done"] == 40


CLAIMER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from planta.store.jobs import JobQueue
    from planta.store.metadata import open_store

    url, name, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    queue = JobQueue(open_store(url))
    (folder / f"ready-{name}").touch()
    while not (folder / "go").exists():  # start together, once both are up
        time.sleep(0.005)
    got = []
    while (job := queue.claim(name, lease_s=30)) is not None:
        got.append(job.id)
        time.sleep(0.002)  # let the other process in
        queue.complete(job.id, name, "ab" * 32, "x.csv", {})
    print(json.dumps(got))
""")


def test_two_processes_never_claim_the_same_job(store: Store, store_url: str,
                                                tmp_path: Path) -> None:
    queue = JobQueue(store)
    jobs = submit(queue, 60)
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, store_url, f"p{i}", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        wait_for(lambda: all((tmp_path / f"ready-p{i}").exists() for i in range(2)),
                 "both processes to start")
        (tmp_path / "go").touch()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=DEADLINE_S)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    taken = Counter(i for ids in outputs for i in ids)
    assert set(taken) == {j.id for j in jobs} and set(taken.values()) == {1}
    assert all(j.status == "done" for j in queue.list(limit=100))


# -- the worker, with a trained model ---------------------------------------------------------

def make_project(root: Path, env: dict[str, str] | None = None) -> Workspace:
    """A project with use case 'failure' trained on 1,500 AI4I rows and in production."""
    Project.init(root, name="plant")
    project = Project.open(root, env=env)
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.1"}))
    ws = Workspace.from_project(project)
    pd.read_csv(demo_data()).iloc[:1500].to_csv(root / "history.csv", index=False)
    ingest(ws, "failure", root / "history.csv")
    trained = train_version(ws, "failure", budget_s=1.0)
    ws.registry.move("failure", trained.version, "production", action="promote", actor="ana",
                     role="admin", reason="test", exception=trained.state == "rejected")
    return ws


def new_rows(n: int = 30) -> pd.DataFrame:
    return pd.read_csv(demo_data()).iloc[9000:9000 + n].drop(columns=["Machine failure"])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = make_project(tmp_path_factory.mktemp("jobs") / "plant")
    yield workspace
    workspace.close()


def test_records_job_answers_each_record_and_rejects_bad_ones(ws: Workspace) -> None:
    records: list[dict[str, Any]] = new_rows(4).to_dict(orient="records")
    records[1]["Torque [Nm]"] = "high"
    del records[2]["Type"]
    job = submit_records(ws, "failure", records, caller="mes")
    worker = Worker(ws, owner="w-records")
    assert worker.run_once() and worker.last_job is not None
    done = worker.last_job
    assert done.id == job.id and done.status == "done" and done.result_name == "results.json"
    doc = json.loads(result_bytes(ws, done))
    statuses = [r["status"] for r in doc["results"]]
    assert statuses == ["ok", "rejected", "rejected", "ok"]
    assert doc["results"][1]["reason"].startswith("type: Record 1")
    assert doc["results"][2]["reason"].startswith("missing_field: Record 2")
    assert 0.0 <= doc["results"][0]["probability"] <= 1.0
    assert done.summary is not None and done.summary["rejected"] == 2
    assert worker.run_once() is False


def test_jobs_log_their_predictions(ws: Workspace) -> None:
    from planta.store.predictions import PredictionLog

    records: list[dict[str, Any]] = new_rows(3).to_dict(orient="records")
    records[2]["Torque [Nm]"] = -8.0
    rows = new_rows(20)
    rows.loc[rows.index[4], "Type"] = "X"
    with PredictionLog(ws.store) as log:
        before = log.count("failure")
        rec_job = submit_records(ws, "failure", records, caller="mes")
        file_job = submit_file(ws, "failure", "shift.csv", rows.to_csv(index=False).encode(),
                               caller="mes", options={"format": "csv"})
        worker = Worker(ws, owner="w-log", log=log)
        assert worker.run_once() and worker.run_once()
        results = json.loads(result_bytes(ws, JobQueue(ws.store).get(rec_job.id)))["results"]
        ids = [r.get("prediction_id") for r in results]
        assert ids[0] and ids[1] and ids[2] is None
        logged = log.get(ids[1])
        assert logged is not None and logged.channel == "job" and logged.caller == "mes"
        assert logged.request_id == rec_job.id and logged.route == "production"
        assert logged.probability == pytest.approx(results[1]["probability"])
        assert logged.prediction == results[1]["prediction"]
        assert logged.inputs["torque_nm"] == records[1]["Torque [Nm]"]
        assert log.count("failure") == before + 2 + 19
        from_file = [r for r in log.query("failure", limit=1000)
                     if r.request_id == file_job.id]
        scored = pd.read_csv(io.BytesIO(result_bytes(ws, JobQueue(ws.store).get(file_job.id))))
        ok = scored[scored["status"] == "ok"]
        assert len(from_file) == len(ok) == 19
        # pandas reads the labels "0" and "1" back as floats (rejected rows are empty)
        assert sorted(r.prediction for r in from_file) == sorted(
            str(int(v)) for v in ok["prediction"])
        assert {r.inputs["type"] for r in from_file} <= {"L", "M", "H"}
        assert log.count_rejections("failure").records >= 2


def test_submit_refuses_what_can_never_run(ws: Workspace) -> None:
    with pytest.raises(FileFormatError):
        submit_file(ws, "failure", "report.pdf", b"%PDF-1.4", caller="ana")
    with pytest.raises(FileFormatError):
        submit_file(ws, "failure", "empty.csv", b"", caller="ana")
    with pytest.raises(NotFoundError):
        submit_file(ws, "nope", "x.csv", b"a\n1\n", caller="ana")
    with pytest.raises(NotFoundError):
        submit_records(ws, "failure", [{"a": 1}], caller="ana", options={"version": 9})
    with pytest.raises(InputError):
        submit_records(ws, "failure", [{"a": 1}], caller="ana", options={"colour": "red"})
    with pytest.raises(InputError):
        submit_records(ws, "failure", [1, 2], caller="ana")  # type: ignore[list-item]
    job = submit_file(ws, "failure", "C:\\exports\\..\\march.csv", b"a\n1\n", caller="ana")
    assert job.input_name == "march.csv"
    JobQueue(ws.store).cancel(job.id, "ana")


def test_unreadable_file_fails_once_without_retry(ws: Workspace) -> None:
    job = submit_file(ws, "failure", "broken.parquet", b"not parquet at all", caller="ana")
    worker = Worker(ws, owner="w-broken")
    assert worker.run_once()
    failed = JobQueue(ws.store).get(job.id)
    assert failed.status == "failed" and failed.attempts == 1
    assert "Parquet" in (failed.error or "")
    with pytest.raises(StateError, match="failed"):
        result_bytes(ws, failed)


class FlakyWorker(Worker):
    """Fails with server-side trouble on every attempt."""

    def handle(self, job: Job, check: Any) -> JobOutput:
        raise OSError(28, "No space left on device")


def test_server_trouble_is_retried_then_the_job_fails(ws: Workspace) -> None:
    job = submit_file(ws, "failure", "march.csv", new_rows().to_csv(index=False).encode(),
                      caller="ana", max_attempts=2)
    worker = FlakyWorker(ws, owner="w-flaky", queue=JobQueue(ws.store, backoff_s=0.05))
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    try:
        ended = wait_for(lambda: (j := JobQueue(ws.store).get(job.id)).is_finished and j,
                         "the job to fail")
    finally:
        stop.set()
        runner.join(DEADLINE_S)
    assert ended.status == "failed" and ended.attempts == 2
    assert ended.error is not None and "No space left on device" in ended.error
    assert ended.error.startswith("Failed after 2 attempts")


class PausingWorker(Worker):
    """Calls ``during(job)`` mid-job, then checkpoints until interrupted (or 5 s)."""

    def __init__(self, *args: Any, during: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.during = during

    def handle(self, job: Job, check: Any) -> JobOutput:
        self.during(job)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            check()
            time.sleep(0.02)
        raise AssertionError("the job was never interrupted")


def test_a_cancelled_running_job_is_dropped(ws: Workspace) -> None:
    job = submit_file(ws, "failure", "march.csv", b"x\n1\n", caller="ana")
    worker = PausingWorker(ws, owner="w-cancel", lease_s=0.3,
                           during=lambda j: JobQueue(ws.store).cancel(j.id, "bob"))
    assert worker.run_once()
    ended = JobQueue(ws.store).get(job.id)
    assert ended.status == "cancelled" and ended.result_digest is None


def test_stopping_gives_the_job_back(ws: Workspace) -> None:
    job = submit_file(ws, "failure", "march.csv", b"x\n1\n", caller="ana")
    stop = threading.Event()
    worker = PausingWorker(ws, owner="w-stop", during=lambda _j: stop.set())
    assert worker.run_once(stop)
    back = JobQueue(ws.store).get(job.id)
    assert (back.status, back.attempts, back.lease_owner) == ("queued", 0, None)
    JobQueue(ws.store).cancel(job.id, "ana")


# -- durability: SIGKILL a worker mid-job ------------------------------------------------------

WORKER = textwrap.dedent("""
    import os, sys, threading, time
    from pathlib import Path
    import planta.services.predict, planta.services.score  # the slow imports, up front
    from planta.project import Project
    from planta.services.jobs import Worker
    from planta.services.workspace import Workspace

    class SlowWorker(Worker):
        def handle(self, job, check):
            print("start", job.id, flush=True)
            time.sleep(0.2)  # mid-job: the test kills the first worker here
            return super().handle(job, check)

    def done(job):
        if job.status == "done":
            print("done", job.id, flush=True)

    root, owner, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    ws = Workspace.from_project(Project.open(root, env=dict(os.environ)))
    worker = SlowWorker(ws, owner=owner, lease_s=1.0, poll_s=0.05, on_job=done)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    stop = threading.Event()
    while True:
        if not worker.run_once(stop):
            if all(j.is_finished for j in worker.queue.list(limit=1000)):
                break
            time.sleep(0.05)
""")


def test_killed_worker_loses_no_job_and_none_completes_twice(
        tmp_path: Path, store_url: str) -> None:
    env = {"PLANTA_STORE_URL": store_url}
    ws = make_project(tmp_path / "plant", env=env)
    procs: list[subprocess.Popen[str]] = []
    try:
        data = new_rows(50).to_csv(index=False).encode()
        jobs = [submit_file(ws, "failure", f"part-{i}.csv", data, caller="ana",
                            options={"format": "csv"}) for i in range(2)]
        jobs += [submit_records(ws, "failure", new_rows(5).to_dict(orient="records"),
                                caller="mes") for _ in range(2)]
        child_env = os.environ | env

        def start(owner: str) -> subprocess.Popen[str]:
            proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "plant"),
                                     owner, str(tmp_path / f"go-{owner}")],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, env=child_env)
            procs.append(proc)
            return proc

        def read_until(proc: subprocess.Popen[str], done: Any, lines: list[str]) -> None:
            assert proc.stdout is not None
            deadline = time.monotonic() + DEADLINE_S
            while not done(lines):
                line = proc.stdout.readline()
                assert line and time.monotonic() < deadline, f"worker output: {lines}"
                lines.append(line.strip())

        # Both workers start (and import) together; the rescuer waits for its go.
        first, second = start("doomed"), start("rescuer")
        lines: list[str] = []
        rescuer_lines: list[str] = []
        read_until(first, lambda got: "ready" in got, lines)
        (tmp_path / "go-doomed").touch()
        # Let it finish one job, then kill it in the middle of the next one.
        read_until(first, lambda got: sum(x.startswith("start") for x in got) == 2, lines)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(DEADLINE_S)
        assert first.stdout is not None
        lines += [line.strip() for line in first.stdout.read().splitlines()]
        killed_on = [x for x in lines if x.startswith("start")][-1].split()[1]
        assert JobQueue(ws.store).get(killed_on).status == "running"

        read_until(second, lambda got: "ready" in got, rescuer_lines)
        (tmp_path / "go-rescuer").touch()
        out, _ = second.communicate(timeout=DEADLINE_S)
        lines += rescuer_lines + out.splitlines()
        completions = Counter(line.split()[1] for line in lines if line.startswith("done"))
        assert set(completions) == {j.id for j in jobs}
        assert set(completions.values()) == {1}, completions
        for job in JobQueue(ws.store).list(limit=100):
            assert job.status == "done", job
            assert result_bytes(ws, job)
        taken_over = JobQueue(ws.store).get(killed_on)
        assert taken_over.attempts == 2 and taken_over.lease_owner == "rescuer"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ws.close()
