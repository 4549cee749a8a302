"""Alerts over HTTP: what monitoring rules raised, and acknowledging or resolving it.

    GET  /v1/alerts[?usecase=&state=&limit=]       viewer; newest first (default: active)
    GET  /v1/alerts/{id}                           viewer; the alert and its actions
    POST /v1/alerts/{id}/acknowledge  {"reason"}   operator; audited under the caller's name
    POST /v1/alerts/{id}/resolve      {"reason"}   operator; audited under the caller's name

The same store calls as `planta alerts` and the UI's Alerts page, so every path leaves the same
audit events.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.core.lifecycle import Role
from planta.server.body import parse_json
from planta.server.errors import HTTPProblem
from planta.server.guard import require
from planta.server.routes.v1 import json_response, runtime
from planta.store.alerts import AlertStore

router = APIRouter(tags=["alerts"])
MAX_LIMIT = 1000


def _store(request: Request) -> AlertStore:
    rt = runtime(request)
    return AlertStore(rt.ws.store, rt.ws.audit)


def _doc(alert: Any) -> dict[str, Any]:
    doc: dict[str, Any] = alert.to_dict()
    doc["links"] = {"self": f"/v1/alerts/{alert.id}"}
    return doc


@router.get("/v1/alerts", summary="Alerts raised by monitoring rules, newest first")
async def list_alerts(request: Request) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading alerts")
    query = request.query_params
    state = query.get("state") or "active"
    try:
        limit = min(max(int(query.get("limit") or 100), 1), MAX_LIMIT)
    except ValueError:
        raise HTTPProblem(422, "limit must be a whole number.", rule="bad_limit") from None
    store = _store(request)
    found = await run_in_threadpool(lambda: store.list(
        usecase=query.get("usecase") or None, state=None if state == "all" else state,
        limit=limit))
    return json_response({"alerts": [_doc(a) for a in found]})


@router.get("/v1/alerts/{alert_id}", summary="One alert and its actions")
async def get_alert(request: Request, alert_id: str) -> Response:
    require(request.scope["state"], Role.VIEWER, "reading alerts")
    store = _store(request)
    alert = await run_in_threadpool(store.get, alert_id.upper())
    actions = await run_in_threadpool(store.actions_of, alert.id)
    return json_response(_doc(alert) | {"actions": [a.to_dict() for a in actions]})


async def _move(request: Request, alert_id: str, verb: str) -> Response:
    principal = require(request.scope["state"], Role.OPERATOR, f"{verb.rstrip('e')}ing alerts")
    doc = parse_json(await request.body())
    reason = doc.get("reason") if isinstance(doc, dict) else None
    if not isinstance(reason, str):
        raise HTTPProblem(422, 'Send {"reason": "why"}: the reason goes to the audit trail.',
                          rule="reason_missing")
    store = _store(request)
    move = store.acknowledge if verb == "acknowledge" else store.resolve
    alert = await run_in_threadpool(move, alert_id.upper(), principal.name, reason)
    return json_response(_doc(alert))


@router.post("/v1/alerts/{alert_id}/acknowledge", summary="Acknowledge an open alert")
async def acknowledge(request: Request, alert_id: str) -> Response:
    return await _move(request, alert_id, "acknowledge")


@router.post("/v1/alerts/{alert_id}/resolve", summary="Resolve an alert by hand")
async def resolve(request: Request, alert_id: str) -> Response:
    return await _move(request, alert_id, "resolve")


__all__ = ["router"]
