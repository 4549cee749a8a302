"""`planta train`, `models`, `trials`, `promote`, `decline`, `rollback`, `canary`, `shadow`,
`stop`, `reproduce`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from planta.cli.output import (
    EXIT_REJECTED,
    JSON_OPTION,
    console,
    handle_errors,
    print_json,
    table,
    tr,
)
from planta.errors import StateError

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


def headline(metrics: Mapping[str, Any], objective_metrics: tuple[str, ...]) -> str:
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
    if as_json:
        print_json({"ok": True} | result.to_dict())
    else:
        print_training(usecase, result, usecase_obj)
    if result.state == "rejected":
        raise typer.Exit(EXIT_REJECTED)


def print_training(usecase: str, result: Any, usecase_obj: Any) -> None:
    """`planta train`'s summary: what was trained, how good it is in words, the verdict."""
    from planta.i18n import env_lang, translator
    from planta.words import gate_lines, metric_sentences

    outcome = result.outcome
    t = translator(env_lang())
    console.print(tr("cli.train.summary", version=f"[bold]{result.version}[/]", usecase=usecase,
                     estimator=outcome.estimator, trials=len(outcome.trials),
                     seconds=f"{outcome.duration_s:.0f}", train=f"{outcome.n_train:,}",
                     holdout=f"{outcome.n_holdout:,}"))
    console.print(f"[bold]{tr('model.how_good')}[/]")
    metrics = {k: v.to_dict() if hasattr(v, "to_dict") else v
               for k, v in outcome.metrics.items()}
    for line in metric_sentences(usecase_obj.task.value, metrics, t, target=usecase_obj.target):
        console.print(f"  • {line}", soft_wrap=True)
    console.print("  " + tr("cli.train.numbers",
                            numbers=headline(outcome.metrics, usecase_obj.objective.metrics)),
                  soft_wrap=True)
    if outcome.threshold is not None:
        console.print(tr("cli.train.threshold", threshold=f"{outcome.threshold:.3f}"))
    if outcome.feature_steps:
        console.print(tr("cli.train.derived", steps=", ".join(
            s.name for s in outcome.feature_steps)), soft_wrap=True)
    console.print(f"[bold]{tr('model.gate')}[/]")
    for line in gate_lines(outcome.gate.to_dict(), t):
        console.print(f"  • {line}", soft_wrap=True)
    if result.state == "candidate":
        console.print(f"[green]{tr('cli.train.meets')}[/] " + tr(
            "cli.train.meets_next", usecase=usecase, version=result.version))
    else:
        console.print(f"[red]{tr('cli.train.misses')}[/] {tr('cli.train.misses_next')}")


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
        rows.append((m.version, tr(f"state.{m.state}"),
                     ", ".join(sorted(by_version.get(m.version, []))),
                     headline(m.metrics, uc.objective.metrics), m.dataset_version, m.trained_by,
                     f"{m.created_at:%Y-%m-%d %H:%M}"))
    from planta.i18n import env_lang, translator
    from planta.words import objective_words

    objective = objective_words(uc.objective, translator(env_lang()))
    console.print(table(tr("cli.models.title", usecase=usecase, objective=objective),
                        [tr("cli.models.version"), tr("cli.models.status"),
                         tr("cli.models.aliases"), tr("cli.models.metrics"),
                         tr("cli.models.data"), tr("cli.models.by"), tr("cli.models.at")],
                        rows))


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


def _short(params: Mapping[str, Any]) -> str:
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
        canary_now = ws.registry.aliases(usecase).get("canary")
    except StateError as error:
        raise _gate_in_words(error, ws, usecase, version) from None
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | moved.to_dict())
        return
    console.print(tr("cli.move.done", usecase=usecase, version=moved.version,
                     state=f"[bold]{tr(f'life.state.{moved.to_state}')}[/]",
                     act=action, actor=moved.actor, reason=reason))
    if moved.to_state == "production":
        rest = (tr("cli.move.every") if canary_now is None else
                tr("cli.move.but_canary", canary=canary_now))
        console.print(tr("cli.move.live", version=moved.version, rest=rest)
                      + (tr("cli.move.undo", usecase=usecase) if action == "promote" else ""))


def _gate_in_words(error: StateError, ws: Any, usecase: str, version: int | None) -> StateError:
    """A refusal for a rejected version names the objective's unmet clauses; the registry
    hands the core the gate's English reasons, so say them again here in the CLI's language."""
    if getattr(error, "message_key", None) != "life.rejected" or version is None or \
            not getattr(error, "params", {}).get("why"):
        return error
    from planta.i18n import env_lang, translator
    from planta.words import gate_lines

    gate = ws.registry.get_model(usecase, version).gate or {}
    lines = gate_lines(gate, translator(env_lang()))
    if lines:
        error.params["why"] = f" ({'; '.join(line.rstrip('.') for line in lines)})"  # type: ignore[attr-defined]
    return error


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


def _percent(share: float) -> str:
    return f"{share * 100:.3g} %"


def _live_move(usecase: str, version: int, action: str, reason: str, as_json: bool,
               share: float | None = None) -> None:
    """canary / shadow / stop: move, then say in plain words what live traffic does now."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        registry = ws.registry
        before = registry.get_model(usecase, version)
        entity = ws.project.usecase(usecase).entity
        actor = ws.actor
        moved = None
        old_share = None
        if action == "canary" and before.state == "canary":
            # Already the canary: only its share changes (ramp up or down).
            old_share = registry.set_canary_share(usecase, share if share is not None else
                                                  registry.canary_share(usecase) or 0.1,
                                                  actor=actor, reason=reason,
                                                  four_eyes=ws.project.settings.four_eyes)
        elif action == "canary":
            moved = registry.canary(usecase, version, actor=ws.actor, role=CLI_ROLE,
                                    reason=reason, share=share,
                                    four_eyes=ws.project.settings.four_eyes)
        elif action == "shadow":
            moved = registry.shadow(usecase, version, actor=ws.actor, role=CLI_ROLE,
                                    reason=reason, four_eyes=ws.project.settings.four_eyes)
        else:
            moved = registry.stop(usecase, version, actor=ws.actor, role=CLI_ROLE, reason=reason)
        names = registry.aliases(usecase)
        now_share = registry.canary_share(usecase)
    finally:
        ws.close()
    production = names.get("production")
    live = {k: names[k] for k in ("production", "canary", "shadow") if k in names}
    if as_json:
        out: dict[str, Any] = {"ok": True, "usecase": usecase, "version": version,
                               "state": "canary" if moved is None else moved.to_state,
                               "live": live, "canary_share": now_share}
        if moved is not None:
            out["transition"] = moved.to_dict()
        if old_share is not None:
            out["previous_share"] = old_share
        print_json(out)
        return
    prod = tr("cli.live.prod", version=production) if production is not None else None
    if action == "canary":
        assert now_share is not None
        pick = (tr("cli.live.pick_entity", entity=entity) if entity else
                tr("cli.live.pick_random"))
        if moved is None and old_share == now_share:
            console.print(tr("cli.live.canary_same", usecase=usecase, version=version,
                             share=_percent(now_share)))
        elif moved is None:
            console.print(tr("cli.live.canary_share", usecase=usecase, version=version,
                             share=f"[bold]{_percent(now_share)}[/]",
                             old=_percent(old_share or 0.0), actor=actor, reason=reason))
        else:
            console.print(tr("cli.live.canary_now", usecase=usecase, version=version,
                             actor=moved.actor, reason=reason))
        if prod is None:
            console.print(tr("cli.live.canary_alone", version=version))
        else:
            console.print(tr("cli.live.canary_split", version=version,
                             share=_percent(now_share), pick=pick, prod=prod))
        console.print(tr("cli.live.canary_undo", usecase=usecase, version=version,
                         prod=prod or tr("cli.live.nothing")))
    elif action == "shadow":
        assert moved is not None
        console.print(tr("cli.live.shadow_now", usecase=usecase, version=version,
                         actor=moved.actor, reason=reason))
        if prod is None:
            console.print(tr("cli.live.shadow_alone", version=version))
        else:
            console.print(tr("cli.live.shadow_beside", version=version, prod=prod,
                             usecase=usecase))
        console.print(tr("cli.live.shadow_undo", usecase=usecase, version=version))
    else:
        assert moved is not None
        console.print(tr("cli.live.stopped", usecase=usecase, version=version,
                         actor=moved.actor, reason=reason))
        console.print(tr("cli.live.stopped_prod", prod=prod) if prod else
                      tr("cli.live.stopped_none"))
        console.print(tr("cli.live.stopped_undo", state=moved.from_state, usecase=usecase,
                         version=version,
                         share="--share 0.1 " if moved.from_state == "canary" else ""))


@handle_errors
def canary(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
           share: float = typer.Option(None, "--share", help="Share of live requests the "
                                       "canary answers, between 0 and 1 (default 0.1). On the "
                                       "version that is the canary already, changes it."),
           reason: str = typer.Option(..., help="Why (kept in the audit trail)."),
           as_json: bool = JSON_OPTION) -> None:
    """Let a candidate answer a small share of live requests; production answers the rest."""
    _live_move(usecase, version, "canary", reason, as_json, share)


@handle_errors
def shadow(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
           reason: str = typer.Option(..., help="Why (kept in the audit trail)."),
           as_json: bool = JSON_OPTION) -> None:
    """Score a candidate beside production on live requests: logged, never answered with."""
    _live_move(usecase, version, "shadow", reason, as_json)


@handle_errors
def stop(usecase: str = typer.Argument(...), version: int = typer.Argument(...),
         reason: str = typer.Option(..., help="Why (kept in the audit trail)."),
         as_json: bool = JSON_OPTION) -> None:
    """Take a canary or shadow version off live traffic (it is a candidate again)."""
    _live_move(usecase, version, "stop", reason, as_json)


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
