"""`planta alerts …`: alerts raised by monitoring rules, and what people do about them.

    planta alerts [--usecase U] [--state open|acknowledged|resolved|active|all]
    planta alerts ack ID --reason "checking the torque sensor"
    planta alerts resolve ID --reason "sensor replaced"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr

if TYPE_CHECKING:
    from planta.store.alerts import Alert

alerts_app = typer.Typer(help="List monitoring alerts; acknowledge or resolve them.")
_REASON = typer.Option(..., "--reason", help="Why (kept in the audit trail).")


@alerts_app.callback(invoke_without_command=True)
@handle_errors
def alerts(ctx: typer.Context,
           usecase: str = typer.Option(None, "--usecase", help="Only this use case."),
           state: str = typer.Option("active", "--state", help="open, acknowledged, resolved, "
                                     "active (open or acknowledged) or all."),
           limit: int = typer.Option(50, "--limit", min=1, help="How many, newest first."),
           as_json: bool = JSON_OPTION) -> None:
    """Alerts, newest first (by default the active ones); `ack` and `resolve` act on one."""
    if ctx.invoked_subcommand is not None:
        return
    from planta.services.workspace import Workspace
    from planta.store.alerts import AlertStore

    ws = Workspace.open()
    try:
        store = AlertStore(ws.store, ws.audit)
        found = store.list(usecase=usecase, state=None if state == "all" else state,
                           limit=limit)
        failed = {a.alert_id: a for a in store.failed_actions()}
        retrying = [a for a in store.pending_actions(usecase=usecase) if a.last_error]
    finally:
        ws.close()
    if as_json:
        print_json([a.to_dict() | {"failed_action": failed[a.id].to_dict()
                                   if a.id in failed else None} for a in found])
        return
    if not found:
        console.print(tr("cli.alerts.none") if state in ("active", "all") and usecase is None
                      else tr("cli.alerts.none_match"))
        return
    shown = table(tr("cli.alerts.title"),
                  [tr(f"cli.alerts.col.{c}") for c in ("id", "usecase", "rule", "state",
                                                       "times", "last_seen", "details")],
                  [(a.id, a.usecase, a.rule, tr(f"alerts.state_{a.state}") if a.state in _STATES else a.state, a.count,
                    f"{a.last_seen:%m-%d %H:%M}", _who(a)) for a in found])
    shown.columns[0].no_wrap = True  # the id is what `ack` and `resolve` need, whole
    console.print(shown)
    for a in found:
        if a.id in failed:
            run = failed[a.id]
            console.print("[red]" + escape(tr("cli.alerts.failed", id=a.id, action=run.action,
                                              attempts=run.attempts,
                                              error=run.last_error or "")) + "[/]",
                          soft_wrap=True)
    for run in retrying:
        console.print("[yellow]" + escape(tr(
            "cli.alerts.retrying", id=run.alert_id, action=run.action, event=run.event,
            at=f"{run.next_attempt_at:%H:%M:%S}", attempts=run.attempts,
            most=run.max_attempts, error=run.last_error or "")) + "[/]", soft_wrap=True)


_STATES = frozenset({"open", "acknowledged", "resolved"})  # said by the catalogue


def _who(alert: Alert) -> str:
    if alert.state == "resolved":
        return f"{alert.resolved_by}: {alert.resolved_reason}"
    if alert.state == "acknowledged":
        return f"{alert.acknowledged_by}: {alert.acknowledged_reason}"
    from planta.i18n import env_lang
    from planta.services.alerts import values_words

    return values_words(alert.payload.get("values") or {}, env_lang())


def _act(verb: str, alert_id: str, reason: str, as_json: bool) -> None:
    from planta.services.workspace import Workspace
    from planta.store.alerts import AlertStore

    ws = Workspace.open()
    try:
        store = AlertStore(ws.store, ws.audit)
        alert = (store.acknowledge if verb == "ack" else store.resolve)(alert_id, ws.actor,
                                                                        reason)
    finally:
        ws.close()
    if as_json:
        data: dict[str, Any] = {"ok": True} | alert.to_dict()
        print_json(data)
        return
    console.print(tr("cli.alerts.acked" if verb == "ack" else "cli.alerts.resolved_by",
                     id=alert.id, rule=alert.rule, usecase=alert.usecase, actor=ws.actor),
                  soft_wrap=True)


@alerts_app.command("ack")
@handle_errors
def ack(alert_id: str = typer.Argument(..., metavar="ID", help="Alert id (from `planta "
                                       "alerts`)."),
        reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Acknowledge an open alert: someone is on it (it stays active until resolved)."""
    _act("ack", alert_id, reason, as_json)


@alerts_app.command("resolve")
@handle_errors
def resolve(alert_id: str = typer.Argument(..., metavar="ID", help="Alert id (from `planta "
                                           "alerts`)."),
            reason: str = _REASON, as_json: bool = JSON_OPTION) -> None:
    """Resolve an alert by hand. If its rule is still true it opens again after its windows."""
    _act("resolve", alert_id, reason, as_json)


__all__ = ["ack", "alerts", "alerts_app", "resolve"]
