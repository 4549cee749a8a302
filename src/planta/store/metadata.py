"""The metadata store: one SQLAlchemy engine, the tables, and migrations applied on open.

    open_store(url) ─► Store(engine)            sqlite:///path (default) or postgresql://…
                          ├─ write()  one serialized write transaction (registry, audit)
                          └─ read()   one consistent read transaction

    dataset_versions   (usecase, version)  data a use case was trained on, by content hash
    model_versions     (usecase, version)  state, bundle digest, metrics, gate verdict
    aliases            (usecase, alias)    production / candidate / previous -> version
    transitions        id (ULID)           every lifecycle move, who, role, why
    trials             (usecase, model_version, n)  the search behind a model version
    batches            id (ULID)           batch scoring runs
    audit_events       seq                 the append-only, hash-chained audit trail
    predictions        id (first ULID)     the prediction log: one row per request and version
    feedback           (usecase, prediction_id)  ground truth
    rejections         id                  requests refused by the contract
    jobs               id                  the durable queue of async and batch jobs
    tokens             id                  API tokens (hashed) with roles
    alerts             id                  alerts raised by rules: open / acknowledged / resolved
    rule_states        (usecase, rule)     consecutive true/false windows per rule
    alert_actions      id                  the outbox of alert actions (webhook, mqtt, retrain)
    scheduler_jobs     name                scheduled jobs: lease, last run, next due, failures
    leases             name                who runs the scheduler for this project
    devices            name                enrolled edge devices: token, last heartbeat
    device_pins        (usecase, device_group)  a device group pinned to a model version

Later tables (prediction log, jobs, tokens, devices) arrive as new Alembic revisions in
``migrations/versions/``; the revision files are written by hand and never edited once released.
The tables here and the revisions must agree; a test compares them.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from planta.errors import StoreError

# A fixed key for PostgreSQL's pg_advisory_xact_lock: every registry and audit write takes it,
# so PostgreSQL serializes them as SQLite's BEGIN IMMEDIATE does. Writes here are a handful a
# minute (training, approvals), so one lock costs nothing and rules out forked audit chains
# and duplicate version numbers. High-volume tables (prediction log) must not use write().
WRITE_LOCK_KEY = 0x706C616E7461  # "planta"
# How long a writer waits for another writer before giving up (SQLite busy timeout).
BUSY_TIMEOUT_S = 30.0
STATES = ("candidate", "rejected", "shadow", "canary", "production", "archived")

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in aware and comes out aware, in UTC, on every engine.

    SQLite has no time zones, so values are stored as naive UTC there and made aware on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time is a bug in planta, not a user's mistake: say so loudly.
            raise ValueError(f"naive datetime {value!r}: planta stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays unwrapped, NaN and ±inf as None.

    PostgreSQL's json type refuses NaN, and the audit hash needs one spelling per value, so the
    conversion happens once here for every JSON column.

    >>> json_ready({"recall": float("nan"), "n": (1, 2), 3: True})
    {'recall': None, 'n': [1, 2], '3': True}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [json_ready(v) for v in items]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return json_ready(value.to_dict())
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy
        return json_ready(value.tolist())
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored as JSON")


def json_dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, UTF-8, no NaN (see :func:`json_ready`)."""
    return json.dumps(json_ready(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def _usecase() -> Column[str]:
    return Column("usecase", String(100), nullable=False)


dataset_versions = Table(
    "dataset_versions", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("snapshot_digest", String(64)),
    Column("profile_digest", String(64)),
    Column("contract_digest", String(64)),
    Column("source_name", String(500), nullable=False),
    Column("source_hash", String(64)),
    Column("n_rows", Integer, nullable=False),
    Column("n_accepted", Integer, nullable=False),
    Column("n_rejected", Integer, nullable=False),
    Column("report", JSON, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Identical data gives the same dataset version (ingest is idempotent).
    UniqueConstraint("usecase", "content_hash"),
)

model_versions = Table(
    "model_versions", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", String(20), nullable=False),
    Column("bundle_digest", String(64), nullable=False),
    Column("bundle_size", BigInteger, nullable=False),
    Column("dataset_version", Integer),
    Column("metrics", JSON, nullable=False),
    Column("gate", JSON, nullable=False),
    Column("trained_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("summary", JSON, nullable=False),
    CheckConstraint("state IN ('candidate', 'rejected', 'shadow', 'canary', 'production', "
                    "'archived')", name="state"),
    ForeignKeyConstraint(["usecase", "dataset_version"],
                         ["dataset_versions.usecase", "dataset_versions.version"]),
)

aliases = Table(
    "aliases", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("alias", String(50), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    # The share of live requests a canary answers (revision 0002); null for other aliases.
    Column("share", Float),
    ForeignKeyConstraint(["usecase", "version"],
                         ["model_versions.usecase", "model_versions.version"]),
)

transitions = Table(
    "transitions", metadata,
    Column("id", String(26), primary_key=True),
    _usecase(),
    Column("version", Integer, nullable=False),
    Column("from_state", String(20)),
    Column("to_state", String(20), nullable=False),
    Column("action", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("exception", Boolean, nullable=False),
    # The previous alias right after this move: rollback walks back through it.
    Column("previous_version", Integer),
    Column("at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(["usecase", "version"],
                         ["model_versions.usecase", "model_versions.version"]),
    Index(None, "usecase", "version"),
)

trials = Table(
    "trials", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("model_version", Integer, primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("estimator", String(100), nullable=False),
    Column("params", JSON, nullable=False),
    Column("cv_scores", JSON, nullable=False),
    Column("score", Float),
    Column("duration_s", Float, nullable=False),
    ForeignKeyConstraint(["usecase", "model_version"],
                         ["model_versions.usecase", "model_versions.version"]),
)

batches = Table(
    "batches", metadata,
    Column("id", String(26), primary_key=True),
    _usecase(),
    Column("model_version", Integer, nullable=False),
    Column("input_name", String(500), nullable=False),
    Column("input_hash", String(64)),
    Column("n_rows", Integer, nullable=False),
    Column("n_ok", Integer, nullable=False),
    Column("n_rejected", Integer, nullable=False),
    Column("output_digest", String(64)),
    Column("output", Text),
    Column("actor", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("duration_s", Float, nullable=False),
    ForeignKeyConstraint(["usecase", "model_version"],
                         ["model_versions.usecase", "model_versions.version"]),
    Index(None, "usecase", "created_at"),
)

audit_events = Table(
    "audit_events", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("id", String(26), nullable=False, unique=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(500), nullable=False),
    # Canonical JSON text, not a JSON column: the hash covers exactly these bytes, and no
    # engine may re-spell them (PostgreSQL's jsonb reorders keys and drops duplicates).
    Column("payload", Text, nullable=False),
    # Unique: two events can never claim the same predecessor, so a fork cannot be stored.
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, unique=True),
)

# --- serving (revision 0002) -------------------------------------------------------------------

# The prediction log. One row per answered request (or job chunk) and model version: the
# records' prediction ids are consecutive ULIDs from ``id`` to ``last_id``, so logging a
# 1,000-record request is one insert, not 1,000 (see planta.store.predictions).
predictions = Table(
    "predictions", metadata,
    Column("id", String(26), primary_key=True),
    Column("last_id", String(26), nullable=False),
    Column("n", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    _usecase(),
    Column("version", Integer, nullable=False),
    Column("route", String(20), nullable=False),      # production / canary / shadow / pinned
    Column("channel", String(20), nullable=False),    # sync / v2 / job / batch / edge
    Column("caller", String(200), nullable=False),
    Column("request_id", String(64)),
    Column("latency_ms", Float),
    Column("device", String(100)),
    Column("entities", JSON),                         # one per record, or null
    Column("inputs", Text, nullable=False),           # JSON array of records (canonical names)
    Column("outputs", Text, nullable=False),          # JSON {prediction: [...], probability: ...}
    Index(None, "usecase", "at"),
    Index(None, "at"),
    Index(None, "last_id"),
)

# Ground truth, one per prediction; a repeated submission of the same value changes nothing.
feedback = Table(
    "feedback", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("prediction_id", String(26), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("entity", String(200)),
    Column("event_time", UTCDateTime),
    Column("source", String(200), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index(None, "usecase", "received_at"),
)

# Requests refused by the contract: counted for data-quality monitoring, never scored.
rejections = Table(
    "rejections", metadata,
    Column("id", String(26), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    _usecase(),
    Column("channel", String(20), nullable=False),
    Column("caller", String(200), nullable=False),
    Column("n_records", Integer, nullable=False),
    Column("rules", JSON, nullable=False),            # {rule: count}
    Index(None, "usecase", "at"),
)

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")

# The durable job queue: async predictions and batch files. A worker claims a job with a
# lease; a job whose worker died is claimed again when the lease runs out.
jobs = Table(
    "jobs", metadata,
    Column("id", String(26), primary_key=True),
    _usecase(),
    Column("kind", String(20), nullable=False),       # records / file
    Column("status", String(20), nullable=False),
    Column("caller", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("input_digest", String(64), nullable=False),   # artifact: the records or the file
    Column("input_name", String(500), nullable=False),
    Column("options", JSON, nullable=False),
    Column("result_digest", String(64)),
    Column("result_name", String(500)),
    Column("summary", JSON),
    Column("error", Text),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
                    name="status"),
    Index(None, "status", "created_at"),
    Index(None, "usecase", "created_at"),
)

# API tokens: only a SHA-256 of the secret is kept (tokens are 256-bit random, so a slow hash
# would add nothing); ``prefix`` lets people tell their tokens apart.
tokens = Table(
    "tokens", metadata,
    Column("id", String(26), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_by", String(200)),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    CheckConstraint("role IN ('viewer', 'operator', 'approver', 'admin')", name="role"),
)

# --- monitoring (revision 0003) ----------------------------------------------------------------

ALERT_STATES = ("open", "acknowledged", "resolved")

# Alerts raised by rules: one open (or acknowledged) alert per (usecase, rule); repeats raise
# ``count``. ``open_key`` is "usecase/rule" while the alert is not resolved and null after, so
# the unique constraint forbids a second open alert on every engine (nulls never collide).
alerts = Table(
    "alerts", metadata,
    Column("id", String(26), primary_key=True),
    _usecase(),
    Column("rule", String(200), nullable=False),
    Column("condition", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("open_key", String(310), unique=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("acknowledged_by", String(200)),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_reason", Text),
    Column("resolved_by", String(200)),
    Column("resolved_at", UTCDateTime),
    Column("resolved_reason", Text),
    CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name="state"),
    Index(None, "usecase", "state"),
    Index(None, "state", "last_seen"),
)

# Per rule, how many consecutive windows it has been true (``for N windows``) and false (the
# alert resolves itself after enough false windows); ``last_window`` makes a re-run of the
# same window count once.
rule_states = Table(
    "rule_states", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("rule", String(200), primary_key=True),
    Column("true_streak", Integer, nullable=False),
    Column("false_streak", Integer, nullable=False),
    Column("last_result", String(20), nullable=False),   # true / false / unknown
    Column("last_window", String(100)),
    Column("evaluated_at", UTCDateTime, nullable=False),
    Column("detail", JSON, nullable=False),
)

# The outbox of alert actions (log, webhook, mqtt, retrain): written in the same transaction
# as the alert, delivered after, retried with backoff until done or out of attempts.
alert_actions = Table(
    "alert_actions", metadata,
    Column("id", String(26), primary_key=True),
    Column("alert_id", String(26), nullable=False),
    _usecase(),
    Column("rule", String(200), nullable=False),
    Column("action", String(20), nullable=False),
    Column("event", String(20), nullable=False),          # opened / resolved
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("payload", JSON, nullable=False),
    Column("result", JSON),
    Column("last_error", Text),
    ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
    CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "alert_id"),
)

# Scheduled jobs: what runs when, who holds it now, and how the last run went.
scheduler_jobs = Table(
    "scheduler_jobs", metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(50), nullable=False),           # monitor / report / retrain / ...
    Column("usecase", String(100)),
    Column("schedule", String(100), nullable=False),      # cron expression
    Column("lease_owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("last_due", UTCDateTime),                      # the scheduled time last run
    Column("last_started_at", UTCDateTime),
    Column("last_finished_at", UTCDateTime),
    Column("last_status", String(20)),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False),          # consecutive failed attempts
    Column("retry_at", UTCDateTime),
    Column("next_due", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Named leases: one scheduler per project holds "scheduler" and renews it; when it dies the
# lease runs out and another process takes over.
leases = Table(
    "leases", metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=False),
)


# --- edge devices (revision 0004) --------------------------------------------------------------

# Enrolled edge devices. A device authenticates with an API token (``token_id``, role viewer)
# that is revoked with the device; the heartbeat columns say how it stands.
devices = Table(
    "devices", metadata,
    Column("name", String(100), primary_key=True),
    _usecase(),
    Column("device_group", String(100)),
    Column("token_id", String(26), nullable=False),
    Column("enrolled_by", String(200), nullable=False),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("revoked_by", String(200)),
    Column("revoked_at", UTCDateTime),
    Column("last_seen_at", UTCDateTime),
    Column("model_version", Integer),
    Column("model_digest", String(64)),
    Column("outbox_depth", BigInteger),
    Column("outbox_dropped", BigInteger),
    Column("received", BigInteger, nullable=False),
    Column("status", JSON),
    Index(None, "token_id"),
)

# A device group pinned to one model version of a use case (otherwise devices follow
# production).
device_pins = Table(
    "device_pins", metadata,
    Column("usecase", String(100), primary_key=True),
    Column("device_group", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

@dataclass
class Store:
    """An opened metadata store: the engine and how to run transactions on it.

    Create it with :func:`open_store`; close it with :meth:`close` (or use it as a context
    manager).
    """

    engine: Engine
    url: str  # the URL with any password hidden, for messages
    sqlite_path: Path | None = None  # the database file, for SQLite files

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, serialized against every other ``write()`` on this store.

        SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front, so a read-then-write (next
        version number, audit head) can never be overtaken. PostgreSQL: a transaction-scoped
        advisory lock does the same. Commits on leaving the block, rolls back on an error.
        """
        with self.errors("write to"), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(planta_begin="IMMEDIATE")
            with conn.begin():
                lock(conn)
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read transaction: every query inside sees the same snapshot."""
        with self.errors("read"), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # READ COMMITTED (the default) takes a new snapshot per statement; a two-pass
                # read such as the audit check must see one state of the trail.
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Translate driver errors into :class:`StoreError` with a plain message."""
        try:
            yield
        except (SQLAlchemyError, sqlite3.Error) as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StoreError(f"Cannot {doing} the planta store at {self.url}: {detail}.",
                             hint=_hint(detail)) from exc

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lock(conn: Connection) -> None:
    """Take the store's write lock inside ``conn``'s transaction (PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` already holds it). Re-entrant within one transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})


def _hint(detail: str) -> str:
    low = detail.lower()
    if "locked" in low or "lock" in low and "timeout" in low:
        return ("Another planta process held the store for more than "
                f"{BUSY_TIMEOUT_S:.0f} s; try again, or look for a stuck process.")
    if "disk" in low or "full" in low or "space" in low:
        return "Free some disk space, then try again."
    return "Check the path or the database URL in planta.toml ([store] url)."


def _normalize(url: str) -> str:
    # A bare postgresql:// would pick psycopg2, which planta does not install.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def open_store(url: str) -> Store:
    """Open (and create or upgrade) the metadata store at ``url``.

    ``sqlite:///relative/or/absolute/path.db`` (the file is created, its folder must exist),
    ``sqlite://`` for a throwaway in-memory store (one connection: single-threaded tests
    only), or ``postgresql+psycopg://user@host/db`` (``postgresql://`` means the same).
    Migrations run to the newest revision before this returns.

    Raises:
        StoreError: the database cannot be reached or opened, or was written by a newer planta.

    >>> with open_store("sqlite://") as store:
    ...     store.dialect
    'sqlite'
    """
    url = _normalize(str(url))
    shown = url
    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
    except ArgumentError as exc:
        raise StoreError(f"Cannot open the planta store at {url!r}: it is not a database URL.",
                         hint="Use sqlite:///path/to/planta.db or "
                         "postgresql+psycopg://user@host/db in planta.toml ([store] url).") from exc
    backend = parsed.get_backend_name()
    sqlite_path: Path | None = None
    json_kw: dict[str, Any] = {"json_serializer": json_dumps}
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # One shared connection, or each checkout would see its own empty database.
            engine = create_engine("sqlite://", poolclass=StaticPool,
                                   connect_args={"check_same_thread": False}, **json_kw)
        else:
            sqlite_path = Path(database)
            _create_private(sqlite_path, shown)
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S}, **json_kw)
        _tune_sqlite(engine, in_memory=sqlite_path is None)
    elif backend == "postgresql":
        engine = create_engine(url, pool_pre_ping=True, **json_kw)
    else:
        raise StoreError(f"Cannot open the planta store at {shown}: {backend!r} databases are "
                         "not supported.",
                         hint="Use sqlite:///path/to/planta.db or "
                         "postgresql+psycopg://user@host/db in planta.toml ([store] url).")
    store = Store(engine=engine, url=shown, sqlite_path=sqlite_path)
    try:
        _migrate(store)
    except BaseException:
        engine.dispose()
        raise
    return store


def _create_private(path: Path, shown: str) -> None:
    """Create the database file readable by its owner only (SQLite gives its -wal and -shm
    files the same mode), before SQLite creates it with the umask's looser default."""
    if path.exists():
        return
    if not path.parent.is_dir():
        raise StoreError(f"Cannot open the planta store at {shown}: the folder {path.parent} "
                         "does not exist.",
                         hint="Check the path or the database URL in planta.toml ([store] url), "
                         "or create the folder.")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreError(f"Cannot open the planta store at {shown}: {exc.strerror}.",
                         hint="Check the path and its permissions.") from exc


def _tune_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below); the sqlite3 module's implicit BEGIN
        # cannot be made IMMEDIATE and skips SELECTs.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not in_memory:
            # WAL: readers never block the writer and the writer never blocks readers.
            cur.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, so a power cut (not
        # rare on a shop floor) can lose the last committed approvals and audit events. FULL
        # fsyncs the WAL on each commit; registry writes are a few a minute, so the cost (one
        # fsync, ~1-10 ms) is nothing next to an audit trail missing its last promotion.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("planta_begin", "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE"):
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _migrate(store: Store) -> None:
    """Run the Alembic migrations to head, inside one serialized write transaction, so two
    processes opening a new store at once cannot both create the tables."""
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    folder = Path(__file__).with_name("migrations")
    config = Config()
    config.set_main_option("script_location", str(folder).replace("%", "%%"))
    try:
        with store.write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreError(f"Cannot open the planta store at {store.url}: {exc}.",
                         hint="The store was probably written by a newer planta; upgrade planta "
                         "(pip install -U planta).") from exc


__all__ = [
    "ALERT_STATES", "BUSY_TIMEOUT_S", "JOB_STATUSES", "STATES", "Store", "UTCDateTime",
    "alert_actions", "alerts", "aliases", "audit_events", "batches", "dataset_versions", "device_pins", "devices", "feedback", "jobs", "json_dumps",
    "json_ready", "leases", "lock", "metadata", "model_versions", "open_store", "predictions",
    "rejections", "rule_states", "scheduler_jobs", "tokens", "transitions", "trials", "utc_now",
]
