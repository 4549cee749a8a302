"""planta's own REST API, version 1: use cases, predictions, feedback, versions, bundles.

Handlers are plain Starlette-style functions on the raw request: the body is parsed once with
orjson and checked by the contract's own rules (not by a second schema in the web framework),
and answers are serialized with orjson. The OpenAPI document still shows each use case's real
fields: :mod:`planta.server.openapi` writes it from the contracts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from planta.core.lifecycle import Role
from planta.errors import InputError, NotFoundError
from planta.server.body import flag, integer, read_json, records_of
from planta.server.errors import HTTPProblem
from planta.server.guard import require
from planta.server.runtime import Runtime

router = APIRouter()


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


def _state(request: Request) -> dict[str, Any]:
    state: dict[str, Any] = request.scope["state"]
    return state


def describe_usecase(rt: Runtime, name: str) -> dict[str, Any]:
    route = rt.hub.route(name)
    uc = rt.ws.project.usecase(name)
    scorer = route.production or route.canary
    out: dict[str, Any] = {"name": name, "task": uc.task.value, "target": uc.target,
                           "objective": str(uc.objective) if uc.objective else None,
                           "live": {k: s.version for k, s in (
                               ("production", route.production), ("canary", route.canary),
                               ("shadow", route.shadow)) if s is not None}}
    if route.canary is not None:
        out["canary_share"] = route.canary_share
    if scorer is not None:
        out["fields"] = [f.to_dict() for f in scorer.contract.inputs]
        out["output"] = scorer.output
        out["entity"] = scorer.entity
    return out


@router.get("/v1/usecases", tags=["use cases"], summary="List the use cases served here")
async def list_usecases(request: Request) -> Response:
    rt = runtime(request)
    require(_state(request), Role.VIEWER, "reading use cases")
    return json_response({"usecases": [describe_usecase(rt, n) for n in
                                       sorted(rt.hub.routing.routes)]})


@router.get("/v1/usecases/{name}", tags=["use cases"],
            summary="A use case: its contract (fields, units, ranges) and live versions")
async def get_usecase(request: Request, name: str) -> Response:
    require(_state(request), Role.VIEWER, "reading use cases")
    return json_response(describe_usecase(runtime(request), name))


@router.post("/v1/usecases/{name}/predict", tags=["predictions"],
             summary="Predict for one or more records (sync)")
async def predict(request: Request, name: str) -> Response:
    rt = runtime(request)
    state = _state(request)
    principal = require(state, Role.OPERATOR, "scoring")
    explain = flag(request, "explain")
    version = integer(request, "version", None, low=1)
    records = records_of(await read_json(request), max_records=rt.options.max_records)
    answer = await rt.predict(name, records, principal=principal, channel="sync",
                              explain=explain, version=version,
                              request_id=state.get("request_id"))
    return Response(orjson.dumps({"usecase": name, "model_version": answer.batch.version,
                                  "route": answer.route, "predictions": answer.records()}),
                    media_type="application/json")


@router.post("/v1/usecases/{name}/feedback", tags=["feedback"],
             summary="Ground truth for earlier predictions (idempotent)")
async def feedback(request: Request, name: str) -> Response:
    rt = runtime(request)
    principal = require(_state(request), Role.OPERATOR, "sending feedback")
    rt.hub.route(name)
    doc = await read_json(request)
    items = doc.get("feedback") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise HTTPProblem(422, 'The body must be {"feedback": [{"prediction_id": "...", '
                          '"value": ...}, ...]} (or entity and time instead of the id).',
                          rule="feedback_missing")
    if len(items) > rt.options.max_records:
        raise HTTPProblem(413, f"{len(items):,} feedback items; the limit is "
                          f"{rt.options.max_records:,} per request.", rule="batch_too_large")
    result = await run_in_threadpool(rt.feedback.add, name, items, actor=principal.name,
                                     source="api")
    return json_response(result.to_dict() if hasattr(result, "to_dict") else result)


@router.get("/v1/usecases/{name}/predictions", tags=["predictions"],
            summary="Logged predictions, newest first")
async def predictions(request: Request, name: str) -> Response:
    rt = runtime(request)
    require(_state(request), Role.VIEWER, "reading the prediction log")
    rt.hub.route(name)
    q = request.query_params
    since = _time(q.get("since"), "since")
    until = _time(q.get("until"), "until")
    rows = await run_in_threadpool(
        rt.log.query, usecase=name, since=since, until=until,
        version=integer(request, "version", None, low=1), entity=q.get("entity"),
        limit=integer(request, "limit", 100, low=1, high=10_000))
    return json_response({"usecase": name, "predictions": [r.to_dict() for r in rows]})


@router.get("/v1/predictions/{prediction_id}", tags=["predictions"],
            summary="One logged prediction by id")
async def prediction(request: Request, prediction_id: str) -> Response:
    rt = runtime(request)
    require(_state(request), Role.VIEWER, "reading the prediction log")
    from planta.store.ids import is_id

    if not is_id(prediction_id):
        raise HTTPProblem(422, f"{prediction_id[:40]!r} is not a prediction id.",
                          rule="bad_id")
    found = await run_in_threadpool(rt.log.get, prediction_id)
    if found is None:
        raise NotFoundError(f"There is no logged prediction {prediction_id}.",
                            hint="It may be older than the log's retention.")
    return json_response(found.to_dict())


def _time(value: str | None, name: str) -> datetime | None:
    """``24h``, ``7d``, ``30m`` (ago) or an ISO time."""
    if value is None or value == "":
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if value[-1:] in units and value[:-1].isdigit():
            return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
        at = datetime.fromisoformat(value)
        # In UTC now: a time at the edge of the calendar (year 1 at +14:00) fails here, as a
        # 400, rather than in the store as a 503.
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not a time, or outside years 1-9999 (9999999d)
        raise InputError(f"{name}={value!r} is neither a duration like 24h nor an ISO time.",
                         hint="Use 30m, 24h, 7d or 2026-11-23T08:00:00Z.") from None


def report_window(request: Request, name: str, *, what: str, default_since: str,
                  longest: timedelta) -> tuple[Runtime, datetime, datetime]:
    """The runtime and the (since, until) of a report request on use case ``name``, after the
    viewer check: a 404 for an unknown use case, a 400 for a bad or over-long window."""
    rt = runtime(request)
    require(request.scope["state"], Role.VIEWER, what)
    if name not in rt.ws.project.usecase_names:
        raise HTTPProblem(404, f"There is no use case {name[:100]!r} in this project.",
                          rule="not_found")
    q = request.query_params
    until = _time(q.get("until"), "until") or datetime.now(UTC)
    since = _time(q.get("since") or default_since, "since") or until
    if until - since > longest:
        raise InputError(f"The window {since:%Y-%m-%d} to {until:%Y-%m-%d} is longer than "
                         f"{longest.days} days.", hint="Ask for a shorter one (since=30d).")
    return rt, since, until


__all__ = ["describe_usecase", "json_response", "report_window", "router", "runtime"]
