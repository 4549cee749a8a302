"""The `planta` command. Heavy libraries are imported inside commands so `--help` stays fast."""

from __future__ import annotations

from pathlib import Path

import typer

from planta import __version__
from planta.cli import (
    admin,
    alerts,
    audit,
    data,
    devices,
    export,
    jobs,
    keys,
    models,
    monitor,
    performance,
    predictions,
    project,
    retrain,
    scheduler,
    score,
    serve,
    tokens,
)
from planta.cli.output import JSON_OPTION, console, handle_errors, print_json

app = typer.Typer(
    name="planta",
    help="planta: from a plant's data file to an approved, versioned model, on one box.\n\n"
         "Start with `planta demo`, or `planta init <folder>`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("init")(project.init)
app.add_typer(project.usecase_app, name="usecase")
app.add_typer(project.contract_app, name="contract")
app.command("ingest")(data.ingest)
app.command("datasets")(data.datasets)
app.command("train")(models.train)
app.command("models")(models.models)
app.command("trials")(models.trials)
app.command("promote")(models.promote)
app.command("decline")(models.decline)
app.command("rollback")(models.rollback)
app.command("canary")(models.canary)
app.command("shadow")(models.shadow)
app.command("stop")(models.stop)
app.command("reproduce")(models.reproduce)
app.command("export")(export.export)
app.add_typer(keys.keys_app, name="keys")
app.command("retrain")(retrain.retrain)
app.command("compare")(retrain.compare)
app.command("score")(score.score)
app.command("predictions")(predictions.predictions)
app.command("feedback")(predictions.feedback)
app.command("monitor")(monitor.monitor)
app.command("performance")(performance.performance)
app.command("serve")(serve.serve)
app.command("worker")(jobs.worker)
app.command("scheduler")(scheduler.scheduler)
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(audit.audit_app, name="audit")
app.command("backup")(admin.backup)
app.command("restore")(admin.restore)
app.add_typer(tokens.token_app, name="token")
app.add_typer(devices.devices_app, name="devices")
app.command("simulate")(devices.simulate)


@app.command("demo")
@handle_errors
def demo(folder: Path = typer.Argument(None, help="Project folder to create (default: a new "
                                       "temporary folder)."),
         budget: float = typer.Option(30.0, "--budget", help="Training budget in seconds."),
         edge: bool = typer.Option(False, "--edge", help="Then run a broker, the hub, a "
                                   "simulator and an edge device, with an outage."),
         as_json: bool = JSON_OPTION) -> None:
    """Run the whole lifecycle on the bundled AI4I 2020 data and say what happened."""
    from planta.services.demo import run_demo

    say = (lambda _t: None) if as_json else (lambda t: console.print(f"• {t}", soft_wrap=True))
    run = run_demo(folder, budget_s=budget, say=say)
    out = {"ok": True} | run.to_dict()
    if edge:
        from planta.services.edge_demo import run_edge_demo

        out["edge"] = run_edge_demo(run.project, say=say).to_dict()
    if as_json:
        print_json(out)


@app.command("version")
def version(as_json: bool = JSON_OPTION) -> None:
    """Print planta's version."""
    if as_json:
        print_json({"planta": __version__})
    else:
        console.print(f"planta {__version__}")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
