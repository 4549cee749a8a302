"""The performance page of a use case: "How well is the model doing?"

    /ui/usecases/{name}/performance?since=30d&window=1d[&until=2026-03-31]

One chart per metric (the objective's first): per window, the measured value where outcomes
came back and the estimate from the model's confidence, each with its 95 % interval, beside
the band the model showed at validation and the goal line. Numbers come from
:func:`planta.services.performance.performance_over_time` (the same as
``planta performance``); the chart is inline SVG drawn here from numbers only.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup, escape

from planta.core.metrics import Estimate
from planta.i18n import number
from planta.services.performance import PerformanceSeries, performance_over_time
from planta.ui.view import View

SPANS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90),
         "365d": timedelta(days=365)}
WIDTHS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}
# A span drawn in too many windows is unreadable: hourly windows only up to 7 days.
_MAX_BARS = 400
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 720, 220, 48, 12, 12, 28
_PERCENT = frozenset({"recall", "precision", "f1", "accuracy", "balanced_accuracy",
                      "specificity", "false_alarm_rate", "f1_macro", "roc_auc", "pr_auc", "r2"})


def performance(view: View, name: str) -> dict[str, Any]:
    """Context of ``performance.html``."""
    from planta.ui.pages import usecase_name

    name = usecase_name(view, name)
    since_key = view.request.query_params.get("since", "30d")
    since_key = since_key if since_key in SPANS else "30d"
    width_key = view.request.query_params.get("window", "1d")
    width_key = width_key if width_key in WIDTHS else "1d"
    if SPANS[since_key] / WIDTHS[width_key] > _MAX_BARS:
        width_key = "1d" if SPANS[since_key] / WIDTHS["1d"] <= _MAX_BARS else "1w"
    until_raw = view.request.query_params.get("until")
    until = _until(until_raw)
    started = datetime.now(UTC)
    series = performance_over_time(view.rt.ws, name, since=until - SPANS[since_key],
                                   until=until, window=WIDTHS[width_key])
    took_ms = round((datetime.now(UTC) - started).total_seconds() * 1000)
    # The SVG is drawn here from numbers; labels are escaped; nothing from the request.
    charts = [{"metric": m, "svg": Markup(chart_svg(series, m)),  # nosec B704
               "goal": None if m not in series.targets else cell(
                   Estimate(series.targets[m], math.nan, math.nan), m, view.lang)}
              for m in series.metrics[:4]]
    verdict = series.verdict()
    rows = [w for w in reversed(series.windows) if w.n_predictions][:60]
    return {"name": name, "series": series, "doc": series.to_dict(), "charts": charts,
            "since": since_key, "window": width_key, "spans": list(SPANS),
            "until_q": "" if until_raw is None else f"&until={until:%Y-%m-%dT%H:%M}",
            "widths": list(WIDTHS), "rows": rows, "metric": series.metric,
            "bad": verdict is not None and verdict.state == "not_met",
            "verdict": verdict, "cell": lambda est, metric: cell(est, metric, view.lang),
            "duration_ms": took_ms,
            "story": series.sentences(view.t)}


def _until(raw: str | None) -> datetime:
    """The end of the period: an ISO date or time from the query (UTC), else now."""
    try:
        at = datetime.fromisoformat((raw or "").strip()[:32])
    except ValueError:
        return datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def cell(est: Estimate | None, metric: str, lang: str = "en") -> str:
    """A metric and its interval for a table cell: ``78 (70–85)``; ``2,5`` in Spanish."""
    if est is None or not math.isfinite(est.value):
        return "—"
    def fmt(v: float) -> str:
        return number(v * 100, lang, 0) if metric in _PERCENT else number(v, lang)
    if math.isfinite(est.lower) and math.isfinite(est.upper):
        return f"{fmt(est.value)} ({fmt(est.lower)}–{fmt(est.upper)})"
    return fmt(est.value)


def chart_svg(series: PerformanceSeries, metric: str) -> str:
    """Measured (dark, filled) and estimated (orange, hollow) values per window with their
    intervals, the validation band (grey) and the goal (dashed)."""
    windows = series.windows
    points: list[tuple[int, str, Estimate]] = []
    for k, w in enumerate(windows):
        if w.realised and metric in w.realised:
            points.append((k, "measured", w.realised[metric]))
        if metric in w.estimated:
            points.append((k, "estimated", w.estimated[metric]))
    values = [v for _, _, e in points for v in (e.value, e.lower, e.upper) if math.isfinite(v)]
    validation = series.validation.get(metric)
    target = series.targets.get(metric)
    if validation is not None:
        values += [v for v in (validation.lower, validation.upper) if math.isfinite(v)]
    if target is not None:
        values.append(target)
    if not values:
        return ""
    if metric in _PERCENT:
        low, high = 0.0, 1.0
    else:
        low, high = min(values), max(values)
        pad = (high - low) * 0.08 or 1.0
        low, high = low - pad, high + pad
    inner_w, inner_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    step = inner_w / max(len(windows), 1)

    def x(k: int, kind: str) -> float:
        shift = -0.18 if kind == "measured" else 0.18
        return _PAD_L + step * (k + 0.5 + (shift if len(windows) < 120 else 0.0))

    def y(v: float) -> float:
        return _PAD_T + inner_h * (1 - (min(max(v, low), high) - low) / (high - low))

    def label(v: float) -> str:
        return f"{v * 100:.0f}" if metric in _PERCENT else f"{v:,.3g}"

    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
             f'aria-label="{escape(metric)} per window">']
    if validation is not None and math.isfinite(validation.lower) and \
            math.isfinite(validation.upper):
        top, bottom = y(validation.upper), y(validation.lower)
        parts.append(f'<rect class="validation" x="{_PAD_L}" y="{top:.1f}" width="{inner_w}" '
                     f'height="{max(bottom - top, 1):.1f}" fill="#ddd"><title>validation '
                     f'{label(validation.lower)}–{label(validation.upper)}</title></rect>')
    for tick in (low, (low + high) / 2, high):
        parts.append(f'<text x="{_PAD_L - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{label(tick)}</text>')
    if target is not None:
        parts.append(f'<line class="goal" x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y(target):.1f}" '
                     f'y2="{y(target):.1f}" stroke="#333" stroke-dasharray="5 4">'
                     f'<title>goal {label(target)}</title></line>')
    for k, kind, est in points:
        if not math.isfinite(est.value):
            continue
        cx, colour = x(k, kind), ("#1f4e79" if kind == "measured" else "#e07b00")
        if math.isfinite(est.lower) and math.isfinite(est.upper):
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(est.lower):.1f}" '
                         f'y2="{y(est.upper):.1f}" stroke="{colour}" stroke-width="2"/>')
        fill = colour if kind == "measured" else "#fff"
        parts.append(f'<circle class="{kind}" cx="{cx:.1f}" cy="{y(est.value):.1f}" r="3.5" '
                     f'fill="{fill}" stroke="{colour}" stroke-width="1.5"><title>{kind} '
                     f'{windows[k].start:%Y-%m-%d %H:%M}: {label(est.value)} '
                     f'({label(est.lower)}–{label(est.upper)})</title></circle>')
    first, last = windows[0].start, windows[-1].start
    parts.append(f'<text x="{_PAD_L}" y="{_H - 8}" font-size="11">{first:%Y-%m-%d}</text>')
    parts.append(f'<text x="{_W - _PAD_R}" y="{_H - 8}" font-size="11" text-anchor="end">'
                 f'{last:%Y-%m-%d}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["SPANS", "WIDTHS", "cell", "chart_svg", "performance"]
