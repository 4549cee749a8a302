"""The monitoring page of a use case: open alerts, drift per feature (reference vs current),
drift over time, the model's score distribution, performance over time and data quality, for a
window of the prediction log.

    /ui/usecases/{name}/monitoring?since=24h      windows offered: 1h, 24h, 7d, 30d

The numbers come from :func:`planta.services.monitor.monitor` (the same as ``planta monitor``
and ``GET /v1/usecases/{name}/monitor``); plots are inline SVG drawn on the server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from planta.services.monitor import drift_over_time, monitor, performance_windows
from planta.services.monitor_report import (
    feature_sentence,
    feature_svg,
    history_svgs,
    performance_svg,
    score_svg,
    verdict_words,
)
from planta.ui.view import View

# The statistic shown per input, with its plain-words gloss (catalogue keys).
TERMS = {"psi": ("monitoring.method_psi", "monitoring.term_psi"),
         "js": ("monitoring.method_js", "monitoring.term_js"),
         "wasserstein": ("monitoring.method_wasserstein", "monitoring.term_wasserstein")}
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}


def monitoring(view: View, name: str) -> dict[str, Any]:
    """Context of ``monitoring.html``."""
    from planta.ui.pages import usecase_name

    name = usecase_name(view, name)
    since_key = view.request.query_params.get("since", "24h")
    if since_key not in WINDOWS:
        since_key = "24h"
    until = datetime.now(UTC)
    since = until - WINDOWS[since_key]
    ws = view.rt.ws
    result = monitor(ws, name, since=since, until=until)
    doc = result.to_dict(plots=True)
    text, bad = verdict_words(doc, view.t)
    percent = doc["score"].get("positive_rate") is not None
    features = []
    for f in doc["features"]:
        # The SVG is drawn by planta from numbers and escaped labels; nothing from the request.
        svg = Markup(feature_svg(f))  # nosec B704
        main = f["tests"][1] if len(f["tests"]) > 1 else f["tests"][0]
        method, term = TERMS.get(main["method"], (main["method"], ""))
        features.append(f | {"svg": svg, "p": f["tests"][0], "main": main,
                             "says": feature_sentence(f, view.t, percent=percent),
                             "method": view.t(method), "term": view.t(term) if term else ""})
    score = Markup(score_svg(doc["score"]))  # nosec B704 - numbers, escaped labels
    history = drift_over_time(ws, name, since=since, until=until,
                              version=result.model_version, now=until)
    # Drawn by planta from numbers and escaped labels, like the plots above.
    trends = [(label, Markup(svg))  # nosec B704
              for label, svg in history_svgs(history, view.t("monitoring.over_time_caption"))]
    perf = performance_windows(ws, name, since=since, until=until, now=until)
    drawn = performance_svg(perf, str(perf.get("metric") or "")) if perf else ""
    perf_svg = Markup(drawn)  # nosec B704 - drawn from numbers, escaped labels
    return {"name": name, "doc": doc, "features": features, "verdict": text, "bad": bad,
            "windows": list(WINDOWS), "since": since_key,
            "score_svg": score, "alerts": doc["alerts"], "trends": trends,
            "performance": perf, "performance_svg": perf_svg,
            "duration_ms": round(result.duration_s * 1000)}


__all__ = ["TERMS", "WINDOWS", "monitoring"]
