"""`planta monitor`: has production moved away from training, and does it matter?"""

from __future__ import annotations

from pathlib import Path

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table
from planta.cli.predictions import _MOMENT_HELP, _moment_option, parse_moment
from planta.errors import InputError


@handle_errors
def monitor(usecase: str = typer.Argument(..., help="Use case name."),
            since: str = typer.Option(None, "--since", callback=_moment_option,
                                      help="Window start (default 24h). " + _MOMENT_HELP),
            until: str = typer.Option(None, "--until", callback=_moment_option,
                                      help="Window end (default now). " + _MOMENT_HELP),
            current: Path = typer.Option(None, "--current", exists=True, dir_okay=False,
                                         help="Compare this file (CSV, Excel, Parquet) instead "
                                              "of the prediction log."),
            dataset: int = typer.Option(None, "--dataset", help="Compare this dataset "
                                        "version instead of the prediction log."),
            version: str = typer.Option("production", "--version",
                                        help="Model version or alias whose training data is "
                                             "the reference."),
            device: str = typer.Option(None, "--device", help="Only this edge device's "
                                       "predictions (its inputs against the reference)."),
            html: Path = typer.Option(None, "--html", dir_okay=False,
                                      help="Also write a self-contained HTML report here."),
            as_json: bool = JSON_OPTION) -> None:
    """Compare production inputs with the training data: drift per feature, whether the
    model cares, score distribution and data quality."""
    from planta.services.monitor import monitor as run_monitor
    from planta.services.workspace import Workspace

    if (current is not None or dataset is not None) and (since or until):
        raise InputError("--since/--until pick a window of the prediction log; they do not "
                         "apply to --current or --dataset.", hint="Drop one of them.")
    ws = Workspace.open()
    try:
        which: str | int = int(version) if version.isdigit() else version
        result = run_monitor(ws, usecase, since=parse_moment(since), until=parse_moment(until),
                             current=current, dataset_version=dataset, version=which,
                             device=device)
        if html is not None:
            from planta.services.monitor import report_history
            from planta.services.monitor_report import render_html

            html.write_text(render_html(result, **report_history(ws, result)),
                            encoding="utf-8")
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | result.to_dict() | (
            {"html": str(html)} if html is not None else {}))
        return
    _show(result, html)


def _show(result: object, html: Path | None) -> None:
    from rich.markup import escape

    from planta.services.monitor import MonitorResult
    from planta.services.monitor_report import verdict

    assert isinstance(result, MonitorResult)
    doc = result.to_dict()
    w = doc["window"]
    where = (f"{w['since'][:16]} to {w['until'][:16]} UTC (prediction log)"
             if w["source"] == "log" else str(w["current"]))
    console.print(f"[bold]{doc['usecase']}[/], model version {doc['model_version']}: "
                  f"{doc['rows']:,} rows, {escape(where)}", soft_wrap=True)
    rows = []
    for f in doc["features"]:
        state = ("too few rows" if not f["enough_rows"] else "ALERT" if f["alerting"]
                 else "drifted (no alert)" if f["drifted"] else "stable")
        tests = {t["method"]: t for t in f["tests"]}
        main = tests.get("psi") or tests.get("js")
        p = tests.get("ks") or tests.get("chi2")
        rows.append([f["name"], state,
                     "–" if f["importance"] is None else f"{f['importance'] * 100:.1f} %",
                     f"{main['method'].upper()} {main['statistic']:.3g}" if main else "",
                     "–" if p is None or p.get("p_adjusted") is None
                     else f"{p['p_adjusted']:.2g}"])
    out = table("Drift per feature (drifted and important first)",
                ["feature", "state", "importance", "effect", "p (corrected)"], rows)
    out.columns[0].no_wrap = True
    console.print(out)
    for f in doc["features"]:
        console.print(f"• {f['says']}", soft_wrap=True, markup=False)
    score, q = doc["score"], doc["quality"]
    if score.get("psi") is not None:
        console.print(f"Scores: PSI {score['psi']:.3g} against the holdout; alarms "
                      f"{_pct(score['positive_rate'])} now, "
                      f"{_pct(score['reference_positive_rate'])} on the holdout.")
    console.print(f"Quality: {q['rejected']:,} records rejected by the contract "
                  f"({_pct(q['rejected_rate'])}), out of contract "
                  f"{_pct(q['out_of_contract_rate'])}"
                  + (f", new categories: {q['new_categories']}" if q["new_categories"] else "")
                  + ".", soft_wrap=True, markup=False)
    text, _ = verdict(doc)
    console.print(text, soft_wrap=True, markup=False)
    if html is not None:
        console.print(f"HTML report: {html}")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


__all__ = ["monitor"]
