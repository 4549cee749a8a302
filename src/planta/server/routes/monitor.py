"""Monitoring over HTTP: the drift report of a use case's prediction log, as JSON or HTML.

    GET /v1/usecases/{name}/monitor?since=24h&until=…&version=production[&plots=1]
    GET /v1/usecases/{name}/monitor.html?since=24h      the self-contained report

The same document as ``planta monitor <usecase> --json`` (less the ``ok`` key). Viewer role.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from planta.core.lifecycle import Role
from planta.errors import InputError
from planta.server.errors import HTTPProblem
from planta.server.guard import require
from planta.server.routes.v1 import _time, json_response, runtime
from planta.services.monitor import MonitorResult, monitor

router = APIRouter(tags=["monitoring"])

# A window longer than this is refused: a report must stay quick, and a year is the most the
# log keeps by default.
MAX_WINDOW = timedelta(days=400)


def _result(request: Request, name: str) -> MonitorResult:
    rt = runtime(request)
    require(request.scope["state"], Role.VIEWER, "reading monitoring reports")
    if name not in rt.ws.project.usecase_names:
        raise HTTPProblem(404, f"There is no use case {name[:100]!r} in this project.",
                          rule="not_found")
    q = request.query_params
    until = _time(q.get("until"), "until") or datetime.now(UTC)
    since = _time(q.get("since") or "24h", "since") or until - timedelta(hours=24)
    if until - since > MAX_WINDOW:
        raise InputError(f"The window {since:%Y-%m-%d} to {until:%Y-%m-%d} is longer than "
                         f"{MAX_WINDOW.days} days.", hint="Ask for a shorter window (since=30d).")
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
    from planta.services.monitor_report import render_html

    result = await run_in_threadpool(_result, request, name)
    return HTMLResponse(render_html(result))


__all__ = ["router"]
