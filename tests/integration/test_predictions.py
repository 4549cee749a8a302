"""The prediction log against the real stores: a SQLite file and a PostgreSQL database.

Every guarantee here lives in the storage (commit before acknowledge, one row per request,
surviving kill -9, a full disk), so nothing is faked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from planta.errors import InputError, StoreError
from planta.store.feedback import FeedbackStore
from planta.store.ids import decode, id_range, reserve
from planta.store.metadata import Store, feedback, open_store, predictions, utc_now
from planta.store.predictions import LogEntry, PredictionLog

ROOT = Path(__file__).resolve().parents[2]


def entry(n: int = 1, *, usecase: str = "failure", version: int = 1, at: Any = None,
          entities: list[Any] | None = None, route: str = "production", channel: str = "sync",
          caller: str = "line-4", first: Any = None, big: int = 0,
          as_bytes: bool = True) -> LogEntry:
    inputs = [{"torque_nm": 40.0 + i, "type": "L", "note": "x" * big} for i in range(n)]
    outputs = {"prediction": [i % 2 for i in range(n)],
               "probability": [round(0.1 * (i % 10), 2) for i in range(n)], "score": None}
    encode = (lambda v: json.dumps(v).encode()) if as_bytes else json.dumps
    return LogEntry(first_id=reserve(n) if first is None else first, n=n, at=at or utc_now(),
                    usecase=usecase, version=version, route=route, channel=channel,
                    caller=caller, request_id="req-1", latency_ms=1.5, entities=entities,
                    inputs_json=encode(inputs), outputs_json=encode(outputs))


@pytest.fixture
def log(store: Store):
    with PredictionLog(store) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path):
    """For behaviour of the log itself, not of an engine: one engine keeps the suite fast."""
    with open_store(f"sqlite:///{tmp_path / 'planta.db'}") as opened:
        yield opened


@pytest.fixture
def sqlite_log(sqlite_store: Store):
    with PredictionLog(sqlite_store) as opened:
        yield opened


def hold_write_lock(store: Store):
    """Block every writer of the predictions table until the returned event is set; return
    (started, release, thread)."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.engine.connect() as conn:
            if store.dialect == "sqlite":
                conn.execution_options(planta_begin="IMMEDIATE")
            with conn.begin():
                if store.dialect == "postgresql":
                    conn.exec_driver_sql("LOCK TABLE predictions IN EXCLUSIVE MODE")
                started.set()
                release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(10)
    return release, thread


# -- one request, one row ---------------------------------------------------------------------
def test_a_request_is_one_row_and_every_record_is_found_by_its_id(log: PredictionLog,
                                                                   store: Store) -> None:
    logged = entry(3, entities=["M-1", "M-2", 17.0])
    first = log.write_now(logged)
    ids = id_range(first, 3)
    with store.read() as conn:
        assert conn.scalar(select(func.count()).select_from(predictions)) == 1
    record = log.get(ids[1])
    assert record is not None
    assert (record.prediction_id, record.inputs["torque_nm"], record.prediction,
            record.probability, record.entity, record.version) == (ids[1], 41.0, 1, 0.1, "M-2", 1)
    assert record.at == logged.at and record.latency_ms == 1.5 and record.request_id == "req-1"
    assert log.get(ids[2].lower()).entity == 17.0  # type: ignore[union-attr]
    assert json.loads(json.dumps(record.to_dict()))["prediction_id"] == ids[1]
    after = id_range(ids[2], 2)[1]
    assert log.get(after) is None and log.get("not-an-id") is None
    assert set(log.get_many([*ids, after])) == set(ids)


def test_str_json_and_string_ids_are_accepted(sqlite_log: PredictionLog) -> None:
    first = reserve(2)
    from planta.store.ids import encode

    pid = sqlite_log.write_now(entry(2, first=encode(first), as_bytes=False))
    assert pid == encode(first)
    assert [r.prediction for r in sqlite_log.query("failure")] == [1, 0]


def test_async_write_resolves_after_commit(sqlite_log: PredictionLog) -> None:
    pid = asyncio.run(sqlite_log.write(entry(1)))
    assert sqlite_log.get(pid) is not None


def test_malformed_entries_are_refused_before_queueing(sqlite_log: PredictionLog) -> None:
    with pytest.raises(InputError, match="Route"):
        sqlite_log.submit(entry(route="blue"))
    with pytest.raises(InputError, match="aware"):
        sqlite_log.submit(entry(at=utc_now().replace(tzinfo=None)))
    with pytest.raises(InputError, match="entities"):
        sqlite_log.submit(entry(2, entities=["M-1"]))
    with pytest.raises(InputError, match="caller"):
        sqlite_log.submit(entry(caller="x" * 201))
    with pytest.raises(InputError, match="durability"):
        PredictionLog(sqlite_log.store, durability="sometimes")
    assert sqlite_log.depth == 0


# -- group commit -----------------------------------------------------------------------------
def test_group_commit_from_8_threads_keeps_every_row(log: PredictionLog, store: Store) -> None:
    per_thread = 150
    results: dict[int, list[str]] = {}

    def work(t: int) -> None:
        futures = [log.submit(entry(1 + i % 3, caller=f"thread-{t}")) for i in range(per_thread)]
        results[t] = [f.result(timeout=30) for f in futures]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [pid for t in range(8) for pid in results[t]]
    assert len(every) == len(set(every)) == 8 * per_thread
    for t in range(8):  # each thread's ids come back in the order it submitted them
        assert results[t] == sorted(results[t])
    with store.read() as conn:
        rows = conn.execute(select(predictions.c.id, predictions.c.last_id, predictions.c.n,
                                   predictions.c.caller).order_by(predictions.c.id)).all()
    assert {r.id for r in rows} == set(every)
    assert all(decode(r.last_id) - decode(r.id) == r.n - 1 for r in rows)
    assert sum(r.n for r in rows) == log.count("failure") == 8 * sum(1 + i % 3
                                                                     for i in range(per_thread))
    # Grouped: far fewer transactions than requests.
    assert log.written == 8 * per_thread and log.commits < log.written / 4
    assert log.depth == 0 and log.healthy


def test_a_future_resolves_only_after_its_commit(store: Store) -> None:
    seen_in_callback: list[bool] = []
    with PredictionLog(store, max_wait_ms=0) as log:
        release, holder = hold_write_lock(store)
        try:
            future = log.submit(entry(2))
            time.sleep(0.3)
            assert not future.done() and log.depth == 1
            with store.read() as conn:  # nothing half-written is visible either
                assert conn.scalar(select(func.count()).select_from(predictions)) == 0
        finally:
            release.set()
            holder.join()
        pid = future.result(timeout=30)
        assert log.get(pid) is not None

        # Seen from another connection at the moment each future resolves.
        def check(done: Future[str]) -> None:
            seen_in_callback.append(log.get(done.result()) is not None)

        futures = [log.submit(entry(1)) for _ in range(50)]
        for f in futures:
            f.add_done_callback(check)
        for f in futures:
            f.result(timeout=30)
    assert seen_in_callback == [True] * 50


def test_a_reused_id_fails_alone(log: PredictionLog) -> None:
    taken = reserve(1)
    log.write_now(entry(1, first=taken))
    futures = [log.submit(entry(1)), log.submit(entry(1, first=taken)), log.submit(entry(1))]
    with pytest.raises(StoreError, match="prediction log"):
        futures[1].result(timeout=30)
    assert log.get(futures[0].result(timeout=30)) is not None
    assert log.get(futures[2].result(timeout=30)) is not None
    assert log.healthy


def test_entries_submitted_together_share_one_commit_and_fail_alone(log: PredictionLog) -> None:
    taken = reserve(1)
    log.write_now(entry(1, first=taken))
    malformed = entry(1)
    malformed.n = 0
    before = log.commits
    futures = log.submit_many([entry(1), malformed, entry(1, first=taken), entry(3)])
    with pytest.raises(InputError, match="at least one record"):
        futures[1].result(timeout=0)
    with pytest.raises(StoreError, match="prediction log"):
        futures[2].result(timeout=30)
    for f in (futures[0], futures[3]):
        assert log.get(f.result(timeout=30)) is not None
    assert log.commits - before == 1  # the reused id failed under its savepoint, same commit
    assert log.submit_many([]) == []


def test_a_group_that_does_not_fit_the_queue_is_refused_whole(sqlite_store: Store) -> None:
    with PredictionLog(sqlite_store, max_depth=3, max_wait_ms=0) as log:
        release, holder = hold_write_lock(sqlite_store)
        try:
            first = log.submit_many([entry(1), entry(1)])
            refused = log.submit_many([entry(1), entry(1)])
            for f in refused:
                with pytest.raises(StoreError, match="behind"):
                    f.result(timeout=1)
        finally:
            release.set()
            holder.join()
        for f in first:
            assert log.get(f.result(timeout=30)) is not None


def test_a_full_queue_refuses_at_once(sqlite_store: Store) -> None:
    with PredictionLog(sqlite_store, max_depth=3, max_wait_ms=0) as log:
        release, holder = hold_write_lock(sqlite_store)
        try:
            futures = [log.submit(entry(1)) for _ in range(4)]
            with pytest.raises(StoreError, match="behind"):
                futures[3].result(timeout=1)
        finally:
            release.set()
            holder.join()
        for f in futures[:3]:
            assert log.get(f.result(timeout=30)) is not None


def test_close_writes_what_is_queued_then_refuses(sqlite_store: Store) -> None:
    log = PredictionLog(sqlite_store, max_wait_ms=50)
    futures = [log.submit(entry(1)) for _ in range(200)]
    log.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert log.count() == 200
    with pytest.raises(StoreError, match="closed"):
        log.submit(entry(1)).result(timeout=1)
    log.close()  # idempotent


# -- durability -------------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from planta.store.ids import reserve
    from planta.store.metadata import open_store, utc_now
    from planta.store.predictions import LogEntry, PredictionLog

    log = PredictionLog(open_store(sys.argv[1]), durability=sys.argv[2])

    def acknowledged(future):
        sys.stdout.write(future.result() + "\\n")
        sys.stdout.flush()

    deadline = time.monotonic() + 5  # bounded even if nobody kills it
    waiting = []
    while time.monotonic() < deadline:
        future = log.submit(LogEntry(
            first_id=reserve(2), n=2, at=utc_now(), usecase="failure", version=1,
            route="production", channel="sync", caller="kill-test",
            inputs_json=b'[{"torque_nm": 40.0}, {"torque_nm": 41.0}]',
            outputs_json=b'{"prediction": [0, 1], "probability": null, "score": null}'))
        future.add_done_callback(acknowledged)
        waiting.append(future)
        if len(waiting) >= 16:
            waiting.pop(0).result(timeout=10)
    """)


@pytest.mark.parametrize("durability", ["full", "process"])
def test_every_acknowledged_prediction_survives_kill_9(tmp_path: Path, durability: str) -> None:
    url = f"sqlite:///{tmp_path / 'planta.db'}"
    open_store(url).close()  # migrations done before the clock starts
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, durability],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None
    chunks: list[bytes] = []
    # Read in a thread, so that a stuck child cannot hang the test: the main thread decides
    # when to kill, with a deadline.
    reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stdout.readline, b"")))
    reader.start()
    deadline = time.monotonic() + 10
    while len(chunks) < 400 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    _, errors = proc.communicate(timeout=30)
    reader.join(30)
    assert proc.returncode == -signal.SIGKILL, errors.decode()
    text = b"".join(chunks)
    acknowledged = [line.decode() for line in text.split(b"\n")[:-1]]  # complete lines only
    assert len(acknowledged) >= 50, errors.decode()
    with open_store(url) as store:
        found = PredictionLog(store).get_many(acknowledged)
    missing = sorted(set(acknowledged) - set(found))
    assert not missing, f"{len(missing)} acknowledged predictions lost after kill -9"


def test_process_durability_relaxes_the_log_connection_only(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'planta.db'}") as store:
        with PredictionLog(store, durability="process") as log:
            log.write_now(entry(1))
            assert log._conn is not None
            raw = log._conn.connection.dbapi_connection
            assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            with store.read() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        with store.read() as conn:  # and nothing relaxed went back to the pool
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_a_full_disk_fails_the_future_plainly_and_health_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough that the assertions below run before the first probe.
    monkeypatch.setattr("planta.store.predictions.PROBE_S", 0.5)
    url = f"sqlite:///{tmp_path / 'planta.db'}"
    with open_store(url) as store:
        full = {"on": True}

        @event.listens_for(store.engine, "connect")
        def _cap(dbapi_conn: Any, _record: Any) -> None:
            if full["on"]:  # the file may not grow: the disk is full
                pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
                dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

        store.engine.dispose()  # new connections from here on
        with PredictionLog(store) as log:
            future = log.submit(entry(1, big=100_000))
            with pytest.raises(StoreError) as caught:
                future.result(timeout=30)
            assert "full" in caught.value.message and "Traceback" not in str(caught.value)
            assert caught.value.hint == "Free some disk space, then try again."
            assert not log.healthy and "full" in (log.last_error or "")
            assert log.depth == 0
            full["on"] = False  # space freed
            # Health comes back without traffic: the idle writer probes the store.
            deadline = time.monotonic() + 10
            while not log.healthy and time.monotonic() < deadline:
                time.sleep(0.02)
            assert log.healthy and log.last_error is None
            pid = log.write_now(entry(1, big=100_000))
            assert log.get(pid) is not None


# -- reading ----------------------------------------------------------------------------------
def test_query_filters_and_orders_newest_first(log: PredictionLog) -> None:
    now = utc_now()
    log.write_now(entry(2, at=now - timedelta(days=3), version=1, entities=["M-1", "M-2"]))
    log.write_now(entry(3, at=now - timedelta(hours=2), version=2, entities=[17, "M-1", "M-3"],
                        route="canary"))
    log.write_now(entry(1, at=now - timedelta(hours=1), version=2, usecase="quality"))
    log.write_now(entry(2, at=now, version=2))
    records = log.query("failure")
    assert len(records) == 7
    assert [r.at for r in records] == sorted((r.at for r in records), reverse=True)
    assert [r.prediction_id for r in records[:2]] == sorted(
        (r.prediction_id for r in records[:2]), reverse=True)
    assert len(log.query("failure", since=now - timedelta(days=1))) == 5
    assert len(log.query("failure", until=now - timedelta(days=1))) == 2
    assert {r.version for r in log.query("failure", version=1)} == {1}
    assert {r.route for r in log.query("failure", route="canary")} == {"canary"}
    assert [r.entity for r in log.query("failure", entity="M-1")] == ["M-1", "M-1"]
    assert [r.entity for r in log.query("failure", entity="17")] == [17]
    assert log.query("failure", entity="M-") == []
    assert len(log.query("failure", limit=4)) == 4
    assert len(log.query(limit=None)) == 8
    assert log.count("failure", since=now - timedelta(days=1)) == 5


def test_rejections_are_counted_by_rule(sqlite_log: PredictionLog) -> None:
    sqlite_log.record_rejection("failure", "sync", "line-4", 10, {"below_min": 3, "null": 1})
    sqlite_log.record_rejection("failure", "v2", "line-5", 1, {"below_min": 1}).result(timeout=30)
    sqlite_log.record_rejection("quality", "sync", "line-4", 1, {"type": 1}).result(timeout=30)
    summary = sqlite_log.count_rejections("failure")
    assert summary.to_dict() == {"requests": 2, "records": 11,
                                 "rules": {"below_min": 4, "null": 1}}
    assert sqlite_log.count_rejections(since=utc_now() + timedelta(seconds=1)).requests == 0


# -- retention --------------------------------------------------------------------------------
def test_retention_deletes_whole_rows_oldest_first(log: PredictionLog, store: Store) -> None:
    now = utc_now()
    old = [log.write_now(entry(2, at=now - timedelta(days=d))) for d in (40, 35)]
    recent = [log.write_now(entry(3, at=now - timedelta(days=d))) for d in (5, 1)]
    other = log.write_now(entry(4, usecase="quality", at=now - timedelta(days=90)))
    FeedbackStore(store, log).add("failure", [{"prediction_id": old[0], "value": 1},
                                              {"prediction_id": recent[0], "value": 0}],
                                  actor="ana", source="test")
    assert log.apply_retention("failure") == 0
    assert log.apply_retention("failure", days=30, now=now) == 4
    assert log.get(old[0]) is None and log.get(old[1]) is None
    assert log.get(recent[0]) is not None and log.get(other) is not None  # other use case kept
    with store.read() as conn:  # the feedback of a deleted prediction goes with it
        assert conn.execute(select(feedback.c.prediction_id)).scalars().all() == [recent[0]]
    # Keep at most 4 predictions: the row of 3 and the row of 3 do not both fit.
    assert log.apply_retention("failure", max_rows=4) == 3
    assert log.get(recent[0]) is None and log.get(recent[1]) is not None
    assert log.apply_retention("failure", max_rows=3) == 0
    assert log.count("failure") == 3
