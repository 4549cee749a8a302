"""`planta retrain` (new data + feedback → a compared candidate) and `planta compare`."""

from __future__ import annotations

from typing import Any

import typer

from planta.cli.output import EXIT_REJECTED, JSON_OPTION, console, handle_errors, print_json


def _print_words(lines: list[str]) -> None:
    for line in lines:
        console.print(f"• {line}", soft_wrap=True)


@handle_errors
def retrain(usecase: str = typer.Argument(..., help="Use case name."),
            budget: float = typer.Option(None, "--budget", help="Training budget in seconds "
                                         "(default: the production version's budget)."),
            reason: str = typer.Option("asked on the command line", "--reason",
                                       help="Why: kept in the audit trail."),
            as_json: bool = JSON_OPTION) -> None:
    """Retrain on the latest data plus feedback, through the objective gate, and compare the
    new version with production on the same held-out records."""
    from planta.services.retrain import retrain as run_retrain
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        if not as_json:
            console.print(f"Retraining {usecase}…")
        outcome = run_retrain(ws, usecase, actor=ws.actor, reason=reason, budget_s=budget)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | outcome.to_dict())
    else:
        _print_words(outcome.lines)
    if not outcome.gate_passed:
        raise typer.Exit(EXIT_REJECTED)


@handle_errors
def compare(usecase: str = typer.Argument(..., help="Use case name."),
            version: str = typer.Argument(..., help="The new version (number or alias)."),
            against: str = typer.Argument("production", help="The version to compare with "
                                          "(default: production)."),
            as_json: bool = JSON_OPTION) -> None:
    """Compare two versions on the same held-out records, row by row (paired)."""
    from planta.services.retrain import compare_versions, stored_comparison
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        a = ws.registry.resolve(usecase, version)
        b = ws.registry.resolve(usecase, against)
        doc: dict[str, Any] | None = stored_comparison(ws, usecase, a.version, b.version)
        stored = doc is not None
        if doc is None:
            doc = compare_versions(ws, usecase, a.version, b.version)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "stored": stored} | doc)
        return
    console.print(f"Version {a.version} against version {b.version} of {usecase} "
                  f"({(doc.get('rows') or {}).get('source', '')}):", soft_wrap=True)
    _print_words(list(doc.get("words") or []))


__all__ = ["compare", "retrain"]
