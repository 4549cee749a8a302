"""The prediction log: every answered request, durable, written by group commit.

    submit(entry) ─► queue ─► writer thread ─► one transaction per batch ─► commit ─► futures
      write(entry)   (async)      │ drains whatever is queued (up to max_batch_rows),
      write_now(entry) (blocking) │ waits at most max_wait_ms for company first
                                  ▼
    predictions   one row per request (or job chunk) and model version; its records have the
                  consecutive ids ``id`` … ``last_id`` (planta.store.ids), so a 1,000-record
                  request is one insert
    rejections    one row per request refused by the contract (counts by rule)

    get(prediction_id) / get_many(ids)   one record, found by range (id <= pid <= last_id)
    query(usecase, since, …, limit)      records, newest first
    apply_retention(usecase, days, max_rows)   delete whole rows, oldest first

**What "written" means.** A future resolves only after the transaction holding its entry has
committed; a future that failed (or never resolved) means the entry may be missing, and the
caller must not report it as logged. How far a committed entry survives depends on
``durability``:

* ``"full"`` (default). SQLite commits with ``synchronous=FULL`` in WAL mode: the WAL is fsynced
  before the commit returns, so an acknowledged prediction survives kill -9, an operating-system
  crash and a power cut (as far as the disk honours a flush: drives without power-loss
  protection may not). PostgreSQL keeps the server's own setting (``synchronous_commit=on`` by
  default: the WAL is flushed at commit). One fsync is shared by every entry of a batch.
* ``"process"``. SQLite: ``synchronous=NORMAL`` on the log's connection only (the registry and
  the audit trail keep FULL): a commit reaches the operating system but is not fsynced, so it
  survives kill -9 of planta, while an operating-system crash or a power cut can lose the last
  committed entries (never corrupt the store). PostgreSQL: ``synchronous_commit=off`` for the
  log's session: survives planta dying; a database-server crash or a power cut can lose about
  the last 3 × ``wal_writer_delay`` (600 ms by default) of entries.

The log writes on its own connection and never takes the store's global write lock
(``Store.write()``), so training and approvals never wait for it, nor it for them beyond
SQLite's single-writer rule (busy timeout 30 s).

>>> from planta.store.metadata import open_store, utc_now
>>> from planta.store.ids import reserve
>>> store = open_store("sqlite://")
>>> with PredictionLog(store) as log:
...     first = log.write_now(LogEntry(
...         first_id=reserve(2), n=2, at=utc_now(), usecase="failure", version=3,
...         route="production", channel="sync", caller="line-4",
...         inputs_json='[{"torque_nm": 41.5}, {"torque_nm": 62.0}]',
...         outputs_json='{"prediction": [0, 1], "probability": [0.02, 0.91], "score": null}'))
...     [(r.inputs["torque_nm"], r.prediction) for r in log.query("failure")]
[(62.0, 1), (41.5, 0)]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from sqlalchemy import Connection, Text, cast, delete, func, or_, select
from sqlalchemy.exc import DataError, IntegrityError

from planta.errors import InputError, StoreError
from planta.store.ids import decode, encode, id_range, is_id, new_id
from planta.store.metadata import Store, feedback, predictions, rejections, utc_now
from planta.store.raw_insert import RawInsert

_logger = logging.getLogger(__name__)

ROUTES = ("production", "canary", "shadow", "pinned")
CHANNELS = ("sync", "v2", "job", "batch", "edge", "ui")
DURABILITIES = ("full", "process")
Durability = Literal["full", "process"]

# Lengths of the table's string columns (metadata.predictions), checked at submit: one
# over-long caller name must not fail the whole batch it would have been committed with.
_LIMITS = {"usecase": 100, "caller": 200, "request_id": 64, "device": 100}
# Retention deletes this many rows per transaction, so the log's writer (and SQLite's other
# writers) never wait long for the lock.
_RETENTION_BATCH = 1000
# While unhealthy and idle, the writer tries the store this often (seconds), so that health
# comes back without traffic; and it wants this much free disk before calling it healthy.
PROBE_S = 5.0
_MIN_FREE_BYTES = 1 << 20
# Ranges per feedback DELETE: SQLite parses "a OR b OR …" as a tree and refuses depth > 1000.
_OR_CHUNK = 200


@dataclass(kw_only=True, slots=True)
class LogEntry:
    """One answered request (or job chunk) for one model version, ready to log.

    ``inputs_json`` is a JSON array of the ``n`` records (canonical field names) and
    ``outputs_json`` the object ``{"prediction": [...], "probability": [...] | null,
    "score": [...] | null}``, both already serialized by the caller (orjson gives bytes):
    the log stores them as they are. ``first_id`` is the first of ``n`` consecutive ids
    (``planta.store.ids.reserve(n)``); the records' prediction ids follow from it.
    ``entities`` holds the entity of each record, or is None.
    """

    first_id: int | str
    n: int
    at: datetime
    usecase: str
    version: int
    route: str
    channel: str
    caller: str
    request_id: str | None = None
    latency_ms: float | None = None
    device: str | None = None
    entities: Sequence[Any] | None = None
    inputs_json: bytes | str
    outputs_json: bytes | str
    # In memory only, never stored: the records as the contract read them, when the caller
    # validated them already (see planta.services.predict.Checked), so that observers such as
    # the monitoring rollup need not parse and validate ``inputs_json`` a second time.
    checked: Any = None

    @property
    def prediction_id(self) -> str:
        """The first record's prediction id, as text (upper case, as stored)."""
        return self.first_id.upper() if isinstance(self.first_id, str) else encode(self.first_id)


@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction (one record of a logged request)."""

    prediction_id: str
    at: datetime
    usecase: str
    version: int
    route: str
    channel: str
    caller: str
    latency_ms: float | None
    entity: Any
    inputs: dict[str, Any]
    prediction: Any
    probability: Any
    score: Any
    request_id: str | None = None
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"prediction_id": self.prediction_id, "at": self.at.isoformat(),
                "usecase": self.usecase, "version": self.version, "route": self.route,
                "channel": self.channel, "caller": self.caller, "latency_ms": self.latency_ms,
                "entity": self.entity, "inputs": dict(self.inputs),
                "prediction": self.prediction, "probability": self.probability,
                "score": self.score, "request_id": self.request_id, "device": self.device}


@dataclass(frozen=True)
class RejectionSummary:
    """Requests refused by the contract in a window: how many, how many records, which rules."""

    requests: int
    records: int
    rules: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "records": self.records, "rules": dict(self.rules)}


# Called with the entries of each commit (see PredictionLog.add_observer).
Observer = Callable[[list[LogEntry]], None]


class _Item:
    """A queued row with its future."""

    __slots__ = ("future", "kind", "row")

    def __init__(self, kind: str, row: Any, future: Future[str]) -> None:
        self.kind = kind            # "p": a LogEntry, "r": a rejection row (dict)
        self.row = row
        self.future = future


class PredictionLog:
    """The prediction log of one store, with its background writer.

    Args:
        store: the opened store; the log opens its own connection from ``store.engine``.
        max_batch_rows: the most rows one transaction writes.
        max_wait_ms: how long the writer waits for more entries after the first arrives, so
            that quiet periods still share fsyncs; busy periods batch by themselves (entries
            queue up while the previous commit runs). 0 writes at once.
        max_depth: entries queued beyond this are refused at once (the future fails with
            :class:`StoreError`) instead of growing memory while the store is down or slow.
        durability: ``"full"`` or ``"process"`` (see the module docstring).
        observers: called with each commit's entries (see :meth:`add_observer`).

    Close it with :meth:`close` (or use it as a context manager): it writes what is queued,
    then stops the writer.
    """

    def __init__(self, store: Store, *, max_batch_rows: int = 1000, max_wait_ms: float = 2.0,
                 max_depth: int = 100_000, durability: Durability | str = "full",
                 observers: Iterable[Observer] = ()) -> None:
        if durability not in DURABILITIES:
            raise InputError(f"Prediction log durability {durability!r} is not one of "
                             f"{', '.join(DURABILITIES)}.",
                             hint="Use full (survives a power cut) or process (survives a "
                                  "crash of planta, not a power cut).")
        if max_batch_rows < 1 or max_depth < 1 or max_wait_ms < 0:
            raise InputError("max_batch_rows and max_depth must be at least 1, max_wait_ms "
                             "at least 0.")
        self.store = store
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = max_wait_ms
        self.max_depth = max_depth
        self.durability = durability
        self._queue: collections.deque[_Item] = collections.deque()
        self._first_at = 0.0  # when the oldest queued entry arrived (monotonic)
        self._cond = threading.Condition(threading.Lock())
        self._pending = 0     # submitted and not yet resolved
        self._closing = False
        self._drain = True
        self._conn: Connection | None = None
        self._healthy = True
        self._last_error: str | None = None
        self._written = 0
        self._commits = 0
        self._raw: tuple[RawInsert, RawInsert] | None = None  # prepared on the first write
        self._in_memory = store.dialect == "sqlite" and store.sqlite_path is None
        # Started by the first entry, so that a log opened only to read costs no thread.
        self._thread: threading.Thread | None = None
        self._observers: list[Observer] = list(observers)

    # -- state, for /readyz and Prometheus --------------------------------------------------
    @property
    def depth(self) -> int:
        """Entries submitted and not yet written (or failed)."""
        return self._pending

    @property
    def healthy(self) -> bool:
        """False after a failed commit, until a later commit succeeds; while no entry comes,
        the writer tries the store every ``PROBE_S`` seconds, so health also comes back
        without traffic."""
        return self._healthy

    @property
    def last_error(self) -> str | None:
        """The message of the last failed commit, or None once a commit succeeded."""
        return self._last_error

    @property
    def written(self) -> int:
        """Rows (requests and rejections) committed since the log was opened."""
        return self._written

    @property
    def commits(self) -> int:
        """Transactions committed since the log was opened (``written / commits`` is the mean
        group size)."""
        return self._commits

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(entries)`` after each commit with the entries it committed (in
        submit order; rejections left out). It runs on the writer thread after the futures
        resolved, so it should only hand the entries over (a queue); what it raises is logged
        and never fails a write."""
        self._observers.append(observer)

    # -- writing ------------------------------------------------------------------------------
    def submit(self, entry: LogEntry) -> Future[str]:
        """Queue ``entry``; the future resolves to its first prediction id once committed.

        Thread-safe and non-blocking. The future fails with :class:`StoreError` when the
        commit fails (disk full, database unreachable), the log is closed, or ``max_depth``
        entries are already waiting.

        Raises:
            InputError: the entry is malformed (a bug in the caller, not a storage problem).
        """
        _check(entry)
        return self._enqueue("p", entry)

    def submit_many(self, entries: Sequence[LogEntry]) -> list[Future[str]]:
        """Queue ``entries`` together (one lock, one wake-up of the writer); one future each,
        in order. Entries queued together are committed in one transaction when they fit in
        ``max_batch_rows`` with what is already waiting. A malformed entry's future fails with
        :class:`InputError` and the others are queued."""
        futures: list[Future[str] | None] = []
        items: list[_Item] = []
        for entry in entries:
            try:
                _check(entry)
            except InputError as exc:
                failed: Future[str] = Future()
                failed.set_exception(exc)
                futures.append(failed)
                continue
            item = _Item("p", entry, Future())
            items.append(item)
            futures.append(None)
        queued = iter(self._enqueue_items(items))
        return [f if f is not None else next(queued) for f in futures]

    async def write(self, entry: LogEntry) -> str:
        """Log ``entry`` and wait, without blocking the event loop, until it is committed."""
        return await asyncio.wrap_future(self.submit(entry))

    def write_now(self, entry: LogEntry) -> str:
        """Log ``entry`` and block until it is committed; return its first prediction id."""
        return self.submit(entry).result()

    def record_rejection(self, usecase: str, channel: str, caller: str, n_records: int,
                         rules: Mapping[str, int]) -> Future[str]:
        """Count a request the contract refused (``rules``: rule code → violations).

        Written by the same group commit as predictions; the future resolves to the
        rejection's id. Callers may ignore it: a lost count does not lose a prediction.
        """
        if channel not in CHANNELS:
            raise InputError(f"Channel {channel!r} is not one of {', '.join(CHANNELS)}.")
        row = {"id": new_id(), "at": utc_now(), "usecase": _text("usecase", usecase),
               "channel": channel, "caller": _text("caller", caller),
               "n_records": int(n_records), "rules": {str(k): int(v) for k, v in rules.items()}}
        return self._enqueue("r", row)

    def _enqueue(self, kind: str, row: Any) -> Future[str]:
        return self._enqueue_items([_Item(kind, row, Future())])[0]

    def _enqueue_items(self, items: list[_Item]) -> list[Future[str]]:
        if not items:
            return []
        with self._cond:
            if self._closing:
                for item in items:
                    item.future.set_exception(StoreError(
                        "The prediction log is closed; the entry was not written.",
                        hint="This happens while planta shuts down; send the request again."))
                return [item.future for item in items]
            if self._pending + len(items) > self.max_depth:
                for item in items:
                    item.future.set_exception(StoreError(
                        f"The prediction log is {self._pending:,} entries behind; the entry "
                        f"was not written ({self._last_error or 'the store is slow'}).",
                        hint="Check the disk and the database; planta retries on the next "
                             "entry."))
                return [item.future for item in items]
            if self._thread is None:
                # Daemon: an interpreter exiting without close() must not hang on it; what was
                # queued then was never acknowledged (no future resolved), so nothing
                # acknowledged is lost.
                self._thread = threading.Thread(target=self._run, name="planta-prediction-log",
                                                daemon=True)
                self._thread.start()
            was = len(self._queue)
            self._pending += len(items)
            self._queue.extend(items)
            # Wake the writer only when it may be waiting: on the first entries, and when a
            # full batch is ready. A notify per entry would wake it thousands of times a second.
            if was == 0:
                self._first_at = time.monotonic()
                self._cond.notify()
            elif was < self.max_batch_rows <= len(self._queue):
                self._cond.notify()
        return [item.future for item in items]

    def close(self, drain: bool = True) -> None:
        """Stop the writer: with ``drain`` write everything queued first, otherwise fail the
        queued entries' futures. Idempotent."""
        with self._cond:
            self._closing = True
            self._drain = self._drain and drain
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[_Item] | None:
        """The next batch, waiting for it; None when closed and nothing is left to write; an
        empty list when the store should be probed (unhealthy and idle)."""
        with self._cond:
            while not self._queue and not self._closing:
                if self._healthy:
                    self._cond.wait()
                elif not self._cond.wait(PROBE_S):
                    return []
            if self._closing and not self._drain:
                left = list(self._queue)
                self._queue.clear()
                self._pending -= len(left)
                _fail(left, StoreError("The prediction log was closed before the entry was "
                                       "written.", hint="Send the request again after the "
                                       "restart."))
                return None
            if not self._queue:
                return None
            if self.max_wait_ms > 0:
                deadline = self._first_at + self.max_wait_ms / 1000
                while len(self._queue) < self.max_batch_rows and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            count = min(len(self._queue), self.max_batch_rows)
            batch = [self._queue.popleft() for _ in range(count)]
            self._first_at = time.monotonic()
            return batch

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                if not batch:
                    self._probe()
                    continue
                # Once running, a future can no longer be cancelled (asyncio.wrap_future
                # cancels it when a request is abandoned): the entry is written regardless.
                for item in batch:
                    item.future.set_running_or_notify_cancel()
                try:
                    self._commit(batch)
                except StoreError as exc:
                    self._healthy, self._last_error = False, exc.message
                    self._settle(batch)
                    _fail(batch, exc)
                except Exception as exc:  # noqa: BLE001 - the writer must outlive any batch
                    # A bug, not the storage: a dead writer would leave every later future
                    # unresolved and its caller waiting forever.
                    _logger.exception("The prediction log failed to write %d entries",
                                      len(batch))
                    self._disconnect(invalidate=True)
                    error = StoreError(f"The prediction log failed unexpectedly "
                                       f"({type(exc).__name__}: {exc}); the entry was not "
                                       "written.", hint="The planta log has the details; "
                                       "send them to whoever supports planta here.")
                    self._healthy, self._last_error = False, error.message
                    self._settle(batch)
                    _fail(batch, error)
                else:
                    self._healthy, self._last_error = True, None
                    self._commits += 1
                    self._settle(batch)
                    self._resolve(batch)
                    self._notify(batch)
        finally:
            self._disconnect()

    def _commit(self, batch: list[_Item]) -> None:
        try:
            with self.store.errors("write the prediction log to"):
                conn = self._connection()
                if self._driver_commit(conn, batch):
                    return
                try:
                    with conn.begin():
                        self._insert(conn, batch)
                except (IntegrityError, DataError):
                    if len(batch) == 1:
                        raise
                    # A bad row (a reused id) must not fail the good ones sharing its
                    # transaction: write each under a savepoint, still one commit.
                    with conn.begin():
                        for item in batch:
                            try:
                                with conn.begin_nested():
                                    self._insert(conn, [item])
                            except (IntegrityError, DataError) as exc:
                                item.future.set_exception(_row_error(self.store, exc))
        except StoreError:
            # A new connection next time, not this one back from the pool: after a dropped
            # server or a full disk, a reused connection can keep failing.
            self._disconnect(invalidate=True)
            raise

    def _probe(self) -> None:
        """Try the store while no entry comes: an empty write transaction on a fresh
        connection, and (SQLite file) some free disk. Without it, a server taken out of
        rotation because the log was unhealthy would never see the store come back."""
        try:
            with self.store.errors("write the prediction log to"):
                with self._connection().begin():
                    pass
                if self.store.sqlite_path is not None:
                    free = shutil.disk_usage(self.store.sqlite_path.parent).free
                    if free < _MIN_FREE_BYTES:
                        raise StoreError(
                            f"Cannot write the prediction log to the planta store at "
                            f"{self.store.url}: only {free:,} bytes are free on its disk.",
                            hint="Free some disk space, then try again.")
        except StoreError as exc:
            self._disconnect(invalidate=True)
            self._last_error = exc.message
        else:
            self._healthy, self._last_error = True, None

    def _statements(self, conn: Connection) -> tuple[RawInsert, RawInsert]:
        # One prepared statement per table through the driver's executemany: Core's per-row
        # parameter handling cost about 6 µs a row more (RawInsert).
        if self._raw is None:
            self._raw = (RawInsert(predictions, _PREDICTION_COLUMNS, conn.dialect),
                         RawInsert(rejections, _REJECTION_COLUMNS, conn.dialect))
        return self._raw

    def _insert(self, conn: Connection, batch: list[_Item]) -> None:
        pred, rej = self._statements(conn)
        pred.execute(conn, [_row(item.row) for item in batch if item.kind == "p"])
        rej.execute(conn, [tuple(item.row[c] for c in _REJECTION_COLUMNS)
                           for item in batch if item.kind == "r"])

    def _driver_commit(self, conn: Connection, batch: list[_Item]) -> bool:
        """SQLite file: BEGIN IMMEDIATE, the inserts and COMMIT straight on the sqlite3
        connection, which saves SQLAlchemy's begin/commit bookkeeping (about 150 µs of CPU per
        group). The commit is the same (synchronous=FULL fsyncs the WAL before COMMIT returns).
        Returns False, with nothing written, on any driver error: the caller then writes the
        batch through SQLAlchemy, which classifies the error (a bad row, a full disk)."""
        if self.store.dialect != "sqlite" or self._in_memory:
            return False
        import sqlite3

        pred, rej = self._statements(conn)
        try:
            rows = [pred.bind(_row(item.row)) for item in batch if item.kind == "p"]
            refused = [rej.bind(tuple(item.row[c] for c in _REJECTION_COLUMNS))
                       for item in batch if item.kind == "r"]
        except (TypeError, ValueError):
            return False  # a value no column takes: SQLAlchemy names it
        # dbapi_connection, not driver_connection: the latter is None once detached
        # (durability "process"); for pysqlite both are the sqlite3 connection.
        dbapi = conn.connection.dbapi_connection
        if not isinstance(dbapi, sqlite3.Connection):
            return False
        cur = dbapi.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            if rows:
                cur.executemany(pred.sql, rows)
            if refused:
                cur.executemany(rej.sql, refused)
            cur.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                if dbapi.in_transaction:
                    cur.execute("ROLLBACK")
            return False
        finally:
            cur.close()
        return True

    def _settle(self, batch: list[_Item]) -> None:
        with self._cond:
            self._pending -= len(batch)

    def _resolve(self, batch: list[_Item]) -> None:
        for item in batch:
            if item.future.done():  # failed alone under its savepoint
                continue
            self._written += 1
            item.future.set_result(item.row.prediction_id if item.kind == "p" else item.row["id"])

    def _notify(self, batch: list[_Item]) -> None:
        """Hand the committed entries to the observers (after the futures: a slow observer
        never delays an acknowledgement)."""
        if not self._observers:
            return
        entries = [item.row for item in batch
                   if item.kind == "p" and item.future.exception() is None]
        if not entries:
            return
        for observer in list(self._observers):
            try:
                observer(entries)
            except Exception:  # noqa: BLE001 - an observer never fails the log
                _logger.exception("A prediction log observer failed on %d entries",
                                  len(entries))

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.store.engine.connect()
            try:
                if self.store.dialect == "sqlite":
                    conn.execution_options(planta_begin="IMMEDIATE")
                # An in-memory store has nothing to make durable, and its one shared
                # connection must not be detached.
                if self.durability == "process" and not self._in_memory:
                    # Detached: the relaxed setting dies with this connection and never
                    # reaches a pooled one that the registry would use.
                    raw = conn.connection.driver_connection
                    conn.detach()
                    assert raw is not None
                    if self.store.dialect == "sqlite":
                        raw.execute("PRAGMA synchronous=NORMAL")
                    else:
                        with conn.begin():
                            conn.exec_driver_sql("SET synchronous_commit TO off")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _disconnect(self, *, invalidate: bool = False) -> None:
        if self._conn is not None:
            # A broken connection (a dropped server) may fail to close; it is gone either way.
            with contextlib.suppress(Exception):
                if invalidate and not self._in_memory:
                    self._conn.invalidate()
                self._conn.close()
            self._conn = None

    # -- reading ------------------------------------------------------------------------------
    def get(self, prediction_id: str) -> PredictionRecord | None:
        """The logged prediction ``prediction_id``; None when there is none (or the text is
        not a prediction id)."""
        return self.get_many([prediction_id]).get(prediction_id)

    def get_many(self, prediction_ids: Iterable[str], *,
                 connection: Connection | None = None) -> dict[str, PredictionRecord]:
        """The logged predictions among ``prediction_ids``, by id (as given); unknown and
        malformed ids are left out."""
        wanted = sorted({p.upper(): p for p in prediction_ids if is_id(p)}.items())
        if not wanted:
            return {}
        if connection is not None:
            return self._get_many(connection, wanted)
        with self.store.read() as conn:
            return self._get_many(conn, wanted)

    @staticmethod
    def _get_many(conn: Connection, wanted: list[tuple[str, str]]) -> dict[str, PredictionRecord]:
        out: dict[str, PredictionRecord] = {}
        # Ids are sorted, and a request's ids are consecutive: most ids fall in the row just
        # read, which is parsed once.
        first = last = -1
        records: list[PredictionRecord] = []
        for upper, given in wanted:
            value = decode(upper)
            if not first <= value <= last:
                row = locate(conn, upper, select(predictions))
                if row is None:
                    continue
                first, last, records = decode(row.id), decode(row.last_id), explode(row)
            out[given] = records[value - first]
        return out

    def query(self, usecase: str | None = None, *, since: datetime | None = None,
              until: datetime | None = None, version: int | None = None,
              entity: Any = None, route: str | None = None,
              limit: int | None = 100) -> list[PredictionRecord]:
        """Logged predictions, newest first: ``since`` <= at < ``until``, of one model
        ``version``, ``route`` or ``entity`` (compared as text), at most ``limit``."""
        conds = _window(usecase, since, until)
        if version is not None:
            conds.append(predictions.c.version == int(version))
        if route is not None:
            conds.append(predictions.c.route == route)
        wanted = None if entity is None else entity_text(entity)
        if wanted is not None:
            conds.append(entities_like(wanted))
        stmt = (select(predictions).where(*conds)
                .order_by(predictions.c.at.desc(), predictions.c.id.desc())
                .execution_options(yield_per=64))
        out: list[PredictionRecord] = []
        if limit is not None and limit <= 0:
            return out
        with self.store.read() as conn:
            result = conn.execute(stmt)
            try:
                for row in result:
                    for record in reversed(explode(row)):
                        if wanted is not None and entity_text(record.entity) != wanted:
                            continue
                        out.append(record)
                        if limit is not None and len(out) >= limit:
                            return out
            finally:
                result.close()
        return out

    def count(self, usecase: str | None = None, *, since: datetime | None = None,
              until: datetime | None = None) -> int:
        """How many predictions (records, not requests) were logged in the window."""
        stmt = select(func.coalesce(func.sum(predictions.c.n), 0)).where(
            *_window(usecase, since, until))
        with self.store.read() as conn:
            return int(conn.scalar(stmt) or 0)

    def count_rejections(self, usecase: str | None = None, *, since: datetime | None = None,
                         until: datetime | None = None) -> RejectionSummary:
        """Requests the contract refused in the window, with their violations by rule."""
        conds = []
        if usecase is not None:
            conds.append(rejections.c.usecase == usecase)
        if since is not None:
            conds.append(rejections.c.at >= since)
        if until is not None:
            conds.append(rejections.c.at < until)
        requests = records = 0
        rules: collections.Counter[str] = collections.Counter()
        with self.store.read() as conn:
            for row in conn.execute(select(rejections.c.n_records, rejections.c.rules)
                                    .where(*conds)):
                requests += 1
                records += int(row.n_records)
                rules.update({str(k): int(v) for k, v in (row.rules or {}).items()})
        return RejectionSummary(requests=requests, records=records,
                                rules=dict(sorted(rules.items())))

    # -- retention ----------------------------------------------------------------------------
    def apply_retention(self, usecase: str, *, days: float | None = None,
                        max_rows: int | None = None, now: datetime | None = None) -> int:
        """Delete the use case's oldest log rows: older than ``days``, and beyond the newest
        ``max_rows`` predictions (counted by record). Whole rows go, so a request is never
        half-kept; the feedback of a deleted prediction goes with it. Returns how many
        predictions were deleted. None (or 0) for both keeps everything.
        """
        if (days is not None and days < 0) or (max_rows is not None and max_rows < 0):
            raise InputError(f"Retention of {usecase}: days ({days!r}) and max_rows "
                             f"({max_rows!r}) cannot be negative.",
                             hint="Use a positive number, or 0 to keep everything.")
        cutoff: tuple[datetime, str] | None = None
        if days:
            cutoff = ((now or utc_now()) - timedelta(days=days), "")
        if max_rows:
            cutoff = _later(cutoff, self._rows_cutoff(usecase, int(max_rows)))
        if cutoff is None:
            return 0
        at, last = cutoff
        older = or_(predictions.c.at < at, (predictions.c.at == at) & (predictions.c.id <= last))
        pick = (select(predictions.c.id, predictions.c.last_id, predictions.c.n)
                .where(predictions.c.usecase == usecase, older)
                .order_by(predictions.c.at, predictions.c.id).limit(_RETENTION_BATCH))
        deleted = 0
        while True:
            # Own short transactions, not Store.write(): deleting a year of log must not hold
            # the registry's lock, and each batch commits before the next.
            with self.store.errors("apply retention to"), self.store.engine.begin() as conn:
                rows = conn.execute(pick).all()
                if not rows:
                    return deleted
                conn.execute(delete(predictions).where(
                    predictions.c.id.in_([r.id for r in rows])))
                for start in range(0, len(rows), _OR_CHUNK):
                    part = rows[start:start + _OR_CHUNK]
                    conn.execute(delete(feedback).where(
                        feedback.c.usecase == usecase,
                        or_(*[feedback.c.prediction_id.between(r.id, r.last_id) for r in part])))
                deleted += sum(int(r.n) for r in rows)

    def _rows_cutoff(self, usecase: str, max_rows: int) -> tuple[datetime, str] | None:
        """(at, id) of the newest row that no longer fits in the newest ``max_rows``."""
        stmt = (select(predictions.c.at, predictions.c.id, predictions.c.n)
                .where(predictions.c.usecase == usecase)
                .order_by(predictions.c.at.desc(), predictions.c.id.desc())
                .execution_options(yield_per=1000))
        kept = 0
        with self.store.read() as conn:
            result = conn.execute(stmt)
            try:
                for row in result:
                    kept += int(row.n)
                    if kept > max_rows:
                        return row.at, row.id
            finally:
                result.close()
        return None


# -- rows -----------------------------------------------------------------------------------
def _check(entry: LogEntry) -> None:
    if not isinstance(entry, LogEntry):
        raise InputError(f"The prediction log takes LogEntry values, not {type(entry).__name__}.")
    if not isinstance(entry.n, int) or entry.n < 1:
        raise InputError(f"A log entry holds at least one record (n = {entry.n!r}).")
    if isinstance(entry.first_id, str):
        if not is_id(entry.first_id):
            raise InputError(f"{entry.first_id!r} is not a prediction id (a ULID).")
    elif not isinstance(entry.first_id, int) or entry.first_id < 0:
        raise InputError(f"{entry.first_id!r} is not a prediction id.")
    if entry.route not in ROUTES:
        raise InputError(f"Route {entry.route!r} is not one of {', '.join(ROUTES)}.")
    if entry.channel not in CHANNELS:
        raise InputError(f"Channel {entry.channel!r} is not one of {', '.join(CHANNELS)}.")
    if not isinstance(entry.at, datetime) or entry.at.tzinfo is None:
        raise InputError(f"A log entry's time must be an aware datetime (got {entry.at!r}).")
    if entry.entities is not None and len(entry.entities) != entry.n:
        raise InputError(f"A log entry of {entry.n} records has {len(entry.entities)} entities.")
    for name, limit in _LIMITS.items():
        value = getattr(entry, name)
        if value is not None and len(value) > limit:
            raise InputError(f"A log entry's {name} is longer than {limit} characters.")
    if not entry.usecase:
        raise InputError("A log entry needs a use case.")


def _fail(batch: list[_Item], exc: StoreError) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


def _text(name: str, value: str) -> str:
    if not value or len(value) > _LIMITS[name]:
        raise InputError(f"{name} must be 1 to {_LIMITS[name]} characters (got {value!r}).")
    return value


# The writer's column orders (RawInsert); _row and record_rejection's rows follow them.
_PREDICTION_COLUMNS = ("id", "last_id", "n", "at", "usecase", "version", "route", "channel",
                       "caller", "request_id", "latency_ms", "device", "entities", "inputs",
                       "outputs")
_REJECTION_COLUMNS = ("id", "at", "usecase", "channel", "caller", "n_records", "rules")


def _row(entry: LogEntry) -> tuple[Any, ...]:
    """A log entry's values in ``_PREDICTION_COLUMNS`` order."""
    first = decode(entry.first_id) if isinstance(entry.first_id, str) else entry.first_id
    inputs, outputs = entry.inputs_json, entry.outputs_json
    latency = entry.latency_ms
    return (
        encode(first), encode(first + entry.n - 1), entry.n, entry.at, entry.usecase,
        int(entry.version), entry.route, entry.channel, entry.caller, entry.request_id,
        None if latency is None or not math.isfinite(latency) else float(latency),
        entry.device, None if entry.entities is None else list(entry.entities),
        inputs.decode("utf-8") if isinstance(inputs, bytes) else inputs,
        outputs.decode("utf-8") if isinstance(outputs, bytes) else outputs,
    )


def _row_error(store: Store, exc: Exception) -> StoreError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return StoreError(f"Cannot write a prediction log entry to the planta store at {store.url}: "
                      f"{detail}.", hint="Each request needs its own prediction ids "
                      "(planta.store.ids.reserve); this one reused ids already logged.")


def explode(row: Any) -> list[PredictionRecord]:
    """The records of one ``predictions`` row, in id order."""
    inputs = json.loads(row.inputs)
    outputs = json.loads(row.outputs)
    prediction = outputs.get("prediction")
    probability = outputs.get("probability")
    score = outputs.get("score")
    entities = row.entities
    ids = id_range(row.id, row.n)
    return [PredictionRecord(
        prediction_id=ids[i], at=row.at, usecase=row.usecase, version=row.version,
        route=row.route, channel=row.channel, caller=row.caller, latency_ms=row.latency_ms,
        entity=_nth(entities, i), inputs=_nth(inputs, i) or {}, prediction=_nth(prediction, i),
        probability=_nth(probability, i), score=_nth(score, i),
        request_id=row.request_id, device=row.device) for i in range(row.n)]


def _nth(values: Any, i: int) -> Any:
    # A row written by hand or by an older writer may hold fewer values than records: the
    # missing ones read as None rather than failing the whole query.
    return values[i] if isinstance(values, list) and i < len(values) else None


def locate(conn: Connection, prediction_id: str, stmt: Any) -> Any:
    """The ``predictions`` row holding ``prediction_id`` (upper case), as selected by ``stmt``
    (which must select ``id`` and ``last_id``); None when no row holds it."""
    # The newest row starting at or before the id is the only one that can hold it (ranges
    # never overlap); the primary key finds it in one index probe. ULIDs compare correctly as
    # text under every collation: upper-case Crockford digits and letters, digits first.
    row = conn.execute(stmt.where(predictions.c.id <= prediction_id)
                       .order_by(predictions.c.id.desc()).limit(1)).first()
    if row is None or row.last_id < prediction_id:
        return None
    return row


def entity_text(value: Any) -> str | None:
    """An entity as text, the form entities are compared in (17, 17.0 and "17" are equal).

    >>> entity_text(17.0), entity_text("M-4"), entity_text(None)
    ('17', 'M-4', None)
    """
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return str(value)


def entities_like(entity: str) -> Any:
    """A cheap SQL pre-filter: rows whose ``entities`` JSON text contains ``entity`` (the exact
    comparison happens after parsing)."""
    spelled = json.dumps(entity, ensure_ascii=False)[1:-1]
    escaped = spelled.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(predictions.c.entities, Text).like(f"%{escaped}%", escape="\\")


def _window(usecase: str | None, since: datetime | None, until: datetime | None) -> list[Any]:
    conds: list[Any] = []
    if usecase is not None:
        conds.append(predictions.c.usecase == usecase)
    if since is not None:
        conds.append(predictions.c.at >= since)
    if until is not None:
        conds.append(predictions.c.at < until)
    return conds


def _later(a: tuple[datetime, str] | None,
           b: tuple[datetime, str] | None) -> tuple[datetime, str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def iter_rows(conn: Connection, stmt: Any, size: int = 256) -> Iterator[Any]:
    """Stream ``stmt``'s rows (server-side cursor on PostgreSQL)."""
    result = conn.execute(stmt.execution_options(yield_per=size))
    try:
        yield from result
    finally:
        result.close()


__all__ = ["CHANNELS", "DURABILITIES", "PROBE_S", "ROUTES", "LogEntry", "Observer",
           "PredictionLog", "PredictionRecord", "RejectionSummary", "entities_like",
           "entity_text", "explode", "iter_rows", "locate"]
