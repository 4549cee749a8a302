"""`planta performance`: how well the model is doing, measured and estimated, per window."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import TYPE_CHECKING

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr
from planta.cli.predictions import parse_moment
from planta.i18n import env_lang, translator

if TYPE_CHECKING:
    from planta.core.metrics import Estimate
    from planta.services.performance import PerformanceSeries

_SPAN = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SINCE_HELP = "Start: a span back from now (30d, 24h) or an ISO date/time (UTC unless it has " \
              "an offset)."


def parse_window(text: str) -> timedelta:
    """A window width from the command line: ``1d``, ``12h``, ``1w``, ``30m``.

    >>> parse_window("12h"), parse_window("1w")
    (datetime.timedelta(seconds=43200), datetime.timedelta(days=7))
    """
    match = _SPAN.match(text or "")
    if not match or float(match["n"]) <= 0:
        raise typer.BadParameter(f"{text!r} is not a window width (30m, 12h, 1d, 1w).")
    return timedelta(**{_UNITS[match["unit"].lower()]: float(match["n"])})


def _window_option(value: str) -> str:
    parse_window(value)
    return value


def _moment_option(value: str | None) -> str | None:
    parse_moment(value)
    return value


def _cell(est: Estimate | None, metric: str) -> str:
    if est is None or not math.isfinite(est.value):
        return "-"
    if metric in ("false_alarms_per_day", "expected_cost", "savings", "rmse", "mae"):
        value = f"{est.value:,.3g}"
        span = (f" ({est.lower:,.3g}–{est.upper:,.3g})"
                if math.isfinite(est.lower) and math.isfinite(est.upper) else "")
        return value + span
    span = (f" ({est.lower * 100:.0f}–{est.upper * 100:.0f})"
            if math.isfinite(est.lower) and math.isfinite(est.upper) else "")
    return f"{est.value * 100:.0f}{span}"


# Verdict → catalogue key of its table cell ("-" where there is none).
_VERDICT = {"met": "cli.perf.met", "not_met": "cli.perf.not_met", "unclear": "cli.perf.unclear",
            "unknown": "-"}


def _verdict_cell(verdict: object | None) -> str:
    state = getattr(verdict, "state", None)
    return "-" if state is None or _VERDICT.get(state, "-") == "-" else tr(_VERDICT[state])


@handle_errors
def performance(usecase: str = typer.Argument(..., help="Use case name."),
                since: str = typer.Option("30d", "--since", callback=_moment_option,
                                          help=_SINCE_HELP),
                until: str = typer.Option(None, "--until", callback=_moment_option,
                                          help="End (default now); same forms as --since."),
                window: str = typer.Option("1d", "--window", callback=_window_option,
                                           help="Width of each window: 30m, 12h, 1d, 1w."),
                as_json: bool = JSON_OPTION) -> None:
    """How well is the model doing? Measured where outcomes came back, estimated where not."""
    from planta.services.performance import performance_over_time
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    try:
        series = performance_over_time(ws, usecase, since=parse_moment(since),
                                       until=parse_moment(until), window=parse_window(window))
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | series.to_dict())
        return
    metric = series.metric
    percent = metric not in ("false_alarms_per_day", "expected_cost", "savings", "rmse", "mae")
    unit = tr("cli.perf.of_100") if percent else ""
    rows = []
    for w in series.windows:
        if not w.n_predictions:
            continue
        real = (w.realised or {}).get(metric)
        rows.append((f"{w.start:%Y-%m-%d %H:%M}", w.n_predictions, w.n_labelled,
                     _cell(real, metric), _cell(w.estimated.get(metric), metric),
                     _verdict_cell(w.realised_verdict), _verdict_cell(w.estimated_verdict)))
    console.print(tr("cli.perf.head", usecase=usecase, words=_goal_words(series),
                     objective=series.objective, version=series.version), soft_wrap=True)
    if not rows:
        console.print(tr("cli.perf.no_rows"))
    else:
        console.print(table(None, [tr("cli.perf.col.window"), tr("cli.perf.col.predictions"),
                                   tr("cli.perf.col.with_outcome"),
                                   tr("cli.perf.col.measured", metric=metric, unit=unit),
                                   tr("cli.perf.col.estimated", metric=metric, unit=unit),
                                   tr("cli.perf.col.goal_measured"),
                                   tr("cli.perf.col.goal_estimated")], rows))
    validation = series.validation.get(metric)
    if validation is not None:
        console.print(tr("cli.perf.at_validation", metric=metric,
                         value=_cell(validation, metric), unit=unit))
    for line in series.sentences(translator(env_lang())):
        console.print(f"• {line}", soft_wrap=True)


def _goal_words(series: PerformanceSeries) -> str:
    """The objective in plain words, in the CLI's language (the series keeps English)."""
    from planta.core.spec import parse_objective
    from planta.errors import PlantaError
    from planta.words import objective_words

    try:
        return objective_words(parse_objective(series.objective, series.task),
                               translator(env_lang()))
    except PlantaError:
        return series.objective_words


__all__ = ["parse_window", "performance"]
