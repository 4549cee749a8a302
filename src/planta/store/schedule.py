"""The scheduler's state in the store: its jobs, and the lease that makes one scheduler run.

    leases          "scheduler" ─► holder, until     one scheduler per project runs jobs
    scheduler_jobs  name ─► schedule, lease_owner/lease_until (the run in progress),
                            last_due (scheduled time last covered), next_due, retry_at,
                            failures (attempts failed on the current time), last_error

Both leases are compare-and-set updates inside the store's serialized write transaction
(SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock): two processes can never both hold
one. A holder that dies (kill -9, power cut) simply stops renewing, and the lease runs out.

>>> from datetime import datetime, timedelta, UTC
>>> from planta.store.metadata import open_store
>>> state = ScheduleStore(open_store("sqlite://"))
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> state.acquire("scheduler", "a", lease_s=30, now=now), state.acquire("scheduler", "b",
...     lease_s=30, now=now)
(True, False)
>>> state.acquire("scheduler", "b", lease_s=30, now=now + timedelta(seconds=31))
True
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update

from planta.core.schedule import JobSpec
from planta.store.audit import AuditLog
from planta.store.metadata import Store, leases, scheduler_jobs, utc_now


@dataclass(frozen=True)
class ScheduledJob:
    """One job's row: its schedule and how its runs went."""

    name: str
    kind: str
    usecase: str | None
    schedule: str
    failures: int
    updated_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_due: datetime | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    retry_at: datetime | None = None
    next_due: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in self.__dict__.items()}


def _job(row: Any) -> ScheduledJob:
    return ScheduledJob(**{k: row._mapping[k] for k in ScheduledJob.__dataclass_fields__})


class ScheduleStore:
    """Scheduled jobs and leases of one store."""

    def __init__(self, store: Store, audit: AuditLog | None = None) -> None:
        self.store = store
        self.audit = audit or AuditLog(store)

    # -- leases ----------------------------------------------------------------------------
    def acquire(self, name: str, holder: str, *, lease_s: float, now: datetime | None = None,
                audit: Mapping[str, Any] | None = None) -> bool:
        """Take or renew the lease ``name`` for ``lease_s`` seconds; False while another
        holder's lease runs. With ``audit``, taking the lease (not renewing it) appends a
        ``lease_taken`` event with that payload in the same transaction."""
        now = now or utc_now()
        until = now + timedelta(seconds=lease_s)
        with self.store.write() as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).first()
            if row is not None and row.holder != holder and row.until > now:
                return False
            if row is None:
                conn.execute(insert(leases).values(name=name, holder=holder, acquired_at=now,
                                                   until=until))
            elif row.holder == holder:
                conn.execute(update(leases).where(leases.c.name == name).values(until=until))
                return True
            else:
                conn.execute(update(leases).where(leases.c.name == name).values(
                    holder=holder, until=until, acquired_at=now))
            if audit is not None:
                previous = None if row is None else {"holder": row.holder,
                                                     "until": row.until.isoformat()}
                self.audit.append("lease_taken", f"lease/{name}", holder,
                                  {**audit, "previous": previous}, connection=conn)
            return True

    def release(self, name: str, holder: str) -> None:
        """Give the lease up now (a clean stop), if ``holder`` holds it."""
        with self.store.write() as conn:
            conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def holder(self, name: str, *, now: datetime | None = None) -> tuple[str, datetime] | None:
        """Who holds ``name`` and until when, or None when nobody does."""
        now = now or utc_now()
        with self.store.read() as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).first()
        return (row.holder, row.until) if row is not None and row.until > now else None

    # -- jobs ------------------------------------------------------------------------------
    def sync(self, specs: Sequence[JobSpec], next_due: Mapping[str, datetime], *,
             now: datetime | None = None) -> builtins.list[ScheduledJob]:
        """Make the stored jobs match the configured ones: add new jobs (first due at
        ``next_due[name]``), take on changed schedules, drop jobs no longer configured."""
        now = now or utc_now()
        wanted = {s.name: s for s in specs}
        with self.store.write() as conn:
            rows = {r.name: r for r in conn.execute(select(scheduler_jobs))}
            gone = [n for n in rows if n not in wanted]
            if gone:
                conn.execute(delete(scheduler_jobs).where(scheduler_jobs.c.name.in_(gone)))
            for name, spec in wanted.items():
                row = rows.get(name)
                if row is None:
                    conn.execute(insert(scheduler_jobs).values(
                        name=name, kind=spec.kind, usecase=spec.usecase,
                        schedule=spec.schedule, failures=0, next_due=next_due[name],
                        updated_at=now))
                elif (row.kind, row.usecase, row.schedule) != (spec.kind, spec.usecase,
                                                               spec.schedule):
                    # A new schedule starts from now: times of the old one are not "missed".
                    conn.execute(update(scheduler_jobs).where(scheduler_jobs.c.name == name)
                                 .values(kind=spec.kind, usecase=spec.usecase,
                                         schedule=spec.schedule, last_due=None,
                                         next_due=next_due[name], retry_at=None, failures=0,
                                         updated_at=now))
            return [_job(r) for r in conn.execute(select(scheduler_jobs)
                                                  .order_by(scheduler_jobs.c.name))]

    def list(self) -> builtins.list[ScheduledJob]:
        """Every stored job, by name."""
        with self.store.read() as conn:
            return [_job(r) for r in conn.execute(select(scheduler_jobs)
                                                  .order_by(scheduler_jobs.c.name))]

    def get(self, name: str) -> ScheduledJob | None:
        with self.store.read() as conn:
            row = conn.execute(select(scheduler_jobs).where(
                scheduler_jobs.c.name == name)).first()
        return _job(row) if row else None

    def claim(self, name: str, owner: str, *, lease_s: float, now: datetime | None = None,
              seen: ScheduledJob | None = None) -> ScheduledJob | None:
        """Take job ``name`` for a run: None when another process is running it, or (with
        ``seen``, the row as the caller read it) when a run finished since: its last run and
        failure count changed, so the caller's decision is stale."""
        now = now or utc_now()
        conditions = [scheduler_jobs.c.name == name,
                      or_(scheduler_jobs.c.lease_owner.is_(None),
                          scheduler_jobs.c.lease_owner == owner,
                          scheduler_jobs.c.lease_until <= now)]
        if seen is not None:
            conditions.append(scheduler_jobs.c.failures == seen.failures)
            conditions.append(scheduler_jobs.c.last_due.is_(None) if seen.last_due is None
                              else scheduler_jobs.c.last_due == seen.last_due)
        with self.store.write() as conn:
            claimed = conn.execute(update(scheduler_jobs).where(*conditions).values(
                lease_owner=owner, lease_until=now + timedelta(seconds=lease_s),
                last_started_at=now, updated_at=now)).rowcount
            if claimed != 1:
                return None
            return _job(conn.execute(select(scheduler_jobs).where(
                scheduler_jobs.c.name == name)).one())

    def renew(self, name: str, owner: str, *, lease_s: float,
              now: datetime | None = None) -> bool:
        """Extend the run's lease (a heartbeat); False when ``owner`` lost it."""
        now = now or utc_now()
        with self.store.write() as conn:
            return bool(conn.execute(update(scheduler_jobs).where(
                scheduler_jobs.c.name == name, scheduler_jobs.c.lease_owner == owner).values(
                lease_until=now + timedelta(seconds=lease_s))).rowcount == 1)

    def finish(self, name: str, owner: str, *, status: str, next_due: datetime,
               last_due: datetime | None, failures: int, retry_at: datetime | None,
               error: str | None, now: datetime | None = None) -> bool:
        """Record how a run went and free the job; False when ``owner`` no longer held it
        (its lease ran out and another process took the job: that run's record wins)."""
        now = now or utc_now()
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None,
                                  "last_finished_at": now, "last_status": status,
                                  "failures": failures, "retry_at": retry_at,
                                  "next_due": next_due, "updated_at": now}
        if last_due is not None:
            values["last_due"] = last_due
        if error is not None or status == "ok":
            values["last_error"] = error
        with self.store.write() as conn:
            return bool(conn.execute(update(scheduler_jobs).where(
                scheduler_jobs.c.name == name, scheduler_jobs.c.lease_owner == owner)
                .values(**values)).rowcount == 1)


__all__ = ["ScheduleStore", "ScheduledJob"]
