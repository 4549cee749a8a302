"""The device's outbox on a real SQLite file: group commits, acknowledgement, restarts, and the
disk cap (oldest dropped first, counted, kept across restarts)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from edgefakes import FakeModel, reading

from planta_edge.errors import ConfigError, StoreError
from planta_edge.outbox import Outbox, OutboxRow
from planta_edge.runtime import EdgeRuntime


def _rows(start: int, n: int, size: int = 10) -> list[OutboxRow]:
    return [OutboxRow(f"ID{i:06d}", "2026-11-23T10:00:00.000Z", "failure", 1, f"m{i}",
                      b"x" * size) for i in range(start, start + n)]


def test_rows_survive_reopen_in_order_and_ack_deletes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put(_rows(0, 5)).result()
    box.put(_rows(5, 5)).result()
    box.close()
    box = Outbox(tmp_path / "o.db")
    try:
        rows = box.peek(100)
        assert [r.prediction_id for r in rows] == [f"ID{i:06d}" for i in range(10)]
        assert box.ack(rows[3].seq) == 4
        assert box.stats().depth == 6 and box.stats().bytes == 60
        assert box.peek(1)[0].prediction_id == "ID000004"
    finally:
        box.close()


def test_concurrent_puts_share_commits(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_wait_ms=2)
    futures = []
    lock = threading.Lock()

    def put(k: int) -> None:
        for i in range(50):
            f = box.put(_rows(k * 1000 + i, 1))
            with lock:
                futures.append(f)

    threads = [threading.Thread(target=put, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(f.result() for f in futures) == 200
    stats = box.stats()
    box.close()
    assert stats.committed == 200 and stats.depth == 200
    assert stats.commits < 200          # one fsync covered several puts


def test_row_cap_drops_oldest_counts_and_remembers(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=100)
    for start in range(0, 350, 50):
        box.put(_rows(start, 50)).result()
    stats = box.stats()
    assert (stats.depth, stats.dropped) == (100, 250)
    assert (stats.first_dropped, stats.last_dropped) == ("ID000000", "ID000249")
    assert box.peek(1)[0].prediction_id == "ID000250"       # the newest 100 are kept
    box.close()
    again = Outbox(tmp_path / "o.db", max_rows=100)
    try:
        assert again.stats().dropped == 250 and again.stats().depth == 100
    finally:
        again.close()


def test_byte_cap_drops_oldest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=1000)
    try:
        box.put(_rows(0, 30, size=100)).result()
        stats = box.stats()
        assert stats.bytes <= 1000 and stats.depth == 10 and stats.dropped == 20
    finally:
        box.close()


def test_duplicate_ids_are_stored_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    try:
        box.put(_rows(0, 3)).result()
        box.put(_rows(2, 3)).result()
        assert box.stats().depth == 5 and box.stats().bytes == 50
    finally:
        box.close()


def test_bad_settings_and_closed_outbox_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "a.db", max_rows=0)
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "b.db", policy="drop_newest")
    box = Outbox(tmp_path / "c.db")
    box.close()
    with pytest.raises(StoreError):
        box.put(_rows(0, 1)).result()


def test_failed_commit_fails_the_future_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    try:
        # Another process holds the write lock past the busy timeout: the commit fails.
        box._db.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        future = box.put(_rows(0, 1))
        with pytest.raises(StoreError, match="Cannot write the outbox"):
            future.result(10)
        other.execute("ROLLBACK")
        other.close()
        assert box.put(_rows(1, 1)).result(10) == 1          # and it recovers
        assert [r.prediction_id for r in box.peek(10)] == ["ID000001"]
    finally:
        box.close()


def test_runtime_ids_keep_increasing_across_restarts(tmp_path: Path) -> None:
    ids: list[str] = []
    for _ in range(3):
        box = Outbox(tmp_path / "o.db")
        rt = EdgeRuntime(FakeModel(), box)
        ids += [p.prediction_id for p in rt.predict([reading(i) for i in range(5)])]
        rt.close()
        box.close()
    assert ids == sorted(ids) and len(set(ids)) == 15


def test_cap_during_outage_runtime_keeps_predicting(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=40)
    rt = EdgeRuntime(FakeModel(), box)
    try:
        made = []
        for i in range(0, 200, 10):
            made += [p.prediction_id for p in rt.predict([reading(j) for j in range(i, i + 10)])]
        assert None not in made and len(made) == 200
        stats = box.stats()
        assert (stats.depth, stats.dropped) == (40, 160)
        assert [r.prediction_id for r in box.peek(100)] == made[-40:]
        assert (stats.first_dropped, stats.last_dropped) == (made[0], made[159])
    finally:
        rt.close()
        box.close()
