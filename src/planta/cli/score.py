"""`planta score`: batch scoring of a file with the production model."""

from __future__ import annotations

from pathlib import Path

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, rule_name, tr


@handle_errors
def score(usecase: str = typer.Argument(..., help="Use case name."),
          file: Path = typer.Argument(..., help="CSV, Excel (.xlsx) or Parquet file to score."),
          output: Path = typer.Option(..., "-o", "--output",
                                      help="Result file: .parquet, .csv or .xlsx."),
          version: str = typer.Option("production", help="Version number or alias."),
          range_policy: str = typer.Option("reject", help="Out-of-range values: reject, flag "
                                           "or clip."),
          chunk_rows: int = typer.Option(200_000, help="Rows per chunk (memory stays flat)."),
          as_json: bool = JSON_OPTION) -> None:
    """Score a file with the production model; every row comes out with a status."""
    from planta.services.score import score_file
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        if as_json:
            result = score_file(ws, usecase, file, output, version=version,
                                chunk_rows=chunk_rows, range_policy=range_policy)
        else:
            with console.status(tr("cli.score.scoring")) as status:
                result = score_file(ws, usecase, file, output, version=version,
                                    chunk_rows=chunk_rows, range_policy=range_policy,
                                    progress=lambda n: status.update(
                                        tr("cli.score.progress", rows=f"{n:,}")))
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | result.to_dict())
        return
    console.print(tr("cli.score.done", rows=f"{result.n_rows:,}", source=result.input_name,
                     usecase=usecase, version=result.model_version,
                     seconds=f"{result.duration_s:.1f}", speed=f"{result.rows_per_s:,.0f}",
                     output=result.output))
    if result.n_rejected:
        console.print(tr("cli.score.rejected", rows=f"{result.n_rejected:,}"))
        for rule, count in sorted(result.rejected_by_rule.items(), key=lambda kv: -kv[1]):
            console.print(f"  • {rule_name(rule)}: {count:,}")
    console.print(tr("cli.score.recorded", batch=result.batch_id))
