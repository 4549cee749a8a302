"""Scheduled jobs: which jobs a project has, and when each one is due.

Jobs come from planta.toml, in two forms:

    [usecases.failure]
    schedule = "*/15 * * * *"            # a monitoring window every 15 minutes
    report_schedule = "0 6 * * *"        # a report every morning at 06:00
    retrain_schedule = "0 3 * * 0"       # a retraining every Sunday at 03:00

    [scheduler]
    enabled = true                       # false: `planta serve` starts no scheduler
    timezone = "Europe/Madrid"           # cron times are read in this zone (default UTC)
    [[scheduler.jobs]]
    name = "weekly-report"
    run = "report"                       # monitor / report / retrain
    usecase = "failure"
    schedule = "0 7 * * 1"

Cron expressions have five fields (minute hour day month weekday) or a shortcut (``@hourly``,
``@daily``, ``@weekly``); ``croniter`` reads them. A sixth field gives seconds
(``* * * * * */10``: every 10 s), for tests and demos more than plants.

Catch-up: after downtime, every scheduled time that passed is covered by ONE run, stamped with
the latest of them (:func:`decide`); a job that missed 96 quarter-hours runs once, not 96 times.
A failed run is retried with backoff (:func:`backoff_s`) up to ``MAX_ATTEMPTS``; then the
scheduled time is given up (and reported), and the job waits for its next time.

Pure: no clock is read here; callers pass ``now``.

>>> from datetime import datetime, UTC
>>> due = decide("*/15 * * * *", last_due=datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
...              now=datetime(2026, 1, 1, 6, 7, tzinfo=UTC))
>>> due.run, due.scheduled_for.strftime("%H:%M"), due.missed, due.next_due.strftime("%H:%M")
(True, '06:00', 23, '06:15')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from planta.errors import ConfigError

KINDS = ("monitor", "report", "retrain")
# Per use case: planta.toml key -> job kind.
USECASE_KEYS = {"schedule": "monitor", "report_schedule": "report",
                "retrain_schedule": "retrain"}
MAX_ATTEMPTS = 4
# Retry n (1-based) waits BACKOFF_S * 2**(n-1), at most MAX_BACKOFF_S: 30 s, 1 min, 2 min …
BACKOFF_S = 30.0
MAX_BACKOFF_S = 1800.0
# Counting the missed times of a long downtime stops here (a minutely job down for a year).
_MAX_COUNT = 10_000
_NAME = re.compile(r"^[a-z0-9][a-z0-9:_.\-]{0,199}$")
_UTC = UTC


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job as configured."""

    name: str
    kind: str
    schedule: str
    usecase: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "schedule": self.schedule,
                "usecase": self.usecase, "options": dict(self.options)}


@dataclass(frozen=True)
class SchedulerConfig:
    """The ``[scheduler]`` table and every job of a project."""

    enabled: bool = True
    timezone: str = "UTC"
    jobs: tuple[JobSpec, ...] = ()

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Due:
    """What :func:`decide` found for one job at one moment.

    ``scheduled_for`` is the scheduled time the run stands for (the latest that passed);
    ``missed`` how many earlier times that one run also covers; ``next_due`` the first
    scheduled time after ``now``.
    """

    run: bool
    scheduled_for: datetime | None
    missed: int
    next_due: datetime


def check_cron(expr: str, where: str) -> str:
    """``expr`` if croniter reads it as a cron expression, else a ConfigError naming ``where``.

    >>> check_cron("*/15 * * * *", "x")
    '*/15 * * * *'
    """
    from croniter import croniter

    text = str(expr or "").strip()
    # Seven fields would be read as years: a typo in a plant, not intent.
    if not text or not (text.startswith("@") or len(text.split()) in (5, 6)) or not (
            croniter.is_valid(text)):
        raise ConfigError(f"{where}: {expr!r} is not a cron expression.",
                          hint="Use five fields, minute hour day month weekday: \"*/15 * * * *\" "
                               "is every 15 minutes, \"0 6 * * *\" every day at 06:00; or "
                               "@hourly, @daily, @weekly (a sixth field gives seconds).")
    return text


def next_after(expr: str, after: datetime, zone: tzinfo = _UTC) -> datetime:
    """The first scheduled time strictly after ``after`` (aware), in UTC."""
    from croniter import croniter

    nxt: datetime = croniter(expr, after.astimezone(zone)).get_next(datetime)
    return nxt.astimezone(_UTC)


def decide(expr: str, *, last_due: datetime, now: datetime, zone: tzinfo = _UTC) -> Due:
    """Whether a job is due at ``now``, given the scheduled time it last ran for.

    For a job that never ran, pass the time it was first seen as ``last_due``: times before a
    job existed are not "missed".
    """
    from croniter import croniter

    times = croniter(expr, last_due.astimezone(zone))
    first: datetime = times.get_next(datetime).astimezone(_UTC)
    if first > now:
        return Due(run=False, scheduled_for=None, missed=0, next_due=first)
    latest, missed = first, 0
    while missed < _MAX_COUNT:
        candidate: datetime = times.get_next(datetime).astimezone(_UTC)
        if candidate > now:
            return Due(run=True, scheduled_for=latest, missed=missed, next_due=candidate)
        latest, missed = candidate, missed + 1
    # Very long downtime of a very frequent job: stop counting, jump to now.
    return Due(run=True, scheduled_for=_latest_at_or_before(expr, now, zone), missed=missed,
               next_due=next_after(expr, now, zone))


def _latest_at_or_before(expr: str, now: datetime, zone: tzinfo) -> datetime:
    from croniter import croniter

    at = next_after(expr, now - timedelta(microseconds=1), zone)
    if at == now:
        return at
    prev: datetime = croniter(expr, now.astimezone(zone)).get_prev(datetime)
    return prev.astimezone(_UTC).replace(fold=0)


def backoff_s(failures: int) -> float:
    """Seconds to wait before retry number ``failures`` (1-based).

    >>> [backoff_s(n) for n in (1, 2, 3)]
    [30.0, 60.0, 120.0]
    """
    return float(min(BACKOFF_S * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))


def scheduler_config(config: Mapping[str, Any], *, kinds: tuple[str, ...] = KINDS
                     ) -> SchedulerConfig:
    """Read ``[scheduler]`` and the use cases' schedules from planta.toml content.

    Raises:
        ConfigError: a cron expression, a job kind, a name or the time zone is wrong.

    >>> cfg = scheduler_config({"usecases": {"failure": {"schedule": "*/15 * * * *"}}})
    >>> [(j.name, j.kind) for j in cfg.jobs]
    [('monitor:failure', 'monitor')]
    """
    table = config.get("scheduler") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("planta.toml: [scheduler] must be a table.")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"Setting scheduler.enabled = {enabled!r} is not true or false.",
                          hint="Write enabled = true or enabled = false under [scheduler].")
    zone_name = str(table.get("timezone", "UTC"))
    try:
        ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"Setting scheduler.timezone = {zone_name!r} is not a time zone.",
                          hint="Use a name such as \"Europe/Madrid\" or \"UTC\".") from None
    jobs: list[JobSpec] = []
    for usecase, uc_table in sorted((config.get("usecases") or {}).items()):
        if not isinstance(uc_table, Mapping):
            continue
        for key, kind in USECASE_KEYS.items():
            if uc_table.get(key) is not None:
                expr = check_cron(uc_table[key], f"Use case {usecase!r}: {key}")
                jobs.append(JobSpec(f"{kind}:{usecase}", kind, expr, usecase))
    entries = table.get("jobs") or []
    if not isinstance(entries, list):
        raise ConfigError("planta.toml: scheduler.jobs must be a list of tables.",
                          hint="Write each job as [[scheduler.jobs]] with name, run and "
                               "schedule.")
    known = {"name", "run", "schedule", "usecase", "options"}
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"planta.toml: scheduler job {n} is not a table.")
        where = f"Scheduler job {entry.get('name') or n!r}"
        extra = sorted(set(entry) - known)
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r}.",
                              hint=f"Job keys are: {', '.join(sorted(known))}.")
        name = str(entry.get("name") or "")
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be lower-case letters, digits, "
                              "':', '.', '-' or '_'.", hint="Write name = \"weekly-report\".")
        kind = str(entry.get("run") or "")
        if kind not in kinds:
            raise ConfigError(f"{where}: run = {kind!r} is not a job planta knows.",
                              hint=f"Jobs are: {', '.join(kinds)}.")
        options = entry.get("options") or {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}: options must be a table.")
        usecase = entry.get("usecase")
        jobs.append(JobSpec(name, kind, check_cron(entry.get("schedule", ""), where),
                            str(usecase) if usecase else None, dict(options)))
    names = [j.name for j in jobs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"Two scheduled jobs are called {name!r}.",
                              hint="Give each [[scheduler.jobs]] its own name (use-case "
                                   "schedules are called monitor:<usecase>, report:<usecase> "
                                   "and retrain:<usecase>).")
    return SchedulerConfig(enabled=enabled, timezone=zone_name, jobs=tuple(jobs))


__all__ = ["BACKOFF_S", "KINDS", "MAX_ATTEMPTS", "MAX_BACKOFF_S", "USECASE_KEYS", "Due",
           "JobSpec", "SchedulerConfig", "backoff_s", "check_cron", "decide", "next_after",
           "scheduler_config"]
