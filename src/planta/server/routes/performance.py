"""Performance over time over HTTP: realised and estimated metrics per window, as JSON.

    GET /v1/usecases/{name}/performance?since=30d&until=…&window=1d

The same document as ``planta performance <usecase> --json`` (less the ``ok`` key):
``PerformanceSeries.to_dict()``. ``since`` and ``until`` take a span back from now (``30d``,
``24h``) or an ISO time; ``window`` a width (``30m``, ``12h``, ``1d``, ``1w``). Viewer role.
"""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.errors import InputError
from planta.server.routes.v1 import json_response, report_window
from planta.services.performance import PerformanceSeries, performance_over_time

router = APIRouter(tags=["monitoring"])

_WIDTH = re.compile(r"^\s*(?P<n>\d{1,6}(?:\.\d{1,6})?)\s*(?P<unit>[mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# A period longer than this is refused: the log keeps a year by default.
MAX_PERIOD = timedelta(days=400)


def parse_width(text: str) -> timedelta:
    """A window width: ``30m``, ``12h``, ``1d``, ``1w``.

    >>> parse_width("12h"), parse_width("1w")
    (datetime.timedelta(seconds=43200), datetime.timedelta(days=7))
    """
    match = _WIDTH.match(text or "")
    if not match or float(match["n"]) <= 0:
        raise InputError(f"window={text[:40]!r} is not a window width.",
                         hint="Use 30m, 12h, 1d or 1w.")
    return timedelta(**{_UNITS[match["unit"].lower()]: float(match["n"])})


def _series(request: Request, name: str) -> PerformanceSeries:
    rt, since, until = report_window(request, name, what="reading model performance",
                                     default_since="30d", longest=MAX_PERIOD)
    q = request.query_params
    return performance_over_time(rt.ws, name, since=since, until=until,
                                 window=parse_width(q.get("window") or "1d"))


@router.get("/v1/usecases/{name}/performance", summary="Realised and estimated performance of "
            "the model per time window (ground truth where it came back, confidence elsewhere)")
async def performance_json(request: Request, name: str) -> Response:
    series = await run_in_threadpool(_series, request, name)
    return json_response(series.to_dict())


__all__ = ["MAX_PERIOD", "parse_width", "router"]
