"""The durable job queue: async predictions and batch files, claimed by workers under a lease.

    submit ─► queued ──claim──► running ──complete──► done
                ▲                 │  │
                │ fail(retry)     │  └──fail(no retry, or attempts used up)──► failed
                └─────────────────┘
                  (not before now + backoff)
    cancel: queued or running ─► cancelled        release: running ─► queued (attempt not counted)

A worker claims the oldest job that is ready: a queued job whose not-before time has passed, or
a running job whose lease ran out (its worker died: kill -9, power cut, lost host). The claim
sets ``lease_owner`` and ``lease_until``; a worker on a long job renews the lease (a heartbeat).
Every later step (renew, complete, fail, release) names the owner and changes the row only
while that owner still holds it, so a worker that was presumed dead and comes back cannot
overwrite the work of the worker that took its job over: it gets :class:`StateError`.

Columns, as this module uses them:

* ``attempts``: claims so far. A claim counts one; ``release`` gives it back. A job whose lease
  ran out after its last allowed attempt is not claimed again: it fails ("the worker stopped")
  so a file that crashes every worker cannot loop forever.
* ``lease_until``: for a *running* job, when its lease ends; for a *queued* job, the earliest
  time it may be claimed (the retry backoff), or null for "now". One column, two meanings that
  never overlap, so the claim is a single indexed query.
* ``error``: the last error (kept on a requeued job, so ``planta jobs show`` says why it is
  waiting); the final message when failed; who cancelled a cancelled job.

Atomic claims. SQLite: ``BEGIN IMMEDIATE`` (``Store.write()``) makes every claim a serialized
read-then-write. PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED``, so workers never wait on each
other nor on the registry's write lock. In both, the UPDATE repeats the eligibility test
(compare-and-set), so a job is claimed by at most one worker even if a lock were bypassed.

Times come from the clock of the process that writes them (aware UTC). Workers on several
hosts need clocks within a fraction of the lease (NTP does that); leases are tens of seconds.

>>> from planta.store.metadata import open_store
>>> queue = JobQueue(open_store("sqlite://"))
>>> job = queue.submit("failure", "file", "0" * 64, "march.csv", {}, caller="ana")
>>> claimed = queue.claim("worker-1", lease_s=30)
>>> claimed.id == job.id, claimed.status, claimed.attempts
(True, 'running', 1)
>>> queue.claim("worker-2", lease_s=30) is None
True
>>> queue.complete(job.id, "worker-1", "1" * 64, "scored-march.parquet", {"rows": 3}).status
'done'
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from planta.errors import InputError, NotFoundError, StateError, keyed, phrase
from planta.store.artifacts import check_digest
from planta.store.ids import is_id, new_id
from planta.store.metadata import JOB_STATUSES, Store, jobs, json_ready, utc_now

KINDS = ("records", "file")
FINISHED = ("done", "failed", "cancelled")
# Retry n (1-based) waits BACKOFF_S * 2**(n-1), at most MAX_BACKOFF_S: 2, 4, 8 … 300 s. A
# database that is restarting or a full disk gets a few minutes to recover before a job fails.
BACKOFF_S = 2.0
MAX_BACKOFF_S = 300.0
# How many dead workers' exhausted jobs one claim may mark failed before it gives up looking.
_MAX_SCAN = 100


@dataclass(frozen=True)
class Job:
    """One job as stored. ``not_before`` is the retry time of a queued job (None: ready)."""

    id: str
    usecase: str
    kind: str
    status: str
    caller: str
    created_at: datetime
    attempts: int
    max_attempts: int
    input_digest: str
    input_name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    result_digest: str | None = None
    result_name: str | None = None
    summary: Mapping[str, Any] | None = None
    error: str | None = None

    @property
    def is_finished(self) -> bool:
        """True once the job is done, failed or cancelled: nothing will change it again."""
        return self.status in FINISHED

    @property
    def not_before(self) -> datetime | None:
        """When a queued job may next be claimed (a retry's backoff); None when it is ready."""
        return self.lease_until if self.status == "queued" else None

    def to_dict(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at is not None else None

        return {"id": self.id, "usecase": self.usecase, "kind": self.kind,
                "status": self.status, "caller": self.caller,
                "created_at": iso(self.created_at), "started_at": iso(self.started_at),
                "finished_at": iso(self.finished_at), "attempts": self.attempts,
                "max_attempts": self.max_attempts, "lease_owner": self.lease_owner,
                "lease_until": iso(self.lease_until if self.status == "running" else None),
                "not_before": iso(self.not_before), "input_digest": self.input_digest,
                "input_name": self.input_name, "options": dict(self.options),
                "result_digest": self.result_digest, "result_name": self.result_name,
                "summary": dict(self.summary) if self.summary is not None else None,
                "error": self.error}


def retry_delay_s(attempts: int, *, backoff_s: float = BACKOFF_S,
                  max_backoff_s: float = MAX_BACKOFF_S) -> float:
    """How long a job waits after its ``attempts``-th failed attempt before the next one.

    >>> [retry_delay_s(n) for n in (1, 2, 3)], retry_delay_s(20)
    ([2.0, 4.0, 8.0], 300.0)
    """
    return float(min(backoff_s * 2 ** max(attempts - 1, 0), max_backoff_s))


class JobQueue:
    """The ``jobs`` table as a queue with leases (see the module docstring for the rules).

    ``backoff_s`` and ``max_backoff_s`` set the retry waits (tests shorten them).
    """

    def __init__(self, store: Store, *, backoff_s: float = BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self.store = store
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    # -- producers ---------------------------------------------------------------------------
    def submit(self, usecase: str, kind: str, input_digest: str, input_name: str,
               options: Mapping[str, Any] | None, caller: str, max_attempts: int = 3) -> Job:
        """Queue a job on an input already in the artifact store; return it (status queued).

        Raises:
            InputError: unknown kind, bad digest, or ``max_attempts`` below 1.
        """
        if kind not in KINDS:
            raise InputError(f"Job kind {kind!r} is not one of {', '.join(KINDS)}.")
        check_digest(input_digest)
        if int(max_attempts) < 1:
            raise InputError(f"max_attempts must be at least 1, not {max_attempts}.")
        if not usecase:
            raise InputError("A job needs a use case name.")
        values: dict[str, Any] = {
            "id": new_id(), "usecase": usecase, "kind": kind, "status": "queued",
            "caller": caller[:200], "created_at": utc_now(), "attempts": 0,
            "max_attempts": int(max_attempts), "input_digest": input_digest,
            "input_name": input_name[:500], "options": json_ready(dict(options or {}))}
        with self._tx() as conn:
            conn.execute(insert(jobs).values(**values))
        return Job(**values)

    def cancel(self, job_id: str, actor: str) -> Job:
        """Cancel a queued or running job (a running job's worker drops it at its next
        heartbeat). Cancelling a cancelled job changes nothing.

        Raises:
            NotFoundError: no such job.
            StateError: the job is already done or failed.
        """
        with self._tx() as conn:
            job = _get(conn, job_id, lock=True)
            if job.status == "cancelled":
                return job
            if job.status in ("done", "failed"):
                raise keyed(StateError, "job.ended", job=job_id,
                            status=phrase(f"job.status.{job.status}"))
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                status="cancelled", finished_at=utc_now(), lease_until=None,
                error=f"Cancelled by {actor}."))
            return _get(conn, job_id)

    # -- workers -----------------------------------------------------------------------------
    def claim(self, owner: str, lease_s: float) -> Job | None:
        """Take the oldest ready job for ``owner`` under a lease of ``lease_s`` seconds.

        Ready: queued and past its not-before time, or running with an expired lease (its
        worker died). Returns None when nothing is ready. Two workers never get the same job.
        """
        _check_owner(owner)
        now = utc_now()
        until = now + timedelta(seconds=float(lease_s))
        with self._tx(claim=True) as conn:
            for _ in range(_MAX_SCAN):
                query = (select(jobs).where(_ready(now)).order_by(jobs.c.created_at, jobs.c.id)
                         .limit(1))
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                row = conn.execute(query).first()
                if row is None:
                    return None
                if row.status == "running" and row.attempts >= row.max_attempts:
                    # Its worker died on the last allowed attempt: the job itself may be
                    # what kills workers (a file that exhausts memory), so stop here.
                    conn.execute(update(jobs).where(jobs.c.id == row.id, _ready(now)).values(
                        status="failed", finished_at=now, lease_until=None,
                        error=f"The worker stopped while running this job, {row.attempts} "
                              f"time(s) (last: {row.lease_owner}); planta gave up. Check the "
                              "worker's log and memory, then submit the job again."))
                    continue
                taken = conn.execute(update(jobs).where(jobs.c.id == row.id, _ready(now)).values(
                    status="running", lease_owner=owner, lease_until=until, started_at=now,
                    attempts=jobs.c.attempts + 1))
                if taken.rowcount == 1:
                    return _get(conn, row.id)
        return None

    def renew(self, job_id: str, owner: str, lease_s: float) -> Job:
        """Extend ``owner``'s lease on a running job to ``lease_s`` seconds from now.

        Raises:
            StateError: ``owner`` no longer holds the job (cancelled, or taken over after the
                lease ran out); the worker must drop it.
        """
        with self._tx() as conn:
            changed = conn.execute(update(jobs).where(_held(job_id, owner)).values(
                lease_until=utc_now() + timedelta(seconds=float(lease_s))))
            if changed.rowcount != 1:
                raise _lost(_get(conn, job_id), owner)
            return _get(conn, job_id)

    def complete(self, job_id: str, owner: str, result_digest: str, result_name: str,
                 summary: Mapping[str, Any]) -> Job:
        """Mark a job done with its result artifact. Only the lease owner can.

        Raises:
            StateError: ``owner`` no longer holds the job; its result must be dropped.
        """
        check_digest(result_digest)
        with self._tx() as conn:
            changed = conn.execute(update(jobs).where(_held(job_id, owner)).values(
                status="done", finished_at=utc_now(), lease_until=None,
                result_digest=result_digest, result_name=result_name[:500],
                summary=json_ready(dict(summary)), error=None))
            if changed.rowcount != 1:
                raise _lost(_get(conn, job_id), owner)
            return _get(conn, job_id)

    def fail(self, job_id: str, owner: str, error: str, *, retry: bool) -> Job:
        """Record a failed attempt. With ``retry`` and attempts left, the job is queued again
        after a backoff (see :func:`retry_delay_s`); otherwise it ends as failed with ``error``.

        Raises:
            StateError: ``owner`` no longer holds the job.
        """
        now = utc_now()
        with self._tx() as conn:
            job = _get(conn, job_id, lock=True)
            if job.status != "running" or job.lease_owner != owner:
                raise _lost(job, owner)
            if retry and job.attempts < job.max_attempts:
                wait = retry_delay_s(job.attempts, backoff_s=self.backoff_s,
                                     max_backoff_s=self.max_backoff_s)
                values: dict[str, Any] = {
                    "status": "queued", "lease_owner": None,
                    "lease_until": now + timedelta(seconds=wait),
                    "error": f"Attempt {job.attempts} of {job.max_attempts} failed: {error} "
                             f"Retrying after {wait:g} s."}
            else:
                final = (f"Failed after {job.attempts} attempts. Last error: {error}"
                         if retry else error)
                values = {"status": "failed", "finished_at": now, "lease_until": None,
                          "error": final}
            conn.execute(update(jobs).where(_held(job_id, owner)).values(**values))
            return _get(conn, job_id)

    def release(self, job_id: str, owner: str) -> Job:
        """Give a running job back to the queue at once (a worker shutting down), without
        counting the attempt.

        Raises:
            StateError: ``owner`` no longer holds the job.
        """
        with self._tx() as conn:
            changed = conn.execute(update(jobs).where(_held(job_id, owner)).values(
                status="queued", lease_owner=None, lease_until=None,
                attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0)))
            if changed.rowcount != 1:
                raise _lost(_get(conn, job_id), owner)
            return _get(conn, job_id)

    # -- reading -----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """One job.

        Raises:
            NotFoundError: no job has this id.
        """
        with self.store.read() as conn:
            return _get(conn, job_id)

    def list(self, usecase: str | None = None, status: str | None = None,
             limit: int = 50) -> builtins.list[Job]:
        """The newest jobs first, of one use case and/or status if given."""
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        if usecase is not None:
            query = query.where(jobs.c.usecase == usecase)
        if status is not None:
            if status not in JOB_STATUSES:
                raise InputError(f"Job status {status!r} is not one of "
                                 f"{', '.join(JOB_STATUSES)}.")
            query = query.where(jobs.c.status == status)
        with self.store.read() as conn:
            rows = conn.execute(query.limit(max(int(limit), 1))).all()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status (every status present, zeros included)."""
        with self.store.read() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
            found = {str(status): int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in JOB_STATUSES}

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, claim: bool = False) -> Iterator[Connection]:
        """A short write transaction. SQLite: ``BEGIN IMMEDIATE`` (one writer at a time, and a
        read-then-write cannot be overtaken). PostgreSQL: a plain transaction; row locks and
        the compare-and-set UPDATEs make each step atomic without the store-wide write lock,
        so job traffic never queues behind a registry write."""
        if self.store.dialect == "sqlite":
            with self.store.write() as conn:
                yield conn
            return
        with self.store.errors("claim a job in" if claim else "write to"), \
                self.store.engine.connect() as conn, conn.begin():
            yield conn


def _check_owner(owner: str) -> None:
    if not owner or len(owner) > 100:
        raise InputError(f"A worker name must have 1 to 100 characters, not {owner!r}.")


def _ready(now: datetime) -> ColumnElement[bool]:
    return or_(and_(jobs.c.status == "queued",
                    or_(jobs.c.lease_until.is_(None), jobs.c.lease_until <= now)),
               and_(jobs.c.status == "running", jobs.c.lease_until < now))


def _held(job_id: str, owner: str) -> ColumnElement[bool]:
    return and_(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.lease_owner == owner)


def _lost(job: Job, owner: str) -> StateError:
    if job.status == "cancelled":
        return StateError(f"Job {job.id} was cancelled ({job.error or 'no reason given'}); "
                          "its work is dropped.")
    holder = f"by {job.lease_owner}" if job.lease_owner and job.status == "running" else ""
    return StateError(f"Job {job.id} is no longer held by {owner}: it is {job.status} "
                      f"{holder}".rstrip() + ". Its lease ran out and another worker took it "
                      "over, so this worker's result is dropped.",
                      hint="Raise the lease (`planta worker --lease`) if jobs often outlive it.")


def _get(conn: Connection, job_id: str, *, lock: bool = False) -> Job:
    if not is_id(job_id):
        raise keyed(NotFoundError, "job.bad_id", job=repr(job_id))
    query = select(jobs).where(jobs.c.id == job_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise keyed(NotFoundError, "job.unknown", job=job_id)
    return _job(row)


def _job(row: Any) -> Job:
    data = row._asdict()
    data["options"] = data.get("options") or {}
    return Job(**data)


__all__ = ["BACKOFF_S", "FINISHED", "KINDS", "MAX_BACKOFF_S", "Job", "JobQueue",
           "retry_delay_s"]
