"""The UI's forms that do something: promote, roll back, score, sign in and out.

Each action goes through the same calls as the API route that does the same thing
(:mod:`planta.server.routes.versions`, :mod:`planta.server.routes.v1`), so it is checked by the
same lifecycle and roles and leaves the same audit events. Forms POST to this server; the
guard refuses a cross-site Origin on every POST, and the token travels in the Authorization
header or a SameSite=Strict cookie, so a page elsewhere cannot make a browser post them.

After a move the browser is sent back to the model page (303, so a reload does not repeat the
move); a refusal is drawn on the page in plain words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from planta.core.lifecycle import Action, Role, State
from planta.errors import ContractError, InputError, PlantaError
from planta.server.errors import status_of
from planta.server.guard import require
from planta.services.predict import Scorer
from planta.ui.pages import model_context, score_fields, usecase_name
from planta.ui.pages import score as score_context
from planta.ui.view import View
from planta.ui.words import reason_words

TOKEN_COOKIE = "planta_token"  # nosec B105 - the cookie's name, not a secret
# The prediction log's channel for records scored here (planta.store.predictions.CHANNELS).
CHANNEL = "ui"
# Longest reason and token a form may send; the guard's body limit bounds the rest.
MAX_REASON = 2000
MAX_TOKEN = 512


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _reason(view: View, form: Mapping[str, str]) -> str:
    reason = (form.get("reason") or "").strip()[:MAX_REASON]
    if not reason:
        raise InputError(view.t("error.reason_missing"))
    return reason


async def promote(view: View, name: str, version: int) -> Response:
    """Promote ``version`` of ``name`` to production (approver; an exception if the gate
    rejected it and the box is ticked)."""
    principal = require(view.request.scope["state"], Role.VIEWER, "moving versions")
    usecase_name(view, name)
    form = await _form(view.request)
    exception = form.get("exception") == "yes"
    rt = view.rt

    def run() -> None:
        reason = _reason(view, form)
        rt.ws.registry.move(name, version, State.PRODUCTION, action=Action.PROMOTE,
                            actor=principal.name, role=principal.role, reason=reason,
                            exception=exception, four_eyes=rt.ws.project.settings.four_eyes)
        rt.hub.refresh()

    return await _moved(view, name, run, "promote")


async def rollback(view: View, name: str) -> Response:
    """Put the previous production version of ``name`` back (approver)."""
    principal = require(view.request.scope["state"], Role.VIEWER, "rolling back")
    usecase_name(view, name)
    form = await _form(view.request)
    rt = view.rt

    def run() -> None:
        reason = _reason(view, form)
        rt.ws.registry.rollback(name, actor=principal.name, role=principal.role, reason=reason)
        rt.hub.refresh()

    return await _moved(view, name, run, "rollback")


async def _moved(view: View, name: str, run: Any, done: str) -> Response:
    """Make the move; back to the model page (303), or the page again with the refusal."""
    try:
        await run_in_threadpool(run)
    except PlantaError as exc:  # the lifecycle said no: show why beside the versions
        ctx = await run_in_threadpool(model_context, view, name)
        ctx["move_error"] = {"message": exc.message, "hint": exc.hint}
        return view.render("usecase.html", ctx, status=status_of(exc))
    return RedirectResponse(f"/ui/usecases/{name}?done={done}", status_code=303)


def _record(fields: list[Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The form's strings as the values the contract expects; what cannot be read is passed on
    as it was typed, so the contract names the problem next to the field."""
    record: dict[str, Any] = {}
    for f in fields:
        raw = (form.get(f.name) or "").strip()
        if raw == "":
            record[f.name] = None
        elif f.kind in ("number", "integer"):
            try:
                # A decimal comma is how half the plants write numbers.
                number = float(raw.replace(",", "."))
                if not math.isfinite(number):
                    record[f.name] = raw
                elif f.kind == "integer" and number.is_integer():
                    record[f.name] = int(number)
                else:
                    record[f.name] = number  # a fraction in an integer field: not_integer
            except ValueError:
                record[f.name] = raw
        elif f.kind == "boolean":
            record[f.name] = {"true": True, "false": False}.get(raw.lower(), raw)
        else:
            record[f.name] = raw
    return record


def live_scorer(view: View, name: str) -> Scorer:
    """The version that answers live traffic (production, else the canary): the score page and
    the what-if show its contract. Callers check ``score_context(...)["live"]`` first."""
    route = view.rt.hub.route(name)
    scorer = route.production or route.canary
    assert scorer is not None  # the score context's "live" says so
    return scorer


async def score(view: View, name: str) -> Response:
    """Score the form's record with the live model and show the prediction with its reasons."""
    principal = require(view.request.scope["state"], Role.OPERATOR, "scoring")
    ctx = await run_in_threadpool(score_context, view, name)
    if not ctx["live"]:
        return view.render("score.html", ctx, status=409)
    form = await _form(view.request)
    scorer = live_scorer(view, name)
    fields = list(scorer.contract.inputs)
    labels = {f.name: f for f in fields}
    record = _record(fields, form)
    ctx["fields"] = score_fields(scorer.contract, form)
    try:
        answer = await view.rt.predict(name, [record], principal=principal, channel=CHANNEL,
                                       explain=True,
                                       request_id=view.request.scope["state"].get("request_id"))
    except ContractError as exc:
        problems: dict[str, list[str]] = {}
        for v in exc.violations:
            f = labels.get(v.field) if v.field else None
            text = view.t(f"rule.{v.rule}", value=_shown(v.value),
                          low=_bound(f.lower_bound if f else None),
                          high=_bound(f.upper_bound if f else None))
            problems.setdefault(v.field or "", []).append(
                text if text != f"rule.{v.rule}" else v.message)
        ctx.update(problems=problems, problem=view.t("score.refused"))
        return view.render("score.html", ctx, status=422)
    out = answer.records()[0]
    kind = scorer.task.value
    reasons = [reason_words(r, view.t, label=labels[r["field"]].display
                            if r.get("field") in labels else str(r.get("field")),
                            unit=labels[r["field"]].unit if r.get("field") in labels else None,
                            kind=kind)
               for r in out.get("reasons") or ()]
    probability = out.get("probability")
    prediction = out["prediction"]
    if kind == "binary" and scorer.classes:
        # "Machine failure: yes", not "0" or "1": the positive class is the last one.
        is_positive = str(prediction) == str(scorer.classes[-1])
        prediction = view.t("score.binary", target=ctx["target"],
                            answer=view.t("score.yes" if is_positive else "score.no"))
    else:
        prediction = view.t("score.other", value=_shown(prediction))
    ctx["result"] = {
        "prediction": prediction, "version": out["model_version"],
        "prediction_id": out["prediction_id"], "reasons": reasons, "route": answer.route,
        "risk": round(probability * 100) if isinstance(probability, float) else None,
        "flagged": bool(out.get("flagged")),
    }
    return view.render("score.html", ctx)


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.6g}" if isinstance(value, float) else str(value)[:60]


def _bound(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


async def login(view: View) -> Response:
    """Keep the token in an HttpOnly, SameSite=Strict cookie (Secure over TLS), if valid."""
    form = await _form(view.request)
    secret = (form.get("token") or "").strip()[:MAX_TOKEN]
    tokens = view.rt.tokens
    token = tokens.verify(secret) if secret and tokens is not None else None
    if token is None:
        return view.render("login.html", {"error": view.t("login.invalid")}, status=401)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(TOKEN_COOKIE, secret, httponly=True, samesite="strict",
                        secure=view.request.url.scheme == "https", path="/")
    return response


async def logout(view: View) -> Response:
    """Forget the token cookie."""
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=view.request.url.scheme == "https")
    return response


__all__ = ["TOKEN_COOKIE", "login", "logout", "promote", "rollback", "score"]
