"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from planta.server.routes.v1 import json_response, runtime
from planta.store.metadata import utc_now

router = APIRouter()


@router.get("/healthz", tags=["operations"], summary="The process is alive")
async def healthz() -> Response:
    return json_response({"status": "alive"})


@router.get("/readyz", tags=["operations"],
            summary="Models loaded and the store writable (503 otherwise, with the reason)")
async def readyz(request: Request) -> Response:
    rt = runtime(request)
    problems: list[str] = []
    if not rt.hub.ready:
        problems.append("no use case has a model in production")
    if rt.hub.last_error:
        problems.append(f"the last model reload failed: {rt.hub.last_error}")
    if rt.log is not None and not getattr(rt.log, "healthy", True):
        problems.append(f"the prediction log cannot be written: "
                        f"{getattr(rt.log, 'last_error', 'unknown error')}")
    try:
        await asyncio.wait_for(asyncio.to_thread(_store_ok, rt), timeout=2.0)
    except Exception as exc:
        problems.append(f"the store cannot be read: {exc}")
    body = {"status": "ready" if not problems else "not ready", "problems": problems,
            "models": {n: r.production.version for n, r in rt.hub.routing.routes.items()
                       if r.production is not None},
            "checked_at": utc_now().isoformat()}
    return json_response(body, 200 if not problems else 503)


def _store_ok(rt: object) -> None:
    from sqlalchemy import text

    with rt.ws.store.read() as conn:  # type: ignore[attr-defined]
        conn.execute(text("SELECT 1"))


@router.get("/metrics", tags=["operations"], summary="Prometheus metrics",
            response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    rt = runtime(request)
    return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["router"]
