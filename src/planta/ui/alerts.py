"""The alerts page: what monitoring rules raised, and acknowledging or resolving it.

    GET  /ui/alerts[?usecase=&state=]   alerts.html   active alerts first, then recent resolved
                                                      ones; actions that failed for good
    POST /ui/alerts/{alert_id}          → 303 /ui/alerts?done={id}   acknowledge or resolve,
                                                      with a required reason (operator or above)

Both moves go through :class:`planta.store.alerts.AlertStore`, as `planta alerts ack` and
`planta alerts resolve` do, so the audit trail gets the same events under the person's name.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from planta.core.lifecycle import Role
from planta.errors import InputError, NotFoundError
from planta.server.guard import require
from planta.services.alerts import values_words
from planta.store.alerts import AlertStore
from planta.store.ids import is_id
from planta.ui.view import View

# Resolved alerts shown under the active ones.
RECENT = 50
MAX_REASON = 2000
VERBS = ("ack", "resolve")


def _store(view: View) -> AlertStore:
    return AlertStore(view.rt.ws.store, view.rt.ws.audit)


def _when(value: Any) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _values(payload: Any, lang: str) -> str:
    return values_words((payload or {}).get("values") or {}, lang)


def alerts(view: View) -> dict[str, Any]:
    """Active alerts (open, acknowledged), the latest resolved ones, failed actions."""
    usecase = (view.request.query_params.get("usecase") or "").strip()[:100] or None
    store = _store(view)
    failed = {a.alert_id: a for a in store.failed_actions()}

    def row(a: Any) -> dict[str, Any]:
        run = failed.get(a.id)
        return {"id": a.id, "usecase": a.usecase, "rule": a.rule, "condition": a.condition,
                "state": a.state, "count": a.count, "first_seen": _when(a.first_seen),
                "last_seen": _when(a.last_seen), "values": _values(a.payload, view.lang),
                "acknowledged_by": a.acknowledged_by, "acknowledged_reason":
                a.acknowledged_reason, "resolved_by": a.resolved_by,
                "resolved_reason": a.resolved_reason, "resolved_at": _when(a.resolved_at),
                "failed": {"action": run.action, "attempts": run.attempts,
                           "error": run.last_error} if run else None}

    done_id = (view.request.query_params.get("done") or "").strip()[:40]
    active = [row(a) for a in store.list(usecase=usecase, state="active", limit=500)]
    resolved = [row(a) for a in store.list(usecase=usecase, state="resolved", limit=RECENT)]
    done = next((r for r in active + resolved if r["id"] == done_id), None)
    states = {"open": view.t("alerts.state_open"),
              "acknowledged": view.t("alerts.state_acknowledged"),
              "resolved": view.t("alerts.state_resolved")}
    for r in active + resolved:
        r["state_words"] = states[r["state"]]
    if done is not None and done["state"] != "open":
        done["message"] = (view.t("alerts.done_acknowledged", rule=done["rule"])
                           if done["state"] == "acknowledged"
                           else view.t("alerts.done_resolved", rule=done["rule"]))
    else:
        done = None
    return {"active": active, "resolved": resolved, "usecase": usecase,
            "usecases": view.rt.ws.project.usecase_names, "can_act": view.can(Role.OPERATOR),
            "done": done, "error": None, "max_reason": MAX_REASON}


async def act(view: View, alert_id: str) -> Response:
    """Acknowledge or resolve one alert; the reason is required and goes to the audit trail."""
    principal = require(view.request.scope["state"], Role.OPERATOR, view.t("alerts.doing"))
    form = await view.request.form(max_files=0, max_fields=4)
    verb = str(form.get("verb") or "")
    reason = str(form.get("reason") or "").strip()[:MAX_REASON]
    if not is_id(alert_id):
        raise NotFoundError(view.t("alerts.unknown", id=alert_id[:40]))
    if verb not in VERBS:
        raise InputError(view.t("alerts.bad_verb"))
    if not reason:
        raise InputError(view.t("error.reason_missing"))
    store = _store(view)
    move = store.acknowledge if verb == "ack" else store.resolve
    await run_in_threadpool(lambda: move(alert_id.upper(), principal.name, reason))
    return RedirectResponse(f"/ui/alerts?done={alert_id.upper()}", status_code=303)


def add_routes(router: Any, action: Any) -> None:
    """The POST route of this page (GET comes from :data:`planta.ui.pages.PAGES`)."""
    router.add_api_route("/ui/alerts/{alert_id}", action(act), methods=["POST"])


__all__ = ["act", "add_routes", "alerts"]
