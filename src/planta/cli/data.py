"""`planta ingest` and `planta datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr
from planta.i18n import env_lang, said_lines, say, translator


def print_ingest_report(result: Any) -> None:
    """The data-quality report in plant words."""
    console.print(tr("cli.ingest.new" if result.created else "cli.ingest.same",
                     source=f"[bold]{result.source_name}[/]", version=f"[bold]{result.version}[/]",
                     usecase=result.usecase))
    share = result.n_rejected / result.n_rows if result.n_rows else 0.0
    console.print("  " + tr("cli.ingest.counts", rows=f"{result.n_rows:,}",
                            accepted=f"{result.n_accepted:,}", rejected=f"{result.n_rejected:,}",
                            share=f"{share:.1%}"))
    report = result.report
    for finding in said_lines(report, "findings", translator(env_lang())):
        console.print(f"  • {escape(finding)}", soft_wrap=True)
    t = translator(env_lang())
    if result.exclusions:
        console.print(f"[bold]{tr('cli.ingest.excluded')}[/]")
        for e in result.exclusions:
            kept = f" ({tr('cli.ingest.kept')})" if e.get("kept") else ""
            evidence = say(e["evidence_said"], t) if e.get("evidence_said") else e["evidence"]
            console.print(f"  • {escape(str(e['column']))}: {escape(evidence)}{kept}",
                          soft_wrap=True)
    for note in said_lines(report, "notes", t):
        console.print(f"  • {escape(note)}", soft_wrap=True)
    if result.contract_created:
        console.print(tr("cli.ingest.contract", usecase=result.usecase))
    if result.n_rejected:
        console.print(tr("cli.ingest.quarantine", usecase=result.usecase))
    console.print(tr("cli.ingest.next", usecase=result.usecase))


@handle_errors
def ingest(usecase: str = typer.Argument(..., help="Use case name."),
           file: Path = typer.Argument(..., help="CSV, Excel (.xlsx) or Parquet file."),
           as_json: bool = JSON_OPTION) -> None:
    """Validate, version and profile a data file; prints a data-quality report."""
    from planta.services.ingest import ingest as run_ingest
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        result = run_ingest(ws, usecase, file)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | result.to_dict())
    else:
        print_ingest_report(result)


@handle_errors
def datasets(usecase: str = typer.Argument(..., help="Use case name."),
             as_json: bool = JSON_OPTION) -> None:
    """List the dataset versions of a use case."""
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        ws.project.usecase(usecase)
        items = ws.registry.list_dataset_versions(usecase)
    finally:
        ws.close()
    if as_json:
        print_json([d.to_dict() for d in items])
        return
    console.print(table(f"Dataset versions of {usecase}",
                        ["version", "source", "rows", "accepted", "set aside", "content sha256",
                         "by", "at"],
                        [(d.version, d.source_name, d.n_rows, d.n_accepted, d.n_rejected,
                          d.content_hash[:12], d.created_by, f"{d.created_at:%Y-%m-%d %H:%M}")
                         for d in items]))
