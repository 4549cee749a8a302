"""`planta train`, `models`, `trials`, `promote`, `decline`, `rollback`, `reproduce`."""

from __future__ import annotations

from typing import Any

import typer

from planta.cli.output import (
    EXIT_REJECTED,
    JSON_OPTION,
    console,
    handle_errors,
    print_json,
    table,
)

# The CLI user owns the project files, so on the command line they act with every role.
CLI_ROLE = "admin"


def fmt_metric(value: Any) -> str:
    """'0.84 (0.79–0.89)' from a metric with its interval."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        point, low, high = value.get("value"), value.get("lower"), value.get("upper")
        if point is None:
            return ""
        if low is None or high is None:
            return f"{point:.3g}"
        return f"{point:.3f} ({low:.3f}–{high:.3f})"
    return "" if value is None else f"{value:.3g}"


def headline(metrics: dict[str, Any], objective_metrics: tuple[str, ...]) -> str:
    names = list(objective_metrics) + [m for m in ("roc_auc", "pr_auc", "rmse", "f1_macro")
                                       if m not in objective_metrics]
    return "; ".join(f"{m} {fmt_metric(metrics[m])}" for m in names if m in metrics)


@handle_errors
def train(usecase: str = typer.Argument(..., help="Use case name."),
          budget: float = typer.Option(60.0, "--budget", help="Search time budget in seconds."),
          seed: int = typer.Option(0, help="Random seed (same seed and data, same model)."),
          dataset: int = typer.Option(None, help="Dataset version (default: the latest)."),
          note: str = typer.Option(None, help="A note kept with the version."),
          as_json: bool = JSON_OPTION) -> None:
    """Search for the best model under a time budget, check the objective, register a version."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from planta.services.versions import train_version
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        if as_json:
            result = train_version(ws, usecase, budget_s=budget, seed=seed,
                                   dataset_version=dataset, note=note)
        else:
            with Progress(TextColumn("[bold]training[/]"), BarColumn(),
                          TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task("preparing", total=budget)

                def progress(event: Any) -> None:
                    bar.update(task, completed=min(getattr(event, "elapsed_s", 0.0), budget),
                               description=getattr(event, "message", ""))

                result = train_version(ws, usecase, budget_s=budget, seed=seed,
                                       dataset_version=dataset, progress=progress, note=note)
        usecase_obj = ws.project.usecase(usecase)
    finally:
        ws.close()
    outcome = result.outcome
    if as_json:
        print_json({"ok": True} | result.to_dict())
    else:
        console.print(f"Version [bold]{result.version}[/] of {usecase}: {outcome.estimator}, "
                      f"{len(outcome.trials)} trials in {outcome.duration_s:.0f} s, "
                      f"trained on {outcome.n_train:,} rows, checked on {outcome.n_holdout:,} "
                      "held-out rows.")
        console.print(f"Held-out: {headline(outcome.metrics, usecase_obj.objective.metrics)}")
        if outcome.threshold is not None:
            console.print(f"Decision threshold: {outcome.threshold:.3f} (chosen for the "
                          "objective on cross-validation, not on the held-out rows).")
        if outcome.feature_steps:
            console.print("Derived inputs kept: " + ", ".join(
                s.name for s in outcome.feature_steps))
        for reason in outcome.gate.reasons:
            console.print(f"  • {reason}", soft_wrap=True)
        if result.state == "candidate":
            console.print(f"[green]Meets the objective.[/] Registered as candidate. Next: "
                          f"planta promote {usecase} {result.version} --reason \"...\"")
        else:
            console.print(f"[red]Does not meet the objective[/]: registered as rejected. "
                          "Try more data, a longer --budget, or review the objective.")
    if result.state == "rejected":
        raise typer.Exit(EXIT_REJECTED)


@handle_errors
def models(usecase: str = typer.Argument(..., help="Use case name."),
           as_json: bool = JSON_OPTION) -> None:
    """List model versions: metrics with intervals, status, aliases."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        uc = ws.project.usecase(usecase)
        items = ws.registry.list_models(usecase)
        aliases = ws.registry.aliases(usecase)
    finally:
        ws.close()
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    if as_json:
        print_json([m.to_dict() | {"aliases": sorted(by_version.get(m.version, []))}
                    for m in items])
        return
    rows = []
    for m in items:
        rows.append((m.version, m.state, ", ".join(sorted(by_version.get(m.version, []))),
                     headline(m.metrics, uc.objective.metrics), m.dataset_version, m.trained_by,
                     f"{m.created_at:%Y-%m-%d %H:%M}"))
    console.print(table(f"Model versions of {usecase} — objective: {uc.objective.text}",
                        ["version", "status", "aliases", "held-out metrics (95 % interval)",
                         "data", "by", "at"], rows))


@handle_errors
def trials(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
           as_json: bool = JSON_OPTION) -> None:
    """List every trial of a version's search: estimator, parameters, CV score, duration."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        items = ws.registry.list_trials(usecase, version)
    finally:
        ws.close()
    if as_json:
        print_json([t.to_dict() for t in items])
        return
    console.print(table(f"Trials of {usecase} version {version}",
                        ["#", "estimator", "CV score", "seconds", "parameters"],
                        [(t.n, t.estimator, f"{t.score:.4f}" if t.score is not None else "",
                          f"{t.duration_s:.1f}", _short(t.params)) for t in items]))


def _short(params: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())
    return text if len(text) < 90 else text[:87] + "…"


def _move(usecase: str, version: int | None, action: str, reason: str, exception: bool,
          as_json: bool, to_state: str) -> None:
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        if action == "rollback":
            moved = ws.registry.rollback(usecase, actor=ws.actor, role=CLI_ROLE, reason=reason)
        else:
            assert version is not None
            moved = ws.registry.move(usecase, version, to_state, action=action, actor=ws.actor,
                                     role=CLI_ROLE, reason=reason, exception=exception,
                                     four_eyes=ws.project.settings.four_eyes)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | moved.to_dict())
        return
    console.print(f"{usecase}: version {moved.version} is now [bold]{moved.to_state}[/] "
                  f"({action} by {moved.actor}: {reason}).")


@handle_errors
def promote(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
            reason: str = typer.Option(..., help="Why (kept in the audit trail)."),
            exception: bool = typer.Option(False, help="Approve a version the objective gate "
                                           "rejected, as a recorded exception."),
            as_json: bool = JSON_OPTION) -> None:
    """Approve a version for production (a human decision, recorded with who and why)."""
    _move(usecase, version, "promote", reason, exception, as_json, "production")


@handle_errors
def decline(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
            reason: str = typer.Option(..., help="Why (kept in the audit trail)."),
            as_json: bool = JSON_OPTION) -> None:
    """Decline a candidate: it will not go to production."""
    _move(usecase, version, "decline", reason, False, as_json, "rejected")


@handle_errors
def rollback(usecase: str = typer.Argument(...),
             reason: str = typer.Option("rollback", help="Why (kept in the audit trail)."),
             as_json: bool = JSON_OPTION) -> None:
    """Put the previous production version back in production."""
    _move(usecase, None, "rollback", reason, False, as_json, "production")


@handle_errors
def reproduce(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
              tolerance: float = typer.Option(0.02, help="Largest accepted metric difference."),
              as_json: bool = JSON_OPTION) -> None:
    """Retrain a version from its recorded lineage and say whether the metrics match."""
    from planta.services.reproduce import reproduce as run

    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        report = run(ws, usecase, version, tolerance=tolerance)
    finally:
        ws.close()
    if as_json:
        print_json(report)
    else:
        console.print(table(f"Reproducing {usecase} version {version}",
                            ["metric", "recorded", "reproduced", "difference"],
                            [(m, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
                             for m, (a, b) in report["metrics"].items()]))
        console.print("[green]Reproduced[/]: same metrics within tolerance." if report["same"]
                      else "[red]Not reproduced[/]: " + report["explanation"])
    if not report["same"]:
        raise typer.Exit(1)
