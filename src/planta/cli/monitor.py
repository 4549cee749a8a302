"""`planta monitor`: has production moved away from training, and does it matter?"""

from __future__ import annotations

from pathlib import Path

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr
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

    from planta.i18n import env_lang, translator
    from planta.services.monitor import MonitorResult
    from planta.services.monitor_report import feature_sentence, verdict, verdict_words

    assert isinstance(result, MonitorResult)
    # English keeps the monitor's own sentences; another language says them from the catalogue.
    t = translator(env_lang())
    english = env_lang() == "en"
    doc = result.to_dict()
    w = doc["window"]
    where = (tr("cli.monitor.where_log", since=w["since"][:16], until=w["until"][:16])
             if w["source"] == "log" else str(w["current"]))
    console.print(tr("cli.monitor.head", usecase=doc["usecase"], version=doc["model_version"],
                     rows=f"{doc['rows']:,}", where=escape(where)), soft_wrap=True)
    rows = []
    for f in doc["features"]:
        state = (tr("report.tag_few") if not f["enough_rows"] else tr("cli.monitor.alert")
                 if f["alerting"] else tr("cli.monitor.drifted") if f["drifted"]
                 else tr("report.tag_stable"))
        tests = {t["method"]: t for t in f["tests"]}
        main = tests.get("psi") or tests.get("js")
        p = tests.get("ks") or tests.get("chi2")
        rows.append([f["name"], state,
                     "–" if f["importance"] is None else f"{f['importance'] * 100:.1f} %",
                     f"{main['method'].upper()} {main['statistic']:.3g}" if main else "",
                     "–" if p is None or p.get("p_adjusted") is None
                     else f"{p['p_adjusted']:.2g}"])
    out = table(tr("cli.monitor.title"),
                [tr("report.col.feature"), tr("report.col.state"), tr("report.col.importance"),
                 tr("cli.monitor.effect"), tr("cli.monitor.p")], rows)
    out.columns[0].no_wrap = True
    console.print(out)
    score, q = doc["score"], doc["quality"]
    percent = score.get("positive_rate") is not None
    for f in doc["features"]:
        says = f["says"] if english else feature_sentence(f, t, percent=percent) or f["says"]
        console.print(f"• {says}", soft_wrap=True, markup=False)
    if score.get("psi") is not None:
        console.print(tr("cli.monitor.scores", psi=f"{score['psi']:.3g}",
                         now=_pct(score["positive_rate"]),
                         holdout=_pct(score["reference_positive_rate"])))
    new = tr("cli.monitor.new", values=q["new_categories"]) if q["new_categories"] else ""
    console.print(tr("cli.monitor.quality", rejected=f"{q['rejected']:,}",
                     pct=_pct(q["rejected_rate"]), out=_pct(q["out_of_contract_rate"]), new=new),
                  soft_wrap=True, markup=False)
    text, _ = verdict(doc) if english else verdict_words(doc, t)
    console.print(text, soft_wrap=True, markup=False)
    if html is not None:
        console.print(tr("cli.monitor.html", path=html))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


__all__ = ["monitor"]
