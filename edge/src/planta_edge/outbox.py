"""The device's outbox: every prediction is written here first, then sent to the hub.

    put(rows) ─► queue ─► writer thread ─► one SQLite transaction per batch ─► fsync ─► futures
                                │  (group commit: all rows waiting share one commit)
                                ▼
    outbox   seq (insertion order) · prediction id · at · usecase · version · entity · body
    state    counters that survive restarts: dropped, bytes, last id

    peek(n)     the oldest n rows, for the hub sync
    ack(seq)    delete every row up to ``seq`` (the hub has them)

**Durability.** SQLite in WAL mode with ``synchronous=FULL``: a commit is fsynced before its
futures resolve, so a prediction acknowledged to its source (MQTT PUBACK, HTTP answer, a CSV
moved to ``done/``) survives kill -9 and a power cut. One fsync covers a whole batch, which is
what makes thousands of predictions a second possible on an SD card.

**Bounded disk.** ``max_rows`` and ``max_bytes`` (payload bytes) cap the outbox during a long
outage. When a commit would pass a cap, the oldest rows are deleted in the same transaction
(policy ``drop_oldest``): the newest readings matter most to a plant. Every dropped row is
counted (``dropped``, with the first and last dropped prediction ids), logged as a warning,
and reported to the hub in each heartbeat, so a gap is never silent.

>>> import tempfile, pathlib
>>> box = Outbox(pathlib.Path(tempfile.mkdtemp()) / "outbox.db", max_rows=2)
>>> [f.result() for f in [box.put([OutboxRow(f"ID{i}", "2026-01-01T00:00:00Z", "failure", 1,
...                                          None, b"{}") for i in range(3)])]] and None
>>> [r.prediction_id for r in box.peek(10)], box.stats().dropped
(['ID1', 'ID2'], 1)
>>> box.close()
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planta_edge.errors import ConfigError, StoreError

log = logging.getLogger("planta_edge.outbox")

POLICIES = ("drop_oldest",)
# Rows one transaction writes at most: bounds the time a commit holds the write lock.
MAX_BATCH_ROWS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    usecase TEXT NOT NULL,
    version INTEGER NOT NULL,
    entity TEXT,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One prediction waiting for the hub. ``body`` is its JSON (inputs and outputs)."""

    prediction_id: str
    at: str
    usecase: str
    version: int
    entity: str | None
    body: bytes
    seq: int = 0


@dataclass(frozen=True)
class OutboxStats:
    """How the outbox stands: rows waiting, payload bytes, and what the cap dropped."""

    depth: int
    bytes: int
    dropped: int
    first_dropped: str | None
    last_dropped: str | None
    committed: int
    commits: int

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "bytes": self.bytes, "dropped": self.dropped,
                "first_dropped": self.first_dropped, "last_dropped": self.last_dropped,
                "committed": self.committed, "commits": self.commits}


class Outbox:
    """A durable, bounded queue of predictions on the device.

    Args:
        path: the SQLite file (created with its folder).
        max_rows: the most predictions kept waiting (None: no row cap).
        max_bytes: the most payload bytes kept waiting (None: no byte cap).
        policy: what to do at the cap; ``drop_oldest`` is the one policy.
        max_wait_ms: how long the writer waits for company after the first row of a batch
            (0: commit at once; busy periods batch by themselves while a commit runs).
    """

    def __init__(self, path: Path | str, *, max_rows: int | None = None,
                 max_bytes: int | None = None, policy: str = "drop_oldest",
                 max_wait_ms: float = 0.0) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"Outbox policy {policy!r} is not one of {', '.join(POLICIES)}.",
                              hint="Use drop_oldest: the oldest predictions go first, counted.")
        if (max_rows is not None and max_rows < 1) or (max_bytes is not None and max_bytes < 1):
            raise ConfigError("The outbox caps (max_rows, max_mb) must be positive.")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.policy = policy
        self.max_wait_ms = max_wait_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()          # the writer's connection
        self._read = self._connect()        # peek/ack/stats (WAL: never blocks the writer)
        self._read_lock = threading.Lock()
        # Held by a commit and by an ack around their transaction and counter updates, so the
        # in-memory depth and bytes always match the file.
        self._count_lock = threading.Lock()
        self._depth, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox").fetchone()
        state = dict(self._db.execute("SELECT key, value FROM state").fetchall())
        self._dropped = int(state.get("dropped", 0))
        self._first_dropped = state.get("first_dropped")
        self._last_dropped = state.get("last_dropped")
        self._committed = 0
        self._commits = 0
        self._queue: collections.deque[tuple[list[OutboxRow], Future[int]]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="planta-edge-outbox", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit; the acknowledgement waits for it.
            db.execute("PRAGMA synchronous=FULL")
            # The outbox appends at one end and deletes at the other: a small page cache (512 KiB
            # instead of 2 MiB per connection) costs nothing and keeps a device's memory down.
            db.execute("PRAGMA cache_size=-512")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the outbox at {self.path}: {exc}.",
                             hint="Check the state folder (state_dir) and its free space.") from exc
        return db

    # -- writing ------------------------------------------------------------------------------
    def put(self, rows: list[OutboxRow]) -> Future[int]:
        """Queue ``rows``; the future resolves (to how many were written) after their commit.

        The future fails with :class:`StoreError` when the commit fails (disk full) or the
        outbox is closed: the caller must then not acknowledge the rows to their source.
        """
        future: Future[int] = Future()
        with self._cond:
            if self._closing:
                future.set_exception(StoreError("The outbox is closed; nothing was written."))
                return future
            self._queue.append((rows, future))
            self._cond.notify()
        return future

    def _take(self) -> list[tuple[list[OutboxRow], Future[int]]] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            if self.max_wait_ms > 0:
                deadline = time.monotonic() + self.max_wait_ms / 1000
                while not self._closing and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            batch, n = [], 0
            while self._queue and n < MAX_BATCH_ROWS:
                item = self._queue.popleft()
                batch.append(item)
                n += len(item[0])
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._commit([row for rows, _ in batch for row in rows])
            except sqlite3.Error as exc:
                error = StoreError(f"Cannot write the outbox at {self.path}: {exc}.",
                                   hint="Free some disk space; the source will send again.")
                log.error("%s", error)
                for _, future in batch:
                    future.set_exception(error)
            else:
                for rows, future in batch:
                    future.set_result(len(rows))

    def _commit(self, rows: list[OutboxRow]) -> None:
        db = self._db
        with self._count_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.executemany(
                    "INSERT OR IGNORE INTO outbox (prediction_id, at, usecase, version, entity, "
                    "body) VALUES (?, ?, ?, ?, ?, ?)",
                    [(r.prediction_id, r.at, r.usecase, r.version, r.entity, r.body)
                     for r in rows])
                added = cur.rowcount if cur.rowcount >= 0 else len(rows)
                # A row ignored as a duplicate (a source sending again) adds no bytes either;
                # exact only when none was ignored, which is the normal case.
                size = sum(len(r.body) for r in rows) if added == len(rows) else \
                    self._stored_bytes()
                total = self._bytes + size if added == len(rows) else size
                dropped = self._enforce_cap(self._depth + added, total)
                if rows:
                    db.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('last_id', ?)",
                               (max(r.prediction_id for r in rows),))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._committed += len(rows)
        self._commits += 1
        if dropped:
            log.warning("Outbox full (cap %s rows / %s bytes): dropped the %d oldest "
                        "predictions, %d in all since the outbox was created (%s … %s).",
                        self.max_rows, self.max_bytes, dropped, self._dropped,
                        self._first_dropped, self._last_dropped)

    def _stored_bytes(self) -> int:
        return int(self._db.execute("SELECT coalesce(sum(length(body)), 0) FROM outbox")
                   .fetchone()[0])

    def _enforce_cap(self, depth: int, total: int) -> int:
        """Delete the oldest rows until both caps hold (inside the open transaction)."""
        db = self._db
        dropped = 0
        over_rows = self.max_rows is not None and depth > self.max_rows
        over_bytes = self.max_bytes is not None and total > self.max_bytes
        if over_rows or over_bytes:
            excess = depth - self.max_rows if over_rows and self.max_rows is not None else 0
            cut: list[tuple[int, str, int]] = []
            for seq, pid, size in db.execute(
                    "SELECT seq, prediction_id, length(body) FROM outbox ORDER BY seq"):
                if len(cut) >= excess and (self.max_bytes is None or total <= self.max_bytes):
                    break
                cut.append((seq, pid, size))
                total -= size
            if cut:
                db.execute("DELETE FROM outbox WHERE seq <= ?", (cut[-1][0],))
                dropped = len(cut)
                depth -= dropped
                self._dropped += dropped
                if self._first_dropped is None:
                    self._first_dropped = cut[0][1]
                self._last_dropped = cut[-1][1]
                db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", [
                    ("dropped", str(self._dropped)), ("first_dropped", self._first_dropped),
                    ("last_dropped", self._last_dropped)])
        # A failed commit raises before these assignments: the counters stay as stored.
        self._depth, self._bytes = depth, total
        return dropped

    # -- reading and acknowledging -------------------------------------------------------------
    def peek(self, n: int) -> list[OutboxRow]:
        """The oldest ``n`` rows, in the order they were made."""
        with self._read_lock:
            rows = self._read.execute(
                "SELECT prediction_id, at, usecase, version, entity, body, seq FROM outbox "
                "ORDER BY seq LIMIT ?", (n,)).fetchall()
        return [OutboxRow(*row) for row in rows]

    def ack(self, up_to_seq: int) -> int:
        """Delete every row up to ``up_to_seq`` (the hub has committed them); returns how many.

        Serialized with the writer's commits, so a delete never races a commit's cap check.
        """
        with self._count_lock, self._read_lock:
            db = self._read
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    n, size = db.execute(
                        "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox "
                        "WHERE seq <= ?", (up_to_seq,)).fetchone()
                    db.execute("DELETE FROM outbox WHERE seq <= ?", (up_to_seq,))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"Cannot update the outbox at {self.path}: {exc}.",
                                 hint="Free some disk space; the hub ignores repeats.") from exc
            self._depth -= n
            self._bytes -= size
        return int(n)

    def stats(self) -> OutboxStats:
        """Depth, bytes, dropped counts (exact as of the last commit or ack)."""
        return OutboxStats(depth=self._depth, bytes=self._bytes, dropped=self._dropped,
                           first_dropped=self._first_dropped, last_dropped=self._last_dropped,
                           committed=self._committed, commits=self._commits)

    def get_state(self, key: str) -> str | None:
        """A value the runtime keeps beside the outbox (the last prediction id)."""
        with self._read_lock:
            row = self._read.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        """Write what is queued, then stop the writer and close the file. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        with self._read_lock:
            self._read.close()
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["POLICIES", "Outbox", "OutboxRow", "OutboxStats"]
