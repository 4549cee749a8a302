"""Monitoring over HTTP: the drift report of a use case's prediction log, as JSON or HTML.

    GET /v1/usecases/{name}/monitor?since=24h&until=…&version=production[&plots=1]
    GET /v1/usecases/{name}/monitor.html?since=24h      the self-contained report (with drift
                                                        and performance over the window)

The same document as ``planta monitor <usecase> --json`` (less the ``ok`` key), with the use
case's open alerts in ``alerts``. Viewer role.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from planta.server.routes.v1 import json_response, report_window, runtime
from planta.services.monitor import MonitorResult, monitor

router = APIRouter(tags=["monitoring"])

# A window longer than this is refused: a report must stay quick, and a year is the most the
# log keeps by default.
MAX_WINDOW = timedelta(days=400)


def _result(request: Request, name: str) -> MonitorResult:
    rt, since, until = report_window(request, name, what="reading monitoring reports",
                                     default_since="24h", longest=MAX_WINDOW)
    q = request.query_params
    version_text = q.get("version") or "production"
    version: str | int = int(version_text) if version_text.isdigit() else version_text
    return monitor(rt.ws, name, since=since, until=until, version=version)


@router.get("/v1/usecases/{name}/monitor", summary="Drift, score distribution and data quality "
            "of a window of the prediction log")
async def monitor_json(request: Request, name: str) -> Response:
    result = await run_in_threadpool(_result, request, name)
    plots = request.query_params.get("plots") in ("1", "true", "yes")
    return json_response(result.to_dict(plots=plots))


@router.get("/v1/usecases/{name}/monitor.html", summary="The monitoring report as one "
            "self-contained HTML page", response_class=HTMLResponse)
async def monitor_html(request: Request, name: str) -> Response:
    from planta.services.monitor import report_history
    from planta.services.monitor_report import render_html

    def run() -> str:
        result = _result(request, name)
        return render_html(result, **report_history(runtime(request).ws, result))

    return HTMLResponse(await run_in_threadpool(run))


__all__ = ["router"]
