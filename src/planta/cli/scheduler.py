"""`planta scheduler`: run the project's scheduled jobs in the foreground, or list them.

    planta scheduler              run until Ctrl-C / SIGTERM (one scheduler per project runs
                                  jobs; a second one waits and takes over if the first dies)
    planta scheduler --once       one pass: run what is due, deliver pending alert actions
    planta scheduler --list       the jobs, their next run and how the last one went
    planta scheduler --run JOB    run one job now, outside its schedule
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table

if TYPE_CHECKING:
    from planta.services.scheduler import RunReport


@handle_errors
def scheduler(list_jobs: bool = typer.Option(False, "--list", help="Show the jobs and their "
                                             "next runs, then exit."),
              once: bool = typer.Option(False, "--once", help="Run what is due now, then exit "
                                        "(for cron or tests)."),
              run_job: str = typer.Option(None, "--run", metavar="JOB", help="Run this job "
                                          "once now, outside its schedule, then exit."),
              lease: float = typer.Option(30.0, "--lease", min=1.0, help="Seconds the "
                                          "scheduler's lease lasts without renewal; another "
                                          "scheduler takes over after it if this one dies."),
              poll: float = typer.Option(1.0, "--poll", min=0.05, help="Seconds between "
                                         "looks at the clock."),
              as_json: bool = JSON_OPTION) -> None:
    """Run scheduled jobs (monitoring windows, reports, retraining) until stopped.

    Jobs come from planta.toml: `schedule = "*/15 * * * *"` in a use case, or
    [[scheduler.jobs]]. `planta serve` runs the same scheduler unless --no-scheduler.
    """
    from planta.services.scheduler import LEASE_NAME, Scheduler
    from planta.services.workspace import Workspace

    def say(text: str) -> None:
        if not as_json:
            console.print(f"{datetime.now(UTC):%H:%M:%S} {text}", soft_wrap=True, markup=False)

    if not list_jobs:
        # Failures and retries are logged (planta.scheduler, planta.alerts): one plain line each.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s "
                            "%(name)s: %(message)s", datefmt="%H:%M:%S")
    ws = Workspace.open()
    try:
        runner = Scheduler(ws, lease_s=lease, poll_s=poll, say=say)
        if list_jobs:
            rows = runner.jobs_table()
            holder = runner.state.holder(LEASE_NAME)
            if as_json:
                print_json({"jobs": rows, "running_on": holder[0] if holder else None,
                            "enabled": runner.config.enabled,
                            "timezone": runner.config.timezone})
                return
            _print_jobs(rows, holder[0] if holder else None, runner.config.timezone)
            return
        if run_job:
            report = runner.run_now(run_job, actor=ws.actor)
            if as_json:
                print_json({"ok": report.ok} | report.to_dict())
            else:
                _print_run(report)
            if not report.ok:
                raise typer.Exit(1)
            return
        if once:
            reports = runner.tick()
            leader = runner.is_leader
            runner.run(_stopped())  # gives the lease back
            if as_json:
                print_json({"ok": True, "leader": leader,
                            "runs": [r.to_dict() for r in reports]})
            elif not leader:
                console.print("Another scheduler is running this project's jobs; nothing done.")
            elif not reports:
                console.print("Nothing was due.")
            for r in reports:
                if not as_json:
                    _print_run(r)
            return
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()
            say(f"{signal.Signals(signum).name}: stopping after the job in hand; press Ctrl-C "
                "again to leave at once")

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not runner.config.jobs:
                say("no scheduled jobs in planta.toml yet (add schedule = \"*/15 * * * *\" to "
                    "a use case); waiting anyway, to deliver pending alert actions")
            say(f"scheduler {runner.owner} on {ws.store.url}: {len(runner.config.jobs)} job(s) "
                "(Ctrl-C to stop)")
            try:
                runner.run(stop)
            except KeyboardInterrupt:
                say("stopped at once")
                return
            say("stopped; the lease is free for another scheduler")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        ws.close()


def _print_run(report: RunReport) -> None:
    console.print(f"{report.job}: {'done' if report.ok else 'failed: ' + str(report.error)}",
                  soft_wrap=True, markup=False)
    result = report.result if isinstance(report.result, dict) else {}
    for rule in result.get("rules") or []:
        evaluation = rule["evaluation"]
        alert = rule.get("alert") or {}
        console.print(f"  rule {rule['rule']!r}: {evaluation['message']}"
                      + (f" ({rule['decision']}: alert {alert.get('id')}, {alert.get('state')}, "
                         f"{alert.get('count')} time(s))" if alert else ""),
                      soft_wrap=True, markup=False)


def _stopped() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _print_jobs(rows: list[dict[str, object]], holder: str | None, zone: str) -> None:
    if not rows:
        console.print("No scheduled jobs. Add schedule = \"*/15 * * * *\" to a use case in "
                      "planta.toml, or a [[scheduler.jobs]] table.")
        return

    def when(value: object) -> str:
        return "" if not value else datetime.fromisoformat(str(value)).strftime(
            "%Y-%m-%d %H:%M")

    console.print(table(f"Scheduled jobs (times UTC; cron read in {zone})",
                        ["job", "schedule", "use case", "next run", "last run", "last status",
                         "last error"],
                        [(r["name"], r["schedule"], r["usecase"], when(r["next_run"]),
                          when(r["last_run"]), r["last_status"], r["last_error"])
                         for r in rows]))
    console.print(f"Running on: {holder}." if holder else
                  "No scheduler is running now (start one with `planta scheduler` or "
                  "`planta serve`).", soft_wrap=True)


__all__ = ["scheduler"]
