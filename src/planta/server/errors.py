"""planta errors as HTTP answers: one JSON shape for every refusal, never a traceback.

    {"error": {"kind": "ContractError", "status": 422, "message": "...", "hint": "...",
               "message_key": "...", "message_params": {...}, "request_id": "...",
               "violations": [{"record": 3, "field": "torque_nm",
               "rule": "above_max", "value": 912.0, "message": "..."}]}}

``message_key`` is the message's key in planta's catalogue (``planta/locale/*.json``; null for
a message that has none), and ``message_params`` its values (the ``{placeholders}``), so that
a client can say it in its own words; ``rule`` likewise (``rule.<rule>``). ``message`` and
``hint`` are in the request's ``Accept-Language`` when planta speaks it (English or Spanish),
else in the server's language (``PLANTA_LANG`` or ``[ui] lang``; English by default).

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
from planta.i18n import DEFAULT_LANG, catalogue, normalise, say, translator

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


def keyed_problem(status: int, key: str, /, *, rule: str, **params: Any) -> HTTPProblem:
    """An :class:`HTTPProblem` whose words come from the catalogue (``key``, and ``key.hint``
    when it has one), so that :func:`problem` says it in the caller's language.

    >>> keyed_problem(404, "http.not_found", rule="not_found", path="'/x'").message
    "There is nothing at '/x'."
    """
    t = translator(DEFAULT_LANG)
    hint_key = f"{key}.hint" if f"{key}.hint" in catalogue(DEFAULT_LANG) else None
    error = HTTPProblem(status, t(key, **params), rule=rule,
                        hint=t(hint_key, **params) if hint_key else None)
    error.message_key = key  # type: ignore[attr-defined]
    error.hint_key = hint_key  # type: ignore[attr-defined]
    error.params = dict(params)  # type: ignore[attr-defined]
    return error


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
    t = translator(lang or DEFAULT_LANG)
    if isinstance(exc, PlantaError):
        message, hint = exc.message, exc.hint
        key = getattr(exc, "message_key", None)
        # A key the catalogue lacks (an edge error from a newer device) keeps its English.
        if lang and lang != DEFAULT_LANG and (key is None or key in catalogue(DEFAULT_LANG)):
            message, hint = error_words(exc, t)
            hint = hint or exc.hint
        body: dict[str, Any] = {
            "kind": type(exc).__name__, "status": status, "message": message, "hint": hint,
            "message_key": key, "message_params": {
                k: say(v, t) for k, v in getattr(exc, "params", {}).items()} if key else None}
    else:
        body = {"kind": "InternalError", "status": 500, "message": t("http.internal"),
                "hint": t("http.internal.hint"), "message_key": "http.internal",
                "message_params": {}}
    body["request_id"] = request_id
    if isinstance(exc, ContractError):
        body["violations"] = [_violation(v) for v in exc.violations]
    elif isinstance(exc, HTTPProblem):
        # Its own one-line violation repeats the message: in the same language.
        body["violations"] = [v | {"message": body["message"]}
                              if v.get("message") == exc.message else v for v in exc.violations]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps({"error": body}), status_code=status,
                    media_type="application/json", headers=headers)


def accepted_lang(header: str | None, default: str = DEFAULT_LANG) -> str:
    """The language planta speaks that an ``Accept-Language`` header prefers (``default``
    when it names none planta speaks, or is absent).

    >>> accepted_lang("es-AR,es;q=0.9,en;q=0.8"), accepted_lang("fr, en;q=0.5"), accepted_lang(None)
    ('es', 'en', 'en')
    >>> accepted_lang(None, "es"), accepted_lang("fr", "es")
    ('es', 'es')
    """
    best, best_q = default, -1.0
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
        exc = keyed_problem(400, "http.out_of_range", rule="out_of_range")
    status = status_of(exc)
    if status >= 500:
        log.error("request %s %s failed: %s", request.method, request.url.path, exc,
                  exc_info=not isinstance(exc, PlantaError), extra={"request_id": request_id})
    return problem(exc, request_id, lang=request_lang(request))


def request_lang(request: Request) -> str:
    """The language of an answer's words: the request's ``Accept-Language`` when planta
    speaks it, else the server's own (``PLANTA_LANG`` over ``[ui] lang``)."""
    runtime = getattr(request.app.state, "runtime", None) if "app" in request.scope else None
    try:
        own = normalise(runtime.ws.project.settings.lang) or DEFAULT_LANG  # type: ignore[union-attr]
    except AttributeError:
        own = DEFAULT_LANG
    return accepted_lang(request.headers.get("accept-language"), own)


async def handle_framework(request: Request, exc: Exception) -> Response:
    """The web framework's own refusals in planta's shape: no such path (404), a method the
    path does not take (405), a path parameter of the wrong type (422). Under ``/v2`` the
    Open Inference Protocol's ``{"error": "..."}``."""
    status = int(getattr(exc, "status_code", 422))
    errors = getattr(exc, "errors", None)
    if callable(errors):
        details = errors()
        where = " ".join(str(p) for p in (details[0].get("loc") or ())[:2]) if details else ""
        refusal = (keyed_problem(422, "http.bad_parameter", rule="bad_parameter", where=where,
                                 value=repr(str(details[0].get("input"))[:40]),
                                 reason=str(details[0].get("msg"))) if details else
                   keyed_problem(422, "http.bad_request", rule="bad_parameter"))
    elif status == 404:
        refusal = keyed_problem(404, "http.not_found", rule="not_found",
                                path=repr(request.url.path[:200]))
    elif status == 405:
        refusal = keyed_problem(405, "http.method_not_allowed", rule="method_not_allowed",
                                path=repr(request.url.path[:200]), method=request.method)
    else:
        detail = str(getattr(exc, "detail", ""))
        refusal = HTTPProblem(status, detail, rule="refused") if detail else keyed_problem(
            status, "http.refused", rule="refused")
    headers = dict(getattr(exc, "headers", None) or {})
    if request.url.path.startswith("/v2"):
        return Response(orjson.dumps({"error": refusal.message}), status_code=refusal.status,
                        media_type="application/json", headers=headers)
    response = problem(refusal, request.scope.get("state", {}).get("request_id"),
                       lang=request_lang(request))
    response.headers.update(headers)
    return response


__all__ = ["HTTPProblem", "accepted_lang", "handle", "handle_framework", "keyed_problem",
           "problem", "request_lang", "status_of"]
