"""`planta worker` and `planta jobs …`: the async job queue from the command line.

    planta worker [--once]            claim and score jobs until Ctrl-C / SIGTERM
    planta jobs [--usecase] [--status]   the newest jobs
    planta jobs show ID [-o FILE]     one job; -o saves its result file
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table

if TYPE_CHECKING:
    from planta.store.jobs import Job

jobs_app = typer.Typer(help="List async jobs and fetch their results.")
_OUTPUT_OPTION = typer.Option(None, "-o", "--output", help="Save the job's result to this file.")


@handle_errors
def worker(once: bool = typer.Option(False, "--once", help="Handle at most one job, then "
                                     "exit (for cron or tests)."),
           lease: float = typer.Option(30.0, "--lease", min=1.0, help="Seconds a job stays "
                                       "this worker's without a heartbeat; a dead worker's job "
                                       "is taken over after it."),
           poll: float = typer.Option(0.5, "--poll", min=0.05, help="Seconds between looks at "
                                      "an empty queue."),
           as_json: bool = JSON_OPTION) -> None:
    """Score queued jobs (files and records) until stopped.

    Ctrl-C or SIGTERM stops cleanly: the job in hand goes back to the queue at its next chunk.

    A second Ctrl-C leaves at once (the job goes back to the queue too).
    """
    from planta.services.jobs import Worker
    from planta.services.workspace import Workspace
    from planta.store.predictions import PredictionLog

    def say(text: str) -> None:
        if not as_json:
            console.print(f"{datetime.now(UTC):%H:%M:%S} {text}", soft_wrap=True, markup=False)

    def report(job: Job) -> None:
        if as_json and not once:
            sys.stdout.write(json.dumps(job.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()

    ws = Workspace.open()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say(f"{signal.Signals(signum).name}: stopping (the job in hand goes back to the queue); "
            "press Ctrl-C again to leave at once")

    # Every job's predictions go to the prediction log, as the server's do.
    log = PredictionLog(ws.store, durability=ws.project.settings.log_durability)
    from planta.services.monitor_rollup import attach

    rollup = attach(ws, log)  # the monitoring caches, counted as the jobs' rows are written
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        runner = Worker(ws, lease_s=lease, poll_s=poll, log=log, say=say, on_job=report)
        if once:
            handled = runner.run_once(stop)
            if as_json:
                job = runner.last_job
                print_json({"ok": True, "handled": handled,
                            "job": job.to_dict() if job is not None else None})
            elif not handled:
                console.print("No job is waiting.")
            return
        say(f"worker {runner.owner} waiting for jobs in {ws.store.url} (Ctrl-C to stop)")
        try:
            n = runner.run(stop)
        except KeyboardInterrupt:
            say("stopped at once; the job in hand was given back to the queue")
            return
        say(f"stopped after {n} job(s)")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.close()
        rollup.close()
        ws.close()


@jobs_app.callback(invoke_without_command=True)
@handle_errors
def jobs(ctx: typer.Context,
         usecase: str = typer.Option(None, "--usecase", help="Only this use case."),
         status: str = typer.Option(None, "--status", help="Only this status: queued, running, "
                                    "done, failed or cancelled."),
         limit: int = typer.Option(50, "--limit", min=1, help="How many of the newest jobs."),
         as_json: bool = JSON_OPTION) -> None:
    """The newest jobs with their status; `planta jobs show ID` for one."""
    if ctx.invoked_subcommand is not None:
        return
    from planta.services.workspace import Workspace
    from planta.store.jobs import JobQueue

    ws = Workspace.open()
    try:
        found = JobQueue(ws.store).list(usecase=usecase, status=status, limit=limit)
    finally:
        ws.close()
    if as_json:
        print_json([j.to_dict() for j in found])
        return
    if not found:
        console.print("No jobs yet." if usecase is None and status is None
                      else "No jobs match.")
        return
    shown = table("Jobs (newest first)", ["id", "use case", "status", "created (UTC)", "input"],
                  [(j.id, j.usecase, j.status, f"{j.created_at:%m-%d %H:%M}", j.input_name)
                   for j in found])
    shown.columns[0].no_wrap = True  # the id is what `planta jobs show` needs, whole
    console.print(shown)


@jobs_app.command("show")
@handle_errors
def show(job_id: str = typer.Argument(..., metavar="ID", help="Job id (from `planta jobs`)."),
         output: Path = _OUTPUT_OPTION,
         as_json: bool = JSON_OPTION) -> None:
    """One job: status, attempts, summary, error; -o saves its result."""
    from planta.services.jobs import result_bytes
    from planta.services.workspace import Workspace
    from planta.store.jobs import JobQueue

    ws = Workspace.open()
    try:
        job = JobQueue(ws.store).get(job_id)
        if output is not None:
            output.write_bytes(result_bytes(ws, job))
    finally:
        ws.close()
    if as_json:
        data: dict[str, Any] = job.to_dict()
        if output is not None:
            data["saved_to"] = str(output)
        print_json(data)
        return
    rows = [("status", job.status), ("use case", job.usecase), ("kind", job.kind),
            ("input", job.input_name), ("caller", job.caller),
            ("attempts", f"{job.attempts} of {job.max_attempts}"),
            ("created", f"{job.created_at:%Y-%m-%d %H:%M:%S} UTC"),
            ("finished", f"{job.finished_at:%Y-%m-%d %H:%M:%S} UTC" if job.finished_at else None),
            ("worker", job.lease_owner),
            ("retry after", f"{job.not_before:%H:%M:%S} UTC" if job.not_before else None),
            ("result", job.result_name), ("error", job.error),
            ("options", json.dumps(dict(job.options), ensure_ascii=False))]
    summary = dict(job.summary or {})
    rows += [(key, json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list))
              else value) for key, value in summary.items()]
    console.print(table(f"Job {job.id}", ["", ""], [r for r in rows if r[1] is not None]))
    if output is not None:
        console.print(f"Saved the result ({job.result_name}) to {output}.")


__all__ = ["jobs", "jobs_app", "show", "worker"]
