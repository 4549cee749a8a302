"""The audit chain against real storage: tampering with raw SQL, and concurrent appends."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import stat
import threading

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from planta.errors import InputError, StoreError
from planta.store import AuditLog, open_store
from planta.store.audit import GENESIS

ACTIONS = ["project_init", "ingest", "train", "promote", "score", "backup"]


@pytest.fixture
def log(store):
    audit = AuditLog(store)
    for i, action in enumerate(ACTIONS, start=1):
        audit.append(action, f"usecase/failure/{i}", "ana", {"i": i, "note": "ok"})
    return audit


def sql(store, statement: str, **params) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_an_intact_chain_verifies(log) -> None:
    result = log.verify()
    assert (result.ok, result.count, result.problems) == (True, 6, [])
    assert result.head == log.head() == log.events()[-1].hash
    assert log.verify(known_head=result.head).ok


def test_an_empty_trail_verifies() -> None:
    with open_store("sqlite://") as store:
        result = AuditLog(store).verify(known_head=GENESIS)
    assert (result.ok, result.count, result.head) == (True, 0, GENESIS)


def test_each_event_links_to_the_one_before(log) -> None:
    events = log.events(limit=None)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))


def test_an_edited_payload_is_named_by_number_and_action(store, log) -> None:
    sql(store, "UPDATE audit_events SET payload = :p WHERE seq = 4",
        p=json.dumps({"i": 4, "note": "approved by the plant manager"}))
    result = log.verify()
    assert not result.ok
    assert len(result.problems) == 1
    assert "Event 4 (promote)" in result.problems[0] and "changed" in result.problems[0]


@pytest.mark.parametrize("column, value", [
    ("actor", "mallory"), ("action", "decline"), ("subject", "usecase/scrap/4"),
    ("at", "2020-01-01 00:00:00")])
def test_any_edited_field_is_detected(store, log, column, value) -> None:
    if column == "at" and store.dialect == "postgresql":
        value = "2020-01-01 00:00:00+00"
    sql(store, f"UPDATE audit_events SET {column} = :v WHERE seq = 2", v=value)
    result = log.verify()
    assert not result.ok and "Event 2" in result.problems[0]


def test_a_payload_that_is_no_longer_json_is_reported_not_raised(store, log) -> None:
    sql(store, "UPDATE audit_events SET payload = '{broken' WHERE seq = 3")
    result = log.verify()
    assert not result.ok and "Event 3 (train)" in result.problems[0]


def test_a_rewritten_hash_breaks_the_next_link(store, log) -> None:
    sql(store, "UPDATE audit_events SET hash = :h WHERE seq = 3", h="f" * 64)
    result = log.verify()
    assert not result.ok
    assert any("Event 3" in p for p in result.problems)
    assert any("event 4" in p for p in result.problems)


def test_a_deleted_event_is_detected(store, log) -> None:
    sql(store, "DELETE FROM audit_events WHERE seq = 3")
    result = log.verify()
    assert not result.ok and result.count == 5
    assert result.problems == [("The trail jumps from event 2 to event 4 (promote): event 3 "
                                "was deleted.")]


def test_deleting_the_first_event_is_detected(store, log) -> None:
    sql(store, "DELETE FROM audit_events WHERE seq = 1")
    result = log.verify()
    assert not result.ok and "starts at event 2" in result.problems[0]


def test_a_deleted_and_renumbered_event_is_detected(store, log) -> None:
    sql(store, "DELETE FROM audit_events WHERE seq = 3")
    for seq in (4, 5, 6):
        sql(store, "UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    result = log.verify()
    assert not result.ok
    assert any("event 3" in p.lower() for p in result.problems)


def test_reordered_events_are_detected(store, log) -> None:
    sql(store, "UPDATE audit_events SET seq = -1 WHERE seq = 3")
    sql(store, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
    sql(store, "UPDATE audit_events SET seq = 4 WHERE seq = -1")
    result = log.verify()
    assert not result.ok
    assert "Event 3 (promote) was written as event 4: the events were reordered." in \
        result.problems
    assert "Event 4 (train) was written as event 3: the events were reordered." in \
        result.problems


def test_a_cut_off_tail_shows_only_against_a_known_head(store, log) -> None:
    known = log.head()
    sql(store, "DELETE FROM audit_events WHERE seq >= 5")
    assert log.verify().ok  # a shorter chain is valid on its own ...
    result = log.verify(known_head=known)  # ... but not against the head noted earlier
    assert not result.ok
    assert "cut off" in result.problems[0] and "event 4 (promote)" in result.problems[0]


def test_a_known_head_from_the_past_is_fine_when_the_trail_grew(log) -> None:
    known = log.head()
    log.append("score", "usecase/failure/batch/1", "olga", {})
    assert log.verify(known_head=known.upper()).ok


def test_a_malformed_known_head_is_an_input_error(log) -> None:
    with pytest.raises(InputError, match="64 hex"):
        log.verify(known_head="abc")


def test_append_joins_the_callers_transaction(store, log) -> None:
    head = log.head()
    with pytest.raises(RuntimeError), store.write() as conn:
        log.append("promote", "usecase/failure/model/9", "ana", {}, connection=conn)
        raise RuntimeError("the change it records failed")
    assert log.head() == head and log.count() == 6
    with store.write() as conn:
        event = log.append("promote", "usecase/failure/model/9", "ana", {}, connection=conn)
    assert log.head() == event.hash and log.verify().ok


def test_append_refuses_empty_words(log) -> None:
    with pytest.raises(InputError, match="actor"):
        log.append("promote", "usecase/failure", "  ", {})


def test_the_table_refuses_a_fork(store, log) -> None:
    # Even a writer that ignores the lock cannot store two events with one predecessor.
    last = log.events()[-1]
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        sql(store, "INSERT INTO audit_events (seq, id, at, actor, action, subject, payload, "
                   "prev_hash, hash) VALUES (99, 'x', :at, 'm', 'a', 's', '{}', :prev, :h)",
            at=last.at, prev=last.prev_hash, h="e" * 64)


def test_events_filter_and_order(log) -> None:
    assert [e.action for e in log.events(limit=2)] == ["score", "backup"]
    assert [e.seq for e in log.events(action="train")] == [3]
    assert [e.seq for e in log.events(subject="usecase/failure/1")] == [1]
    event = log.events()[0]
    assert event.at.tzinfo is not None and event.to_dict()["payload"] == {"i": 1, "note": "ok"}


def test_export_writes_every_event_and_the_head(tmp_path, log) -> None:
    (tmp_path / "export").mkdir()
    out = tmp_path / "export" / "audit.jsonl"
    head = log.export(out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert head == log.head()
    assert [e["seq"] for e in lines[:-1]] == [1, 2, 3, 4, 5, 6]
    assert lines[-1]["head"] == head and lines[-1]["count"] == 6
    assert lines[-1]["format"] == "planta.audit/1"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["audit.jsonl"]  # no temporary left


def test_concurrent_appends_from_threads_keep_one_chain(store_url) -> None:
    with open_store(store_url) as store:
        log = AuditLog(store)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for i in range(15):
                    log.append("score", f"worker/{worker}", f"w{worker}", {"i": i})
            except Exception as exc:  # noqa: BLE001 - pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        result = log.verify()
        assert (result.ok, result.count) == (True, 120), result.problems


def _append_from_process(url: str, worker: int, n: int) -> None:
    with open_store(url) as store:
        log = AuditLog(store)
        for i in range(n):
            log.append("score", f"process/{worker}", f"p{worker}", {"i": i})


def test_concurrent_appends_from_processes_keep_one_chain(store_url) -> None:
    open_store(store_url).close()  # create the schema once, before the race
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_from_process, args=(store_url, w, 20)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with open_store(store_url) as store:
        result = AuditLog(store).verify()
    assert (result.ok, result.count) == (True, 80), result.problems


def test_driver_errors_become_store_errors(store, log) -> None:
    sql(store, "DROP TABLE audit_events")
    with pytest.raises(StoreError, match="Cannot read the planta store"):
        log.head()
