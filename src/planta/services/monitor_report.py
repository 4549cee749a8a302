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

from collections.abc import Sequence
from html import escape
from typing import Any

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
svg text{font-size:10px;fill:#5b6b7c}
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


def _tag(feature: dict[str, Any]) -> str:
    if not feature["enough_rows"]:
        return '<span class="tag quiet">too few rows</span>'
    if feature["alerting"]:
        return '<span class="tag alert">drifted · alert</span>'
    if feature["drifted"]:
        return '<span class="tag drift">drifted · no alert</span>'
    return '<span class="tag ok">stable</span>'


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


def render_html(result: MonitorResult) -> str:
    """The self-contained HTML report of a monitoring result."""
    doc = result.to_dict(plots=True)
    window = doc["window"]
    what = (f"file {escape(str(window['current']))}" if window["source"] == "file" else
            escape(str(window["current"])) if window["source"] == "dataset" else
            f"prediction log, {escape(window['since'][:16])} to {escape(window['until'][:16])} "
            "UTC")
    text, bad = verdict(doc)
    rows = []
    for f in doc["features"]:
        tests = ", ".join(f"{t['method'].upper()} {_num(t['statistic'])}" +
                          (f" (p {_num(t['p_value'])})" if t["p_value"] is not None else "")
                          for t in f["tests"])
        rows.append(f"<tr><td><b>{escape(f['label'])}</b><br><span class=muted>"
                    f"{escape(f['name'])}</span></td><td>{_tag(f)}</td>"
                    f"<td>{_pct(f['importance'])}</td><td>{tests}</td>"
                    f"<td>{escape(f['says'])}</td></tr>")
    cards = []
    for f in doc["features"]:
        cards.append(f'<div class="card"><h3>{escape(f["label"])} {_tag(f)}</h3>'
                     f'<div class=muted>{escape(f["says"])}</div>{feature_svg(f)}</div>')
    score = doc["score"]
    q = doc["quality"]
    score_html = ""
    if score.get("plot"):
        score_html = (f"<p>Score PSI {_num(score['psi'])}, KS {_num(score['ks'])}; alarms "
                      f"{_pct(score['positive_rate'])} of answers now, "
                      f"{_pct(score['reference_positive_rate'])} on the holdout.</p>"
                      f'<div class="card">{score_svg(score)}</div>')
    elif score.get("positive_rate") is not None:
        score_html = f"<p>Alarms: {_pct(score['positive_rate'])} of answers.</p>"
    else:
        score_html = "<p class=muted>No model answers in this window (a file is compared " \
                     "without scoring it).</p>"
    new = "".join(f"<li>{escape(k)}: {escape(', '.join(f'{c} ({n:,})' for c, n in v.items()))}"
                  "</li>" for k, v in q["new_categories"].items()) or "<li>none</li>"
    missing = "".join(f"<tr><td>{escape(k)}</td><td>{_pct(v)}</td></tr>"
                      for k, v in q["missing_rate"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>planta monitoring: {escape(doc['usecase'])}</title>
<style>{_CSS}</style></head><body>
<h1>Monitoring report: {escape(doc['usecase'])}</h1>
<div class=muted>Model version {doc['model_version']} · {what} · {doc['rows']:,} rows ·
made {escape(doc['made_at'][:19])} UTC</div>
<div class="verdict{' bad' if bad else ''}">{escape(text)}</div>
<h2>Inputs: drift per feature</h2>
<p class=legend><span style="background:{_REF}"></span>training (reference)
<span style="background:{_CUR}"></span>this window</p>
<table><tr><th>feature</th><th>state</th><th>importance</th><th>tests</th><th>in plain words</th>
</tr>{''.join(rows)}</table>
<div class=grid style="margin-top:14px">{''.join(cards)}</div>
<h2>Model output: score distribution</h2>{score_html}
<h2>Data quality</h2>
<p>Rejected by the contract: {q['rejected']:,} records ({_pct(q['rejected_rate'])});
out of contract (rejected or outside the accepted range): {_pct(q['out_of_contract_rate'])}.</p>
<p>New categories:</p><ul>{new}</ul>
<table><tr><th>feature</th><th>missing</th></tr>{missing}</table>
<p class=muted>A feature counts as drifted when its test is significant after correcting for
testing every feature at once ({escape(doc['settings']['correction'])}, alpha
{doc['settings']['alpha']}) and the change is large enough (PSI ≥ {doc['settings']['psi']},
normalised Wasserstein ≥ {doc['settings']['wasserstein']}, Jensen–Shannon ≥
{doc['settings']['js']}); it alerts only when the model's importance for it is at least
{_pct(doc['settings']['min_importance'])}. Thresholds: [usecases.{escape(doc['usecase'])}.monitor]
in planta.toml.</p>
</body></html>
"""


__all__ = ["feature_svg", "render_html", "score_svg", "verdict"]
