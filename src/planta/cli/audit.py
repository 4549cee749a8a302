"""`planta audit …`: the append-only, hash-chained record of every change."""

from __future__ import annotations

from pathlib import Path

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr

audit_app = typer.Typer(help="Check and read the audit trail.", no_args_is_help=True)


@audit_app.command("verify")
@handle_errors
def verify(known_head: str = typer.Option(None, help="A head hash noted earlier: also detect "
                                          "events cut off after it."),
           as_json: bool = JSON_OPTION) -> None:
    """Check that no audit event was edited, reordered or deleted."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        result = ws.audit.verify(known_head=known_head)
    finally:
        ws.close()
    if as_json:
        print_json(result.to_dict())
    elif result.ok:
        console.print(tr("cli.audit.intact", count=result.count, head=result.head))
        console.print(tr("cli.audit.note_head"))
    else:
        console.print(tr("cli.audit.broken", count=result.count))
        for problem in result.problems:
            console.print(f"  • {problem}", soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("log")
@handle_errors
def log(limit: int = typer.Option(50, help="How many recent events."),
        action: str = typer.Option(None, help="Only this action (train, promote, …)."),
        as_json: bool = JSON_OPTION) -> None:
    """Show recent audit events: who did what, when."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        events = ws.audit.events(limit=limit, action=action)
    finally:
        ws.close()
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    console.print(table(tr("cli.audit.title"), ["#"] + [tr(f"cli.audit.col.{c}") for c in (
                            "at", "who", "action", "subject")],
                        [(e.seq, f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.subject)
                         for e in events]))


@audit_app.command("export")
@handle_errors
def export(file: Path = typer.Argument(..., help="JSON-lines file to write."),
           as_json: bool = JSON_OPTION) -> None:
    """Export every audit event with the chain's head hash (for auditors)."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        head = ws.audit.export(file)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "file": str(file), "head": head})
    else:
        console.print(f"Exported the audit trail to {file}; head hash {head}.")
