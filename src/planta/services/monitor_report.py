"""The monitoring report as one self-contained HTML file: inline CSS and SVG, no script, no CDN.

    render_html(result) -> str
        header      use case, model version, window, rows; the verdict in one sentence
        summary     one row per feature: drifted, alerting, importance, PSI / KS / JS, says
        per feature reference vs current distribution (bars on the reference's bins)
        score       the model's scores now vs on its holdout; share of alarms
        quality     missing, out-of-contract, rejected, new categories

It opens offline in any browser, can be mailed or attached to an audit, and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from planta.i18n import env_lang, normalise, translator
from planta.services.monitor import MonitorResult

_W, _H, _PAD = 520, 150, 28
_REF, _CUR = "#8a9bb0", "#d9822b"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#1d2733;padding:0 16px}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid
#dde3ea;padding-bottom:4px}.muted{color:#5b6b7c}.verdict{font-size:1.05em;padding:10px 14px;
border-radius:6px;background:#eef6ee;border:1px solid #b9d8b9;margin:12px 0}
.verdict.bad{background:#fdf0e6;border-color:#efc29b}table{border-collapse:collapse;width:100%;
font-size:.92em}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6ebf0;
vertical-align:top}th{background:#f5f7fa}.tag{display:inline-block;padding:1px 7px;
border-radius:9px;font-size:.85em}.drift{background:#f6d5b8}.alert{background:#e8a0a0}
.ok{background:#d5ead5}.quiet{background:#e4e7eb}.grid{display:grid;
grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:18px}.card{border:1px solid
#e1e6ec;border-radius:6px;padding:10px 12px}.card h3{font-size:1em;margin:0 0 4px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
svg text{font-size:10px;fill:#5b6b7c}.half{max-width:640px}
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:.{digits}g}"
    return escape(str(value))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _bars(labels: Sequence[str], reference: Sequence[float], current: Sequence[float],
          marker: str | None = None) -> str:
    """Paired bars (reference grey, current orange) on shared bins, as an inline SVG."""
    k = len(reference)
    if k == 0:
        return ""
    top = max(max(reference), max(current), 1e-9)
    inner_w, inner_h = _W - 2 * _PAD, _H - 2 * _PAD
    step = inner_w / k
    bar = max(step * 0.42, 0.6)
    parts = [f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" '
             'stroke="#9aa7b4"/>']
    for i, (r, c) in enumerate(zip(reference, current)):
        x = _PAD + i * step
        for offset, value, colour in ((0.0, r, _REF), (bar, c, _CUR)):
            h = inner_h * value / top
            parts.append(f'<rect x="{x + offset:.2f}" y="{_H - _PAD - h:.2f}" '
                         f'width="{bar:.2f}" height="{h:.2f}" fill="{colour}"/>')
    ticks = sorted({0, k // 2, k - 1})
    for i in ticks:
        if i < len(labels):
            parts.append(f'<text x="{_PAD + i * step:.1f}" y="{_H - _PAD + 13}">'
                         f'{escape(labels[i])}</text>')
    parts.append(f'<text x="{_PAD}" y="{_PAD - 8}">share of rows (max {top * 100:.1f} %)</text>')
    if marker:
        parts.append(f'<text x="{_W - _PAD}" y="{_PAD - 8}" text-anchor="end">'
                     f'{escape(marker)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _numeric_labels(edges: Sequence[float]) -> list[str]:
    return [f"< {edges[0]:.4g}"] + [f"{e:.4g}" for e in edges[:-1]] + [f"≥ {edges[-1]:.4g}"]


def _compact(plot: dict[str, Any], target: int = 40) -> tuple[list[str], list[float], list[float]]:
    """Merge a numeric plot's fine bins into about ``target`` bars (plots, not statistics)."""
    edges, ref, cur = plot["edges"], plot["reference"], plot["current"]
    labels = _numeric_labels(edges)
    size = max(1, -(-len(ref) // target))
    out_l, out_r, out_c = [], [], []
    for i in range(0, len(ref), size):
        out_l.append(labels[i])
        out_r.append(sum(ref[i:i + size]))
        out_c.append(sum(cur[i:i + size]))
    return out_l, out_r, out_c


def feature_svg(feature: dict[str, Any]) -> str:
    """Reference vs current distribution of one feature (a ``features`` item with plots)."""
    plot = feature.get("plot") or {}
    if not plot:
        return ""
    if feature["kind"] == "numeric":
        labels, ref, cur = _compact(plot)
        return _bars(labels, ref, cur)
    return _bars([str(c) for c in plot["categories"]], plot["reference"], plot["current"])


def score_svg(score: dict[str, Any]) -> str:
    plot = score.get("plot")
    if not plot:
        return ""
    labels, ref, cur = _compact(plot, 50)
    threshold = plot.get("threshold")
    return _bars(labels, ref, cur, f"alarm threshold {threshold:.3g}" if threshold else None)


_EST, _REAL, _TARGET = "#d9822b", "#2f6fb0", "#b03a2e"


def _y(value: float, low: float, high: float) -> float:
    return _H - _PAD - (_H - 2 * _PAD) * (value - low) / ((high - low) or 1.0)


def _x(i: int, n: int) -> float:
    return _PAD + (_W - 2 * _PAD) * (i + 0.5) / max(n, 1)


def _axis(labels: Sequence[str], low: float, high: float, caption: str) -> list[str]:
    n = len(labels)
    parts = [f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" '
             'stroke="#9aa7b4"/>',
             f'<text x="{_PAD}" y="{_PAD - 8}">{escape(caption)} ({low:.3g}–{high:.3g})'
             '</text>']
    for i in sorted({0, n // 2, n - 1}):
        if 0 <= i < n:
            parts.append(f'<text x="{_x(i, n):.1f}" y="{_H - _PAD + 13}" '
                         f'text-anchor="middle">{escape(labels[i])}</text>')
    return parts


def _path(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y) in
                    enumerate(points))


def trend_svg(labels: Sequence[str], values: Sequence[float | None], threshold: float | None,
              caption: str) -> str:
    """One statistic over time (a line, gaps where a step had no value) with its threshold
    as a dashed line, as an inline SVG."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    high = max([*known, threshold or 0.0]) * 1.1 or 1.0
    parts = [f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">', *_axis(labels, 0.0, high, caption)]
    if threshold is not None:
        y = _y(threshold, 0.0, high)
        parts.append(f'<line x1="{_PAD}" y1="{y:.1f}" x2="{_W - _PAD}" y2="{y:.1f}" '
                     f'stroke="{_TARGET}" stroke-dasharray="4 3"/>')
    run: list[tuple[float, float]] = []
    for i, v in enumerate([*values, None]):
        if v is None:
            if len(run) > 1:
                parts.append(f'<path d="{_path(run)}" fill="none" stroke="{_CUR}" '
                             'stroke-width="1.6"/>')
            run = []
            continue
        x, y = _x(i, len(values)), _y(v, 0.0, high)
        run.append((x, y))
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{_CUR}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _interval(item: dict[str, Any] | None) -> tuple[float, float, float] | None:
    if not item or item.get("value") is None:
        return None
    value = float(item["value"])
    low = item.get("lower")
    high = item.get("upper")
    return value, float(value if low is None else low), float(value if high is None else high)


def performance_svg(perf: dict[str, Any], caption: str) -> str:
    """The objective's metric per window: estimated (orange band and line) and realised (blue
    points with their intervals), the validation interval (grey band) and the target (red
    dashes), as an inline SVG."""
    metric = perf.get("metric")
    windows = perf.get("windows") or []
    if not metric or not windows:
        return ""
    labels = [w["start"][5:10] if perf.get("window_s", 0) >= 86400 else w["start"][11:16]
              for w in windows]
    est = [_interval((w.get("estimated") or {}).get(metric)) for w in windows]
    real = [_interval((w.get("realised") or {}).get(metric)) for w in windows]
    if not any(est) and not any(real):
        return ""
    n = len(windows)
    target = (perf.get("targets") or {}).get(metric)
    parts = [f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">', *_axis(labels, 0.0, 1.0, caption)]
    valid = _interval((perf.get("validation") or {}).get(metric))
    if valid is not None:
        top, bottom = _y(valid[2], 0.0, 1.0), _y(valid[1], 0.0, 1.0)
        parts.append(f'<rect x="{_PAD}" y="{top:.1f}" width="{_W - 2 * _PAD}" '
                     f'height="{max(bottom - top, 1):.1f}" fill="{_REF}" opacity="0.25"/>')
    if target is not None:
        y = _y(float(target), 0.0, 1.0)
        parts.append(f'<line x1="{_PAD}" y1="{y:.1f}" x2="{_W - _PAD}" y2="{y:.1f}" '
                     f'stroke="{_TARGET}" stroke-dasharray="4 3"/>')
    band = [(i, e) for i, e in enumerate(est) if e is not None]
    if band:
        upper = [(_x(i, n), _y(e[2], 0.0, 1.0)) for i, e in band]
        lower = [(_x(i, n), _y(e[1], 0.0, 1.0)) for i, e in reversed(band)]
        parts.append(f'<path d="{_path(upper + lower)} Z" fill="{_EST}" opacity="0.22"/>')
        parts.append(f'<path d="{_path([(_x(i, n), _y(e[0], 0.0, 1.0)) for i, e in band])}" '
                     f'fill="none" stroke="{_EST}" stroke-width="1.6"/>')
    for i, r in enumerate(real):
        if r is None:
            continue
        x = _x(i, n)
        parts.append(f'<line x1="{x:.1f}" y1="{_y(r[1], 0.0, 1.0):.1f}" x2="{x:.1f}" '
                     f'y2="{_y(r[2], 0.0, 1.0):.1f}" stroke="{_REAL}"/>'
                     f'<circle cx="{x:.1f}" cy="{_y(r[0], 0.0, 1.0):.1f}" r="3" '
                     f'fill="{_REAL}"/>')
    parts.append("</svg>")
    return "".join(parts)


def history_labels(history: dict[str, Any]) -> list[str]:
    """Axis labels of a drift history: the day (MM-DD) or the hour (HH:MM)."""
    day = history.get("step_s", 0) >= 86400
    return [p["start"][5:10] if day else p["start"][11:16] for p in history["points"]]


def history_svgs(history: dict[str, Any] | None, caption: str) -> list[tuple[str, str]]:
    """(label, SVG) of each input's drift statistic over time."""
    if not history or not history.get("points"):
        return []
    labels = history_labels(history)
    out = []
    for name, label in history.get("labels", {}).items():
        stats = [p["features"].get(name) for p in history["points"]]
        values = [None if s is None or not s.get("enough_rows") else s.get("statistic")
                  for s in stats]
        known = next((s for s in stats if s), None)
        if known is None:
            continue
        svg = trend_svg(labels, values, known.get("threshold"),
                        caption.format(method=_METHOD_NAMES.get(known["method"],
                                                                known["method"])))
        if svg:
            out.append((label, svg))
    return out


_METHOD_NAMES = {"psi": "PSI", "js": "Jensen–Shannon", "ks": "Kolmogorov–Smirnov",
                 "wasserstein": "Wasserstein", "chi2": "chi-square"}


Translate = Callable[..., str]


def _moved_words(value: float, threshold: float) -> str:
    if value >= 2 * threshold:
        return "monitoring.moved_lot"
    if value >= threshold:
        return "monitoring.moved_clearly"
    if value >= threshold / 2:
        return "monitoring.moved_little"
    return "monitoring.moved_none"


def _test(feature: dict[str, Any], method: str) -> dict[str, Any] | None:
    return next((x for x in feature["tests"] if x["method"] == method), None)


def feature_sentence(feature: dict[str, Any], t: Translate, *, percent: bool = True) -> str:
    """One input's sentence in the catalogue's language (the same story as
    ``planta.core.drift_report.describe``): plain words first, the statistic in brackets
    behind them, then what to do. ``percent``: the model's answer is a chance (binary)."""
    f = feature
    if not f["enough_rows"]:
        return t("monitoring.says_few", label=f["label"], rows=f"{f['rows']:,}")
    plot = f.get("plot") or {}
    after = ""  # said after the bracket (new categories)
    if f["kind"] == "numeric":
        test = _test(f, "psi")
        what = t("monitoring.what_numeric", label=f["label"])
        detail = t("monitoring.detail_psi", psi=f"{(test or {}).get('statistic') or 0:.2f}")
        ref, cur = plot.get("mean_reference"), plot.get("mean_current")
        if ref is not None and cur is not None:
            detail += t("monitoring.detail_means", reference=f"{ref:.4g}", current=f"{cur:.4g}")
        advice = "monitoring.advice_numeric"
    else:
        test = _test(f, "js")
        what = t("monitoring.what_category", label=f["label"])
        detail = t("monitoring.detail_js", js=f"{(test or {}).get('statistic') or 0:.2f}")
        new = f.get("new_categories") or {}
        if new:
            shown = ", ".join(f"{k} ({v:,})" for k, v in sorted(new.items(),
                                                                  key=lambda kv: -kv[1])[:5])
            after = t("monitoring.detail_new", values=shown)
        advice = "monitoring.advice_category"
    if test is None or test.get("statistic") is None:
        return str(f.get("says") or "")
    head = t(_moved_words(float(test["statistic"]), float(test["threshold"])), what=what)
    effect = f.get("effect")
    extra = ""
    if effect and f["drifted"]:
        now, before = effect.get("mean_now"), effect.get("mean_as_training")
        if now is not None and before is not None:
            fmt = (lambda v: f"{v * 100:.1f} %") if percent else (lambda v: f"{v:.4g}")
            extra = t("monitoring.effect_words", before=fmt(before), now=fmt(now))
    tail = (t(advice) if f["alerting"] else t("monitoring.tail_quiet")) if f["drifted"] \
        else t("monitoring.tail_none")
    text = f"{head} ({detail}){after}{extra}; {tail}."
    return text[0].upper() + text[1:]


def verdict_words(doc: dict[str, Any], t: Translate) -> tuple[str, bool]:
    """:func:`verdict` in the catalogue's language."""
    alerting = [f["label"] for f in doc["features"] if f["alerting"]]
    quiet = [f["label"] for f in doc["features"] if f["drifted"] and not f["alerting"]]
    if not doc["rows"]:
        return t("monitoring.verdict_empty"), False
    if alerting:
        text = t("monitoring.verdict_alert", inputs=", ".join(alerting))
        if quiet:
            text += " " + t("monitoring.verdict_also", inputs=", ".join(quiet))
        return text, True
    if quiet:
        return t("monitoring.verdict_quiet", inputs=", ".join(quiet)), False
    return t("monitoring.verdict_ok"), False


def _tag(feature: dict[str, Any], t: Translate) -> str:
    if not feature["enough_rows"]:
        return f'<span class="tag quiet">{escape(t("report.tag_few"))}</span>'
    if feature["alerting"]:
        return f'<span class="tag alert">{escape(t("report.tag_alert"))}</span>'
    if feature["drifted"]:
        return f'<span class="tag drift">{escape(t("report.tag_quiet"))}</span>'
    return f'<span class="tag ok">{escape(t("report.tag_stable"))}</span>'


def _head(t: Translate, *columns: str) -> str:
    return "".join(f"<th>{escape(t(f'report.col.{c}'))}</th>" for c in columns)


def verdict(doc: dict[str, Any]) -> tuple[str, bool]:
    """One sentence on the whole window, and whether it needs attention."""
    alerting = [f["label"] for f in doc["features"] if f["alerting"]]
    quiet = [f["label"] for f in doc["features"] if f["drifted"] and not f["alerting"]]
    if not doc["rows"]:
        return "No production rows in this window: nothing to compare yet.", False
    if alerting:
        many = len(alerting) > 1
        text = (f"{len(alerting)} input{'s' if many else ''} the model relies on "
                f"{'have' if many else 'has'} moved from training: {', '.join(alerting)}. "
                "Check them before trusting the predictions.")
        if quiet:
            text += f" Also moved, but barely used by the model: {', '.join(quiet)}."
        return text, True
    if quiet:
        return (f"Only inputs the model barely uses have moved ({', '.join(quiet)}); "
                "predictions are not at risk from them."), False
    return "The inputs look like the training data: no drift found.", False


def _alerts_html(alerts: Sequence[dict[str, Any]], t: Translate) -> str:
    if not alerts:
        return f"<p class=muted>{escape(t('report.no_alerts'))}</p>"
    rows = "".join(
        f"<tr><td>{escape(str(a.get('rule')))}</td><td><code>{escape(str(a.get('condition')))}"
        f"</code></td><td>{escape(str(a.get('state')))}</td>"
        f"<td>{escape(str(a.get('first_seen'))[:16])}</td><td>{a.get('count')}</td></tr>"
        for a in alerts)
    return (f"<table><tr>{_head(t, 'rule', 'condition', 'state', 'since', 'windows')}</tr>"
            f"{rows}</table>")


def _drift_history_html(drift_history: dict[str, Any] | None, t: Translate) -> str:
    trends = history_svgs(drift_history, t("report.history_caption", method="{method}"))
    if not trends:
        return ""
    step = "day" if drift_history and drift_history.get("step_s", 0) >= 86400 else "hour"
    return (f"<h2>{escape(t('report.history_title'))}</h2><p class=muted>"
            f"{escape(t(f'report.history_note_{step}'))}</p><div class=grid>" + "".join(
                f'<div class="card"><h3>{escape(label)}</h3>{svg}</div>'
                for label, svg in trends) + "</div>")


def _performance_html(performance: dict[str, Any] | None, t: Translate) -> str:
    if not performance:
        return ""
    metric = str(performance.get("metric") or "")
    svg = performance_svg(performance, t("report.performance_caption", metric=metric))
    sentences = "".join(f"<li>{escape(str(x))}</li>"
                        for x in performance.get("sentences") or [])
    return (f"<h2>{escape(t('report.performance_title'))}</h2>"
            f"<p class=legend><span style=\"background:{_EST}\"></span>"
            f"{escape(t('report.legend_estimated'))}<span style=\"background:{_REAL}\">"
            f"</span>{escape(t('report.legend_measured'))}"
            f"<span style=\"background:{_REF}\"></span>{escape(t('report.legend_validation'))}"
            f"<span style=\"background:{_TARGET}\"></span>{escape(t('report.legend_objective'))}"
            f"</p><ul>{sentences}</ul>"
            + (f'<div class="card half">{svg}</div>' if svg else
               f"<p class=muted>{escape(t('report.no_scores_window'))}</p>"))


def _window_words(window: dict[str, Any], t: Translate) -> str:
    if window["source"] == "file":
        return escape(t("report.window_file", name=str(window["current"])))
    if window["source"] == "dataset":
        return escape(str(window["current"]))
    return escape(t("report.window_log", since=window["since"][:16], until=window["until"][:16]))


def _score_html(score: dict[str, Any], t: Translate) -> str:
    if score.get("plot"):
        return (f"<p>{escape(t('report.score_line', psi=_num(score['psi']), ks=_num(score['ks']), now=_pct(score['positive_rate']), holdout=_pct(score['reference_positive_rate'])))}</p>"  # noqa: E501
                f'<div class="card half">{score_svg(score)}</div>')
    if score.get("positive_rate") is not None:
        return f"<p>{escape(t('report.alarms_only', now=_pct(score['positive_rate'])))}</p>"
    return f"<p class=muted>{escape(t('report.no_answers'))}</p>"


def render_html(result: MonitorResult, *, drift_history: dict[str, Any] | None = None,
                performance: dict[str, Any] | None = None, lang: str | None = None) -> str:
    """The self-contained HTML report of a monitoring result; with ``drift_history``
    (:func:`planta.services.monitor.drift_over_time`) and ``performance``
    (``PerformanceSeries.to_dict()``) it also draws drift and performance over time.

    In ``lang`` (the catalogue's ``report.*`` and ``monitoring.*`` lines); without one, in
    the language of ``PLANTA_LANG``.
    """
    lang = normalise(lang) or env_lang()
    t = translator(lang)
    doc = result.to_dict(plots=True)
    text, bad = verdict_words(doc, t)
    percent = doc["score"].get("positive_rate") is not None
    rows, cards = [], []
    for f in doc["features"]:
        tests = ", ".join(f"{_METHOD_NAMES.get(x['method'], x['method'])} "
                          f"{_num(x['statistic'])}" +
                          (f" (p {_num(x['p_value'])})" if x["p_value"] is not None else "")
                          for x in f["tests"])
        says = feature_sentence(f, t, percent=percent) or str(f.get("says") or "")
        rows.append(f"<tr><td><b>{escape(f['label'])}</b><br><span class=muted>"
                    f"{escape(f['name'])}</span></td><td>{_tag(f, t)}</td>"
                    f"<td>{_pct(f['importance'])}</td><td>{tests}</td>"
                    f"<td>{escape(says)}</td></tr>")
        cards.append(f'<div class="card"><h3>{escape(f["label"])} {_tag(f, t)}</h3>'
                     f'<div class=muted>{escape(says)}</div>{feature_svg(f)}</div>')
    q = doc["quality"]
    new = "".join(f"<li>{escape(k)}: {escape(', '.join(f'{c} ({n:,})' for c, n in v.items()))}"
                  "</li>" for k, v in q["new_categories"].items()) or \
        f"<li>{escape(t('report.none'))}</li>"
    missing = "".join(f"<tr><td>{escape(k)}</td><td>{_pct(v)}</td></tr>"
                      for k, v in q["missing_rate"].items())
    settings = doc["settings"]
    note = t("report.method_note", correction=settings["correction"], alpha=settings["alpha"],
             psi=settings["psi"], wasserstein=settings["wasserstein"], js=settings["js"],
             importance=_pct(settings["min_importance"]),
             section=f"[usecases.{doc['usecase']}.monitor]")
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{escape(t("report.title", usecase=doc["usecase"]))}</title>
<style>{_CSS}</style></head><body>
<h1>{escape(t("report.heading", usecase=doc["usecase"]))}</h1>
<div class=muted>{t("report.subtitle", version=doc["model_version"], what=_window_words(doc["window"], t), rows=f"{doc['rows']:,}", made=escape(doc["made_at"][:19]))}</div>
<div class="verdict{' bad' if bad else ''}">{escape(text)}</div>
<h2>{escape(t("report.alerts_title"))}</h2>{_alerts_html(doc.get("alerts") or [], t)}
<h2>{escape(t("report.inputs_title"))}</h2>
<p class=legend><span style="background:{_REF}"></span>{escape(t("report.legend_reference"))}
<span style="background:{_CUR}"></span>{escape(t("report.legend_current"))}</p>
<table><tr>{_head(t, "feature", "state", "importance", "tests", "plain")}
</tr>{''.join(rows)}</table>
<div class=grid style="margin-top:14px">{''.join(cards)}</div>
{_drift_history_html(drift_history, t)}
<h2>{escape(t("report.score_title"))}</h2>{_score_html(doc["score"], t)}
{_performance_html(performance, t)}
<h2>{escape(t("report.quality_title"))}</h2>
<p>{escape(t("report.rejected", n=f"{q['rejected']:,}", pct=_pct(q["rejected_rate"]), out=_pct(q["out_of_contract_rate"])))}</p>
<p>{escape(t("report.new_categories"))}</p><ul>{new}</ul>
<table><tr>{_head(t, "feature", "missing")}</tr>{missing}</table>
<p class=muted>{escape(note)}</p>
</body></html>
"""  # noqa: E501


__all__ = ["feature_sentence", "feature_svg", "history_labels", "history_svgs", "performance_svg", "render_html",
           "score_svg", "trend_svg", "verdict", "verdict_words"]
