"""planta errors as HTTP answers: one JSON shape for every refusal, never a traceback.

    {"error": {"kind": "ContractError", "status": 422, "message": "...", "hint": "...",
               "message_key": "...", "request_id": "...",
               "violations": [{"record": 3, "field": "torque_nm",
               "rule": "above_max", "value": 912.0, "message": "..."}]}}

``message_key`` is the message's key in planta's catalogue (``planta/locale/*.json``; null for
a message that has none), so that a client can say it in its own words; ``rule`` likewise
(``rule.<rule>``). ``message`` and ``hint`` are in the request's ``Accept-Language`` when
planta speaks it (English or Spanish), else in English.

Anything a client sends that planta refuses is a 4xx; a 5xx means planta itself is in trouble
(store unreachable or full: 503) and is logged with the request id.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from planta.errors import (
    AccessError,
    ConfigError,
    ContractError,
    FileFormatError,
    InputError,
    IntegrityError,
    NotFoundError,
    PlantaError,
    StateError,
    StoreError,
    error_words,
)
from planta.i18n import DEFAULT_LANG, normalise, translator

log = logging.getLogger("planta.server")


class HTTPProblem(PlantaError):
    """A refusal with its own status, for checks that belong to HTTP (size, type, JSON)."""

    def __init__(self, status: int, message: str, *, rule: str, hint: str | None = None,
                 violations: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.rule = rule
        self.violations = violations or [{"record": None, "field": None, "rule": rule,
                                          "value": None, "message": message}]


def status_of(exc: BaseException) -> int:
    if isinstance(exc, HTTPProblem):
        return exc.status
    if isinstance(exc, AccessError):
        return 403  # a known caller whose role is too low; no token at all is a 401 problem
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, StateError):
        return 409
    if isinstance(exc, (ContractError, FileFormatError)):
        return 422
    if isinstance(exc, IntegrityError):
        return 422
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, (StoreError, ConfigError)):
        return 503
    if isinstance(exc, OverflowError):
        return 400  # a number or a time from the request beyond what the store can hold
    return 500


def problem(exc: BaseException, request_id: str | None = None, *,
            lang: str | None = None) -> Response:
    """The JSON response for ``exc``, its words in ``lang`` (default English)."""
    status = status_of(exc)
    if isinstance(exc, PlantaError):
        message, hint = exc.message, exc.hint
        if lang and lang != DEFAULT_LANG:
            message, hint = error_words(exc, translator(lang))
            hint = hint or exc.hint
        body: dict[str, Any] = {"kind": type(exc).__name__, "status": status,
                                "message": message, "hint": hint,
                                "message_key": getattr(exc, "message_key", None)}
    else:
        body = {"kind": "InternalError", "status": 500,
                "message": "planta hit an unexpected problem answering this request.",
                "hint": "It is in the server log under this request id; please report it."}
    body["request_id"] = request_id
    if isinstance(exc, ContractError):
        body["violations"] = [_violation(v) for v in exc.violations]
    elif isinstance(exc, HTTPProblem):
        body["violations"] = exc.violations
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps({"error": body}), status_code=status,
                    media_type="application/json", headers=headers)


def accepted_lang(header: str | None) -> str:
    """The language planta speaks that an ``Accept-Language`` header prefers (English else).

    >>> accepted_lang("es-AR,es;q=0.9,en;q=0.8"), accepted_lang("fr, en;q=0.5"), accepted_lang(None)
    ('es', 'en', 'en')
    """
    best, best_q = DEFAULT_LANG, -1.0
    for part in (header or "")[:200].split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        lang = normalise(tag)
        if lang and q > best_q:
            best, best_q = lang, q
    return best


def _violation(v: Any) -> dict[str, Any]:
    data = v.to_dict() if hasattr(v, "to_dict") else dict(v)
    value = data.get("value")
    if not isinstance(value, (str, int, float, bool, type(None))):
        value = str(value)
    if isinstance(value, float) and value != value:  # NaN cannot travel in JSON
        value = "NaN"
    elif isinstance(value, float) and value in (float("inf"), float("-inf")):
        value = str(value)
    return {"record": data.get("row"), "field": data.get("field"), "rule": data.get("rule"),
            "value": value, "message": data.get("message")}


async def handle(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every exception."""
    request_id = request.scope.get("state", {}).get("request_id")
    if isinstance(exc, OverflowError):  # the last net; the routes check ranges themselves
        exc = HTTPProblem(400, "A number or a time in the request is out of range.",
                          rule="out_of_range", hint="Numbers must fit in 64 bits, times "
                          "between the years 1 and 9999.")
    status = status_of(exc)
    if status >= 500:
        log.error("request %s %s failed: %s", request.method, request.url.path, exc,
                  exc_info=not isinstance(exc, PlantaError), extra={"request_id": request_id})
    return problem(exc, request_id, lang=accepted_lang(request.headers.get("accept-language")))


async def handle_framework(request: Request, exc: Exception) -> Response:
    """The web framework's own refusals in planta's shape: no such path (404), a method the
    path does not take (405), a path parameter of the wrong type (422). Under ``/v2`` the
    Open Inference Protocol's ``{"error": "..."}``."""
    status = int(getattr(exc, "status_code", 422))
    errors = getattr(exc, "errors", None)
    if callable(errors):
        details = errors()
        where = " ".join(str(p) for p in (details[0].get("loc") or ())[:2]) if details else ""
        message = (f"The {where} {str(details[0].get('input'))[:40]!r} is not valid: "
                   f"{details[0].get('msg')}." if details else "The request is not valid.")
        rule, status = "bad_parameter", 422
    elif status == 404:
        message, rule = f"There is nothing at {request.url.path[:200]!r}.", "not_found"
    elif status == 405:
        message = f"{request.url.path[:200]!r} does not take {request.method}."
        rule = "method_not_allowed"
    else:
        message, rule = str(getattr(exc, "detail", "")) or "The request was refused.", "refused"
    headers = dict(getattr(exc, "headers", None) or {})
    if request.url.path.startswith("/v2"):
        return Response(orjson.dumps({"error": message}), status_code=status,
                        media_type="application/json", headers=headers)
    response = problem(HTTPProblem(status, message, rule=rule),
                       request.scope.get("state", {}).get("request_id"))
    response.headers.update(headers)
    return response


__all__ = ["HTTPProblem", "handle", "handle_framework", "problem", "status_of"]
