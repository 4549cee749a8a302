"""A version's own page and its approval moves: ``/ui/usecases/{name}/versions/{version}``.

The page shows the version in depth (metrics in words, confusion matrix or residuals, the
threshold slider, the objective gate's verdict) beside the production version (both holdout
metrics with their intervals, the difference in words, and whether they were measured on the
same records), and one form for the moves the lifecycle allows from the version's state:

    candidate            Approve (production), Reject, Canary (with a share), Shadow
    rejected             Approve as a recorded exception
    canary / shadow      Approve (production), Stop (back to candidate)

Every move needs a reason and a confirmation (the browser asks before the form is sent) and
goes through the same registry calls as :func:`planta.server.routes.versions.move`: the same
lifecycle checks (roles, four-eyes from the project's settings) and the same audit events.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from planta.core.lifecycle import RULES, Action, Role, State
from planta.errors import InputError, NotFoundError, PlantaError
from planta.server.errors import status_of
from planta.server.guard import require
from planta.ui.model_detail import comparison, detail_context
from planta.ui.pages import model_context, usecase_name
from planta.ui.view import View

# The form's buttons: name → (state it moves to, lifecycle action).
MOVES: dict[str, tuple[State, Action]] = {
    "promote": (State.PRODUCTION, Action.PROMOTE),
    "decline": (State.REJECTED, Action.DECLINE),
    "canary": (State.CANARY, Action.CANARY),
    "shadow": (State.SHADOW, Action.SHADOW),
    "stop": (State.CANDIDATE, Action.STOP),
}
DEFAULT_SHARE_PCT = 10
MAX_REASON = 2000
# Comparisons worked out for a page view, by (version bundle, production bundle): bundles are
# immutable, so an entry never goes stale.
_PAIRED: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_PAIRED_LOCK = threading.Lock()
_PAIRED_SIZE = 32
# Resamples for a comparison worked out while the page waits (`planta retrain` keeps 2,000).
PAGE_RESAMPLES = 1000


def allowed_moves(state: str) -> list[str]:
    """The form's buttons for a version in ``state``, in :data:`MOVES` order."""
    found = {r.action.value for r in RULES if r.from_state is not None
             and r.from_state.value == state and r.needs is not Role.SYSTEM}
    return [m for m, (_, action) in MOVES.items() if action.value in found]


def version_page(view: View, name: str, version: str) -> dict[str, Any]:
    """The loader of ``version.html``."""
    ctx = model_context(view, name, version)
    mv = ctx["mv"]
    if mv is None:
        raise NotFoundError(view.t("error.no_version", name=name, version=version[:30]))
    ctx.update(detail_context(view, name, mv))
    from planta.ui.model_detail import bundle_metrics

    ctx["comparison"] = comparison(view, name, mv, bundle_metrics(view, mv))
    ctx["paired"] = paired(view, name, mv)
    ctx["moves"] = allowed_moves(mv.state)
    ctx["share_pct"] = DEFAULT_SHARE_PCT
    ctx["four_eyes"] = view.rt.ws.project.settings.four_eyes
    ctx["own_version"] = view.principal is not None and view.principal.name == mv.trained_by
    ctx["canary_share"] = (view.rt.ws.registry.canary_share(name)
                           if mv.state == State.CANARY.value else None)
    moved = view.request.query_params.get("moved")
    ctx["moved"] = moved if moved in MOVES else None  # only the redirect's own words
    return ctx


def paired(view: View, name: str, mv: Any) -> dict[str, Any] | None:
    """The version against production row by row on the same held-back records: the report
    kept by `planta retrain`, else worked out now (and remembered) on the version's own
    held-back records. None when there is no other production version."""
    ws = view.rt.ws
    production = ws.registry.aliases(name).get("production")
    if production is None or production == mv.version:
        return None
    from planta.services.retrain import compare_versions, stored_comparison

    try:
        doc = stored_comparison(ws, name, mv.version, production)
        stored = doc is not None
        if doc is None:
            key = (mv.bundle_digest, ws.registry.get_model(name, production).bundle_digest)
            with _PAIRED_LOCK:
                doc = _PAIRED.get(key)
            if doc is None:
                doc = compare_versions(ws, name, mv.version, production,
                                       n_resamples=PAGE_RESAMPLES)
                with _PAIRED_LOCK:
                    _PAIRED[key] = doc
                    while len(_PAIRED) > _PAIRED_SIZE:
                        _PAIRED.popitem(last=False)
    except PlantaError as exc:
        return {"error": view.t("paired.error", message=exc.message)}
    return paired_words(view.t, doc) | {"stored": stored, "production": production}


def paired_words(t: Callable[..., str], doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored or fresh comparison report in the page's language."""
    from planta.core.compare import format_p

    report = doc.get("comparison") or {}
    counts = report.get("counts") or {}
    rows = doc.get("rows") or {}
    verdict = report.get("verdict") or "unclear"
    p = report.get("p_value")
    luck = t(f"paired.luck_{verdict}", p=format_p(float(p)) if p is not None else "—")
    n = rows.get("n", report.get("n_rows", 0))
    if report.get("task") == "binary":
        caught = int(counts.get("caught_a", 0)) - int(counts.get("caught_b", 0))
        alarms = int(counts.get("false_alarms_a", 0)) - int(counts.get("false_alarms_b", 0))
        headline = t("paired.sentence", n=n, luck=luck,
                     caught=t(_delta_key("caught", caught), count=abs(caught)),
                     alarms=t(_delta_key("alarms", alarms), count=abs(alarms)))
    elif report.get("task") == "multiclass":
        headline = t("paired.right", n=n, a=counts.get("right_a", 0),
                     b=counts.get("right_b", 0), luck=luck)
    else:
        headline = t("paired.values", n=n, luck=luck)
    lines = [headline]
    diff = report.get("difference") or {}
    if diff.get("lower") is not None and diff.get("upper") is not None:
        lines.append(t("paired.metric", metric=t(f"metric_name.{report.get('metric')}"),
                       a=f"{diff['a']:.3f}", b=f"{diff['b']:.3f}",
                       low=f"{diff['lower']:+.3f}", high=f"{diff['upper']:+.3f}"))
    test = report.get("test") or {}
    if test.get("name") == "mcnemar" and test.get("p_value") is not None:
        lines.append(t("paired.disagree", a=test.get("only_a_right"), b=test.get("only_b_right"),
                       p=format_p(float(test["p_value"]))))
    if rows.get("seen_by_champion"):
        lines.append(t("paired.seen", count=rows["seen_by_champion"]))
    if rows.get("dropped"):
        lines.append(t("paired.dropped", count=rows["dropped"]))
    return {"verdict": verdict, "title": t(f"paired.verdict_{verdict}"), "lines": lines,
            "p_line": t("paired.p_line"), "n": n, "source": rows.get("source")}


def _delta_key(what: str, delta: int) -> str:
    return f"paired.{what}_" + ("same" if delta == 0 else "more" if delta > 0 else "fewer")


def _share(view: View, raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        pct = float(raw.strip().replace(",", "."))
    except ValueError:
        pct = -1.0
    if not 0 < pct < 100:
        raise InputError(view.t("approve.share_invalid"))
    return pct / 100


async def move(view: View, name: str, version: int) -> Response:
    """Make the move the pressed button names (approver; the lifecycle checks the rest)."""
    form = {k: v for k, v in (await view.request.form()).items() if isinstance(v, str)}
    action = form.get("action", "")
    if action not in MOVES:
        raise InputError(view.t("approve.unknown_move"))
    # As the API: refuse a lower role before reading the version's state.
    principal = require(view.request.scope["state"], Role.APPROVER, f"moving a version "
                        f"({action})")
    usecase_name(view, name)
    rt = view.rt
    to_state, act = MOVES[action]

    def run() -> None:
        reason = (form.get("reason") or "").strip()[:MAX_REASON]
        if not reason:
            raise InputError(view.t("error.reason_missing"))
        share = _share(view, form.get("share")) if act is Action.CANARY else None
        # The same calls, in the same order, as planta.server.routes.versions.move.
        rt.ws.registry.move(name, version, to_state, action=act, actor=principal.name,
                            role=principal.role, reason=reason,
                            exception=form.get("exception") == "yes",
                            four_eyes=rt.ws.project.settings.four_eyes)
        if act is Action.CANARY:
            rt.ws.registry.set_canary_share(name, share if share is not None else 0.1,
                                            actor=principal.name)
        rt.hub.refresh()

    try:
        await run_in_threadpool(run)
    except PlantaError as exc:  # the lifecycle said no: the page again, with why
        ctx = await run_in_threadpool(version_page, view, name, str(version))
        ctx["move_error"] = {"message": exc.message, "hint": exc.hint}
        return view.render("version.html", ctx, status=status_of(exc))
    return RedirectResponse(f"/ui/usecases/{name}/versions/{version}?moved={action}",
                            status_code=303)


__all__ = ["MOVES", "allowed_moves", "move", "paired", "paired_words", "version_page"]
