"""The in-process scheduler: cron jobs of one project, run by one process at a time.

    Scheduler.run(stop)                    `planta scheduler`, or a thread of `planta serve`
      every tick (about a second):
        take or renew the "scheduler" lease   another process holds it: wait, try again
        sync planta.toml's jobs to the store  (new jobs start from now: nothing is "missed")
        for each job that is due:
          claim it (a lease on the job row)   heartbeat renews both leases while it runs
          run the job function once for the latest scheduled time that passed (catch-up
            after downtime is one run, whatever the number of times missed)
          ok: next due time                    failed: retry after 30 s, 1 min, 2 min; after
                                                 MAX_ATTEMPTS the time is given up (audited)
        deliver alert actions still waiting (retries of webhooks, MQTT, retrain)

Job functions (``JOBS``) take ``(ws, spec, run)``: ``monitor`` evaluates the use case's rules on
the signals of drift (``planta.services.monitor``) and performance
(``planta.services.performance``); ``report`` writes the monitoring report; ``retrain`` calls
the retrain function. Tests and plants may pass their own registry.

The clock is injectable (``clock=``), so catch-up and backoff are tested without waiting.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from planta.core.schedule import (
    MAX_ATTEMPTS,
    JobSpec,
    SchedulerConfig,
    backoff_s,
    decide,
    next_after,
)
from planta.errors import NotFoundError, PlantaError, StateError
from planta.store.ids import new_id
from planta.store.metadata import json_ready, utc_now
from planta.store.schedule import ScheduledJob, ScheduleStore

if TYPE_CHECKING:
    from planta.services.alerts import AlertService, RetrainFunction
    from planta.services.workspace import Workspace

log = logging.getLogger("planta.scheduler")

LEASE_NAME = "scheduler"
LEASE_S = 30.0
POLL_S = 1.0
ACTOR = "planta-scheduler"


@dataclass(frozen=True)
class JobRun:
    """What a job function is told about the run it is doing."""

    scheduled_for: datetime
    missed: int
    attempt: int
    now: datetime
    alerts: AlertService | None = None
    retrain: RetrainFunction | None = None


JobFunction = Callable[["Workspace", JobSpec, JobRun], Any]


@dataclass(frozen=True)
class RunReport:
    """One run of one job by :meth:`Scheduler.tick`."""

    job: str
    scheduled_for: datetime
    missed: int
    attempt: int
    ok: bool
    result: Any = None
    error: str | None = None
    gave_up: bool = False
    retry_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"job": self.job, "scheduled_for": self.scheduled_for,
                           "missed": self.missed, "attempt": self.attempt, "ok": self.ok,
                           "result": self.result, "error": self.error,
                           "gave_up": self.gave_up, "retry_at": self.retry_at})


class Scheduler:
    """Runs a project's scheduled jobs; see the module docstring.

    Args:
        ws: the opened workspace.
        config: the jobs (default: from planta.toml).
        jobs: job functions by kind (default ``JOBS``).
        alerts: where the monitor job sends signals and where pending actions are delivered
            (default: an AlertService with ``retrain``).
        retrain: the retrain function (``planta.services.retrain.retrain`` when present).
        owner: this scheduler's name in leases (default host:pid:random).
        clock: the current time, aware UTC (tests pass a fake one).
    """

    def __init__(self, ws: Workspace, *, config: SchedulerConfig | None = None,
                 jobs: Mapping[str, JobFunction] | None = None,
                 alerts: AlertService | None = None, retrain: RetrainFunction | None = None,
                 owner: str | None = None, clock: Callable[[], datetime] = utc_now,
                 lease_s: float = LEASE_S, poll_s: float = POLL_S,
                 say: Callable[[str], None] | None = None) -> None:
        from planta.services.alerts import AlertService

        self.ws = ws
        self.config = config if config is not None else ws.project.scheduler_config()
        self.jobs = dict(JOBS if jobs is None else jobs)
        self.retrain = retrain if retrain is not None else default_retrain()
        self.alerts = alerts or AlertService(ws, retrain=self.retrain, clock=clock)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        self.clock = clock
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.say = say or (lambda text: log.info("%s", text))
        self.state = ScheduleStore(ws.store, ws.audit)
        self.is_leader = False
        self._renew_at = datetime.min.replace(tzinfo=UTC)
        self._synced = False
        unknown = sorted({j.kind for j in self.config.jobs} - set(self.jobs))
        if unknown:
            raise StateError(f"The scheduler has no job function for {unknown[0]!r}.",
                             hint=f"Known jobs: {', '.join(sorted(self.jobs))}.")

    # -- one pass ----------------------------------------------------------------------------
    def tick(self) -> list[RunReport]:
        """Take the lease if free, run every due job once, deliver pending alert actions."""
        now = self.clock()
        if self.is_leader and now < self._renew_at:
            leader = True  # renewing every tick would be a write a second for nothing
        else:
            # Taking the lease is audited in the same transaction (who took over from whom).
            leader = self.state.acquire(LEASE_NAME, self.owner, lease_s=self.lease_s, now=now,
                                        audit={"jobs": [j.name for j in self.config.jobs]})
            if leader:
                self._renew_at = now + timedelta(seconds=self.lease_s / 3)
        if leader != self.is_leader:
            self.is_leader = leader
            if leader:
                self.say(f"scheduler {self.owner} took the lease; "
                         f"{len(self.config.jobs)} job(s)")
            else:
                self.say(f"scheduler {self.owner} lost the lease")
        if not leader:
            return []
        if not self._synced:
            self.sync(now)
        reports = []
        for job in self.state.list():
            spec = next((s for s in self.config.jobs if s.name == job.name), None)
            if spec is None:
                continue
            report = self._maybe_run(spec, job)
            if report is not None:
                reports.append(report)
        self.alerts.deliver()
        return reports

    def sync(self, now: datetime | None = None) -> list[ScheduledJob]:
        """Write the configured jobs to the store (first due: the next time after now)."""
        now = now or self.clock()
        zone = self.config.zone
        rows = self.state.sync(self.config.jobs, {
            s.name: next_after(s.schedule, now, zone) for s in self.config.jobs}, now=now)
        self._synced = True
        return rows

    def _maybe_run(self, spec: JobSpec, job: ScheduledJob) -> RunReport | None:
        now = self.clock()
        zone = self.config.zone
        if job.retry_at is not None and now < job.retry_at:
            return None
        # A failed run leaves next_due at the time that failed, so a retry stands for that
        # time (and any that passed meanwhile).
        base = job.last_due or _just_before(job.next_due or now)
        due = decide(spec.schedule, last_due=base, now=now, zone=zone)
        if not due.run:
            return None
        assert due.scheduled_for is not None
        # Compare-and-set on what we decided from: a run another scheduler finished since we
        # read the row is not run again.
        claimed = self.state.claim(spec.name, self.owner, lease_s=self.lease_s, now=now,
                                   seen=job)
        if claimed is None:
            return None  # another scheduler is running it, or just ran it
        attempt = claimed.failures + 1
        if due.missed and attempt == 1:
            self.ws.audit.append("schedule_catch_up", f"scheduler/job/{spec.name}", ACTOR, {
                "scheduled_for": due.scheduled_for.isoformat(), "missed": due.missed})
            self.say(f"{spec.name}: catching up once for {due.missed + 1} missed time(s)")
        run = JobRun(scheduled_for=due.scheduled_for, missed=due.missed, attempt=attempt,
                     now=now, alerts=self.alerts, retrain=self.retrain)
        function = self.jobs[spec.kind]
        heartbeat = _Heartbeat(self, spec.name)
        heartbeat.start()
        try:
            result = function(self.ws, spec, run)
        except Exception as exc:  # noqa: BLE001 - a job's failure is recorded, never fatal
            heartbeat.stop()
            error = exc.message if isinstance(exc, PlantaError) else f"{type(exc).__name__}: {exc}"
            return self._failed(spec, due.scheduled_for, due.missed, attempt, error)
        heartbeat.stop()
        end = self.clock()
        self.state.finish(spec.name, self.owner, status="ok", last_due=due.scheduled_for,
                          next_due=next_after(spec.schedule, max(end, due.scheduled_for), zone),
                          failures=0, retry_at=None, error=None, now=end)
        self.say(f"{spec.name}: done for {due.scheduled_for:%Y-%m-%d %H:%M} UTC")
        return RunReport(spec.name, due.scheduled_for, due.missed, attempt, True,
                         result=json_ready(result) if _plain(result) else None)

    def _failed(self, spec: JobSpec, scheduled_for: datetime, missed: int, attempt: int,
                error: str) -> RunReport:
        now = self.clock()
        subject = f"scheduler/job/{spec.name}"
        if attempt >= MAX_ATTEMPTS:
            # Give this time up: the next scheduled time is a fresh start. Audited and
            # logged as an error, and `planta scheduler --list` shows it.
            self.state.finish(spec.name, self.owner, status="failed", last_due=scheduled_for,
                              next_due=next_after(spec.schedule, now, self.config.zone),
                              failures=0, retry_at=None, error=error, now=now)
            self.ws.audit.append("schedule_gave_up", subject, ACTOR, {
                "scheduled_for": scheduled_for.isoformat(), "attempts": attempt,
                "error": error})
            log.error("job %s failed %d times for %s; giving up until its next time: %s",
                      spec.name, attempt, scheduled_for.isoformat(), error)
            return RunReport(spec.name, scheduled_for, missed, attempt, False, error=error,
                             gave_up=True)
        retry_at = now + timedelta(seconds=backoff_s(attempt))
        self.state.finish(spec.name, self.owner, status="retrying", last_due=None,
                          next_due=scheduled_for, failures=attempt, retry_at=retry_at,
                          error=error, now=now)
        self.ws.audit.append("schedule_failed", subject, ACTOR, {
            "scheduled_for": scheduled_for.isoformat(), "attempt": attempt, "error": error,
            "retry_at": retry_at.isoformat()})
        log.warning("job %s failed (attempt %d of %d), retrying at %s: %s", spec.name, attempt,
                    MAX_ATTEMPTS, retry_at.isoformat(), error)
        return RunReport(spec.name, scheduled_for, missed, attempt, False, error=error,
                         retry_at=retry_at)

    def run_now(self, name: str, *, actor: str) -> RunReport:
        """Run job ``name`` once now, outside its schedule (``planta scheduler --run``): its
        next scheduled time stays as it was. Refused while another process runs that job.

        Raises:
            NotFoundError: no such job.  StateError: the job is running elsewhere.
        """
        spec = next((s for s in self.config.jobs if s.name == name), None)
        if spec is None:
            known = ", ".join(j.name for j in self.config.jobs) or "none"
            raise NotFoundError(f"There is no scheduled job {name!r} (jobs: {known}).",
                                hint="See them with `planta scheduler --list`.")
        now = self.clock()
        if self.state.get(name) is None:
            self.sync(now)
        claimed = self.state.claim(name, self.owner, lease_s=self.lease_s, now=now)
        if claimed is None:
            raise StateError(f"Job {name} is running in another process right now.",
                             hint="Wait for it to finish; `planta scheduler --list` shows it.")
        self.ws.audit.append("schedule_run_now", f"scheduler/job/{name}", actor,
                             {"at": now.isoformat()})
        run = JobRun(scheduled_for=now, missed=0, attempt=1, now=now, alerts=self.alerts,
                     retrain=self.retrain)
        heartbeat = _Heartbeat(self, name)
        heartbeat.start()
        error: str | None = None
        result: Any = None
        try:
            result = self.jobs[spec.kind](self.ws, spec, run)
        except Exception as exc:  # noqa: BLE001 - reported to the caller and recorded
            error = exc.message if isinstance(exc, PlantaError) else f"{type(exc).__name__}: {exc}"
        finally:
            heartbeat.stop()
        self.state.finish(name, self.owner, status="ok" if error is None else "failed",
                          last_due=None,
                          next_due=claimed.next_due or next_after(spec.schedule, now,
                                                                  self.config.zone),
                          failures=claimed.failures, retry_at=claimed.retry_at, error=error,
                          now=self.clock())
        self.alerts.deliver()
        return RunReport(name, now, 0, 1, error is None,
                         result=json_ready(result) if _plain(result) else None, error=error)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, then give the lease up."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except PlantaError as exc:  # the store is busy or away: say so, keep going
                    log.warning("scheduler tick failed: %s", exc.message)
                stop.wait(self.poll_s)
        finally:
            if self.is_leader:
                try:
                    self.state.release(LEASE_NAME, self.owner)
                except PlantaError as exc:
                    log.warning("could not give the scheduler lease back: %s", exc.message)
                self.is_leader = False

    def jobs_table(self) -> list[dict[str, Any]]:
        """Every configured job with its schedule, next run and last outcome."""
        stored = {j.name: j for j in self.state.list()}
        now = self.clock()
        rows = []
        for spec in self.config.jobs:
            job = stored.get(spec.name)
            next_due = (job.retry_at or job.next_due) if job else None
            rows.append({**spec.to_dict(),
                         "next_run": (next_due or next_after(spec.schedule, now,
                                                             self.config.zone)).isoformat(),
                         "last_run": job.last_due.isoformat() if job and job.last_due else None,
                         "last_status": job.last_status if job else None,
                         "last_error": job.last_error if job else None,
                         "failures": job.failures if job else 0,
                         "running_on": job.lease_owner if job and job.lease_until
                         and job.lease_until > now else None})
        return rows


class _Heartbeat:
    """Renews the scheduler's and the job's leases while a job runs (a retrain takes
    minutes; the leases are tens of seconds so a dead scheduler is replaced quickly)."""

    def __init__(self, scheduler: Scheduler, job: str) -> None:
        self.scheduler, self.job = scheduler, job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="planta-scheduler-heartbeat",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        s = self.scheduler
        while not self._stop.wait(s.lease_s / 3):
            try:
                now = s.clock()
                s.state.acquire(LEASE_NAME, s.owner, lease_s=s.lease_s, now=now)
                s.state.renew(self.job, s.owner, lease_s=s.lease_s, now=now)
            except PlantaError as exc:
                log.warning("scheduler heartbeat failed: %s", exc.message)


def _just_before(at: datetime) -> datetime:
    return at - timedelta(microseconds=1)


def _plain(value: Any) -> bool:
    try:
        json_ready(value)
    except TypeError:
        return False
    return True


# -- job functions ---------------------------------------------------------------------------------
def default_retrain() -> RetrainFunction | None:
    """``planta.services.retrain.retrain`` when that module is installed, else None. Imported
    on first call: it loads the training libraries, which a scheduler that never retrains
    should not pay for at start-up."""
    import importlib.util

    if importlib.util.find_spec("planta.services.retrain") is None:
        return None

    def retrain(ws: Workspace, usecase: str, **options: Any) -> Any:
        from planta.services.retrain import retrain as run

        return run(ws, usecase, **options)

    return retrain


def collect_signals(ws: Workspace, usecase: str, *, until: datetime,
                    since: datetime | None = None, window: timedelta | None = None
                    ) -> tuple[dict[str, float], dict[str, Any]]:
    """One window's signals for rules: drift (``planta.services.monitor``) and performance
    (``planta.services.performance``), each used when installed. Returns the signals and a
    note of which sources answered (for the alert's payload).

    ``window`` (default: a day) is the width of the window: drift compares the ``window``
    before ``until``; performance is computed per ``window`` over the 30 windows before it."""
    if window is not None:
        since = since or until - window
    signals: dict[str, float] = {}
    sources: dict[str, Any] = {}
    errors: list[PlantaError] = []
    # Imported here: each is a sibling service that may be absent from a trimmed install.
    try:
        from planta.services import performance
    except ImportError:
        performance = None  # type: ignore[assignment]
    if performance is not None:
        try:
            series = (performance.performance_over_time(ws, usecase, until=until, now=until)
                      if window is None else performance.performance_over_time(
                          ws, usecase, since=until - 30 * window, until=until, window=window,
                          now=until))
            signals.update(series.signals())
            sources["performance"] = {"until": until}
        except PlantaError as exc:  # the other source may still answer; rules say what's missing
            errors.append(exc)
            sources["performance"] = {"error": exc.message}
    try:
        from planta.services import monitor
    except ImportError:
        monitor = None  # type: ignore[assignment]
    if monitor is not None:
        try:
            result = monitor.monitor(ws, usecase, since=since, until=until, now=until)
            drift = {k: float(v) for k, v in result.signals.items() if v is not None}
            if drift.get("rows") == 0:
                # No production rows: "no drift" would be a guess, and false windows would
                # resolve open alerts over a weekend of silence. No value: rules say so.
                drift = {k: v for k, v in drift.items()
                         if "(" not in k and k not in ("drift_share", "drifted_important")}
            signals.update(drift)
            sources["drift"] = {"since": result.since, "until": result.until,
                                "model_version": result.model_version}
        except PlantaError as exc:
            errors.append(exc)
            sources["drift"] = {"error": exc.message}
    if errors and not signals:
        raise errors[0]
    for error in errors:
        log.warning("monitoring %s: %s", usecase, error.message)
    return signals, sources


def _warm(ws: Workspace, usecase: str) -> None:
    """Keep the year's monitoring caches filled (planta.services.warmup), so the pages stay
    fast; a failure here is logged, never the job's."""
    try:
        from planta.services.warmup import warm_caches

        warm_caches(ws, [usecase])
    except Exception as exc:  # the job's result stands without its caches
        log.warning("warming the monitoring caches of %s failed: %s", usecase, exc)


def monitor_job(ws: Workspace, spec: JobSpec, run: JobRun) -> dict[str, Any]:
    """Evaluate the use case's rules on the window that ended at the scheduled time (a day,
    or ``options.window_s`` seconds of a ``[[scheduler.jobs]]`` entry)."""
    if spec.usecase is None:
        raise StateError(f"Job {spec.name} has no use case to monitor.",
                         hint="Add usecase = \"...\" to the job in planta.toml.")
    width = spec.options.get("window_s")
    try:
        window = None if width is None else timedelta(seconds=float(width))
    except (TypeError, ValueError, OverflowError):
        window = timedelta(0)
    if window is not None and window <= timedelta(0):
        raise StateError(f"Job {spec.name}: options.window_s must be a positive number of "
                         f"seconds (got {width!r}).", hint="Write options = {window_s = 3600}.")
    signals, sources = collect_signals(ws, spec.usecase, until=run.scheduled_for,
                                       window=window)
    _warm(ws, spec.usecase)
    if run.alerts is None:
        return {"signals": signals}
    outcomes = run.alerts.evaluate(spec.usecase, signals, window=run.scheduled_for.isoformat(),
                                   context={"sources": sources})
    return {"signals": signals, "rules": [o.to_dict() for o in outcomes]}


def report_job(ws: Workspace, spec: JobSpec, run: JobRun) -> dict[str, Any]:
    """Write the monitoring report of the use case as an artifact (``planta.services.monitor``
    ``write_report`` when present)."""
    if spec.usecase is None:
        raise StateError(f"Job {spec.name} has no use case to report on.",
                         hint="Add usecase = \"...\" to the job in planta.toml.")
    try:
        from planta.services import monitor
    except ImportError as exc:
        raise StateError("Reports need planta's monitoring service, which is not installed.",
                         hint="Update planta.") from exc
    writer = getattr(monitor, "write_report", None)
    if writer is None:
        raise StateError("planta.services.monitor cannot write reports yet.",
                         hint="Update planta.")
    result = writer(ws, spec.usecase, until=run.scheduled_for, **dict(spec.options))
    doc = result.to_dict() if hasattr(result, "to_dict") else {"report": str(result)}
    # The report is an artifact; the audit event is how people find it again.
    ws.audit.append("monitor_report", f"usecase/{spec.usecase}/report", ACTOR, {
        "job": spec.name, "until": run.scheduled_for.isoformat(),
        **{k: doc[k] for k in ("report_sha256", "size_bytes", "drifted") if k in doc}})
    return doc


def retrain_job(ws: Workspace, spec: JobSpec, run: JobRun) -> Any:
    """Retrain the use case (through the same gate; the policy decides what happens next)."""
    if spec.usecase is None:
        raise StateError(f"Job {spec.name} has no use case to retrain.",
                         hint="Add usecase = \"...\" to the job in planta.toml.")
    if run.retrain is None:
        raise StateError("Retraining is not available in this planta.", hint="Update planta.")
    outcome = run.retrain(ws, spec.usecase, actor=ACTOR,
                          reason=f"scheduled retraining ({spec.name}, "
                                 f"{run.scheduled_for:%Y-%m-%d %H:%M} UTC)",
                          **dict(spec.options))
    return outcome.to_dict() if hasattr(outcome, "to_dict") else outcome


JOBS: dict[str, JobFunction] = {"monitor": monitor_job, "report": report_job,
                                "retrain": retrain_job}


__all__ = ["JOBS", "LEASE_NAME", "JobFunction", "JobRun", "RunReport", "Scheduler",
           "collect_signals", "default_retrain", "monitor_job", "report_job", "retrain_job"]
