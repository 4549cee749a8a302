"""The monitoring page of a use case: drift per feature (reference vs current), the model's
score distribution and data quality, for a window of the prediction log.

    /ui/usecases/{name}/monitoring?since=24h      windows offered: 1h, 24h, 7d, 30d

The numbers come from :func:`planta.services.monitor.monitor` (the same as ``planta monitor``
and ``GET /v1/usecases/{name}/monitor``); plots are inline SVG drawn on the server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from planta.services.monitor import monitor
from planta.services.monitor_report import feature_svg, score_svg, verdict
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
    result = monitor(view.rt.ws, name, since=until - WINDOWS[since_key], until=until)
    doc = result.to_dict(plots=True)
    text, bad = verdict(doc)
    features = []
    for f in doc["features"]:
        # The SVG is drawn by planta from numbers and escaped labels; nothing from the request.
        svg = Markup(feature_svg(f))  # nosec B704
        main = f["tests"][1] if len(f["tests"]) > 1 else f["tests"][0]
        method, term = TERMS.get(main["method"], (main["method"], ""))
        features.append(f | {"svg": svg, "p": f["tests"][0], "main": main,
                             "method": view.t(method), "term": view.t(term) if term else ""})
    score = Markup(score_svg(doc["score"]))  # nosec B704
    return {"name": name, "doc": doc, "features": features, "verdict": text, "bad": bad,
            "windows": list(WINDOWS), "since": since_key,
            "score_svg": score,
            "duration_ms": round(result.duration_s * 1000)}


__all__ = ["TERMS", "WINDOWS", "monitoring"]
