"""Alerts, the windows-in-a-row behind each rule, and the outbox of alert actions.

    window ─► apply_window(rule, evaluation) ──one write transaction──┐
                 rule_states: true/false streak                       │
                 alerts: open │ repeat (count, last_seen) │ resolve   ├─ commit, then act
                 alert_actions: one pending row per action            │
                 audit_events: alert_open / alert_resolve             ┘
    deliver ─► claim(action) ─► run it ─► action_done │ action_failed (retry with backoff)

    alert states:  open ──acknowledge──► acknowledged ──resolve──► resolved
                     └──────────────resolve (by a person, or rule false N windows)──┘

One alert per (use case, rule) is active (open or acknowledged) at a time: the ``open_key``
column holds "usecase/rule" while it is active and null after, and is unique, so no engine can
store a second one. A rule that fires again raises the active alert's ``count``.

The alert, its actions and its audit event commit together, before anything is sent, so a
kill -9 after the commit loses nothing: the pending actions are delivered by the next run.
An action is claimed by pushing its ``next_attempt_at`` past a lease, so two processes never
send it at once, and a process that dies mid-send leaves it to be retried (at least once).

>>> from planta.store.metadata import open_store
>>> from planta.core.rules import parse_rule
>>> alerts = AlertStore(open_store("sqlite://"))
>>> rule = parse_rule("rejected_rate > 0.05", name="rejections", actions=("log",))
>>> out = alerts.apply_window("failure", rule, rule.evaluate({"rejected_rate": 0.2}), "w1")
>>> out.decision, out.alert.state, out.alert.count, len(out.actions)
('open', 'open', 1, 1)
>>> alerts.apply_window("failure", rule, rule.evaluate({"rejected_rate": 0.3}), "w2").alert.count
2
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, insert, select, update

from planta.core.rules import Evaluation, Rule, Streak, advance
from planta.errors import InputError, NotFoundError, StateError, keyed, phrase
from planta.store.audit import AuditLog
from planta.store.ids import is_id, new_id
from planta.store.metadata import (
    ALERT_STATES,
    Store,
    alert_actions,
    alerts,
    json_ready,
    rule_states,
    utc_now,
)

ACTIVE = ("open", "acknowledged")
MAX_ACTION_ATTEMPTS = 5
# Retry n of an action waits ACTION_BACKOFF_S * 2**(n-1), at most ACTION_MAX_BACKOFF_S.
ACTION_BACKOFF_S = 10.0
ACTION_MAX_BACKOFF_S = 600.0
# How long a claimed action is its sender's before another process may retry it (a retrain
# runs inside its claim, so this is long).
ACTION_LEASE_S = 1800.0
SYSTEM_ACTOR = "planta-monitor"


def _as_dict(row: Any) -> dict[str, Any]:
    """A stored row's dataclass as JSON-ready data (times as ISO text)."""
    out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.__dict__.items()}
    out["payload"] = dict(row.payload)
    return out


@dataclass(frozen=True)
class Alert:
    """One alert as stored."""

    id: str
    usecase: str
    rule: str
    condition: str
    state: str
    first_seen: datetime
    last_seen: datetime
    count: int
    payload: Mapping[str, Any] = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_reason: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolved_reason: str | None = None

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True)
class ActionRun:
    """One action of one alert event (opened or resolved) in the outbox."""

    id: str
    alert_id: str
    usecase: str
    rule: str
    action: str
    event: str
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    created_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    finished_at: datetime | None = None
    result: Any = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)


@dataclass(frozen=True)
class WindowOutcome:
    """What one window did to one rule: the decision of :func:`planta.core.rules.advance`,
    the alert it touched (if any) and the actions it queued."""

    rule: str
    decision: str
    evaluation: Evaluation
    streak: Streak
    alert: Alert | None = None
    actions: tuple[ActionRun, ...] = ()
    repeated_window: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "decision": self.decision,
                "evaluation": self.evaluation.to_dict(),
                "true_windows": self.streak.true_windows,
                "false_windows": self.streak.false_windows,
                "alert": self.alert.to_dict() if self.alert else None,
                "actions": [a.action for a in self.actions],
                "repeated_window": self.repeated_window}


def _alert(row: Any) -> Alert:
    return Alert(**{k: row._mapping[k] for k in Alert.__dataclass_fields__})


def _action(row: Any) -> ActionRun:
    return ActionRun(**{k: row._mapping[k] for k in ActionRun.__dataclass_fields__})


def _open_key(usecase: str, rule: str) -> str:
    return f"{usecase}/{rule}"


def action_backoff_s(attempts: int) -> float:
    """Seconds before retry number ``attempts`` of a failed action.

    >>> [action_backoff_s(n) for n in (1, 2, 3)]
    [10.0, 20.0, 40.0]
    """
    return float(min(ACTION_BACKOFF_S * 2 ** max(attempts - 1, 0), ACTION_MAX_BACKOFF_S))


class AlertStore:
    """Alerts, rule streaks and alert actions of one store (with its audit trail)."""

    def __init__(self, store: Store, audit: AuditLog | None = None) -> None:
        self.store = store
        self.audit = audit or AuditLog(store)

    # -- windows -------------------------------------------------------------------------
    def apply_window(self, usecase: str, rule: Rule, evaluation: Evaluation,
                     window: str | None = None, *, now: datetime | None = None,
                     context: Mapping[str, Any] | None = None) -> WindowOutcome:
        """Record one window's evaluation of ``rule`` and open, repeat or resolve its alert.

        ``window`` names the window (its end time, say); evaluating the same window twice
        counts it once. ``context`` goes into the alert's payload (model version, window).
        """
        now = now or utc_now()
        with self.store.write() as conn:
            state = conn.execute(select(rule_states).where(
                rule_states.c.usecase == usecase, rule_states.c.rule == rule.name)).first()
            streak = Streak(state.true_streak, state.false_streak) if state else Streak()
            active = self._active(conn, usecase, rule.name)
            if state is not None and window is not None and state.last_window == window:
                return WindowOutcome(rule.name, "none", evaluation, streak, active,
                                     repeated_window=True)
            new, decision = advance(streak, evaluation.result, rule,
                                    alert_active=active is not None)
            result = {True: "true", False: "false", None: "unknown"}[evaluation.result]
            detail = json_ready(evaluation.to_dict())
            values = dict(usecase=usecase, rule=rule.name, true_streak=new.true_windows,
                          false_streak=new.false_windows, last_result=result,
                          last_window=window, evaluated_at=now, detail=detail)
            if state is None:
                conn.execute(insert(rule_states).values(**values))
            else:
                conn.execute(update(rule_states).where(
                    rule_states.c.usecase == usecase, rule_states.c.rule == rule.name)
                    .values(**values))
                if result == "unknown" and state.last_result != "unknown":
                    # A rule that stops being evaluable is a change someone must see.
                    self.audit.append("rule_unevaluable", f"usecase/{usecase}/rule/{rule.name}",
                                      SYSTEM_ACTOR, {"message": evaluation.message},
                                      connection=conn)
            payload = json_ready({"when": rule.when, "values": evaluation.values,
                                  "windows": new.true_windows, "window": window,
                                  **(context or {})})
            alert, queued = active, cast(tuple[ActionRun, ...], ())
            if decision == "open":
                alert = self._open(conn, usecase, rule, payload, now)
                queued = self._queue(conn, alert, rule.actions, "opened", payload, now)
            elif decision == "repeat" and active is not None:
                conn.execute(update(alerts).where(alerts.c.id == active.id).values(
                    count=alerts.c.count + 1, last_seen=now, payload=payload))
                alert = self._get(conn, active.id)
            elif decision == "resolve" and active is not None:
                alert = self._resolve(conn, active, SYSTEM_ACTOR,
                                      f"the rule was false for {new.false_windows} windows in "
                                      "a row", now)
                # Retraining again because a problem went away would be wrong.
                notify = tuple(a for a in rule.actions if a != "retrain")
                queued = self._queue(conn, alert, notify, "resolved", payload, now)
            return WindowOutcome(rule.name, decision, evaluation, new, alert, queued)

    def _active(self, conn: Connection, usecase: str, rule: str) -> Alert | None:
        row = conn.execute(select(alerts).where(
            alerts.c.open_key == _open_key(usecase, rule))).first()
        return _alert(row) if row else None

    def _open(self, conn: Connection, usecase: str, rule: Rule, payload: Mapping[str, Any],
              now: datetime) -> Alert:
        alert_id = new_id()
        conn.execute(insert(alerts).values(
            id=alert_id, usecase=usecase, rule=rule.name, condition=rule.when, state="open",
            open_key=_open_key(usecase, rule.name), first_seen=now, last_seen=now, count=1,
            payload=payload))
        self.audit.append("alert_open", f"usecase/{usecase}/alert/{alert_id}", SYSTEM_ACTOR,
                          {"rule": rule.name, "when": rule.when, "values": payload.get("values"),
                           "actions": list(rule.actions)}, connection=conn)
        return self._get(conn, alert_id)

    def _queue(self, conn: Connection, alert: Alert, actions: Sequence[str], event: str,
               payload: Mapping[str, Any], now: datetime) -> tuple[ActionRun, ...]:
        runs = []
        for action in actions:
            run_id = new_id()
            conn.execute(insert(alert_actions).values(
                id=run_id, alert_id=alert.id, usecase=alert.usecase, rule=alert.rule,
                action=action, event=event, status="pending", attempts=0,
                max_attempts=MAX_ACTION_ATTEMPTS, next_attempt_at=now, created_at=now,
                payload=payload))
            runs.append(_action(conn.execute(select(alert_actions).where(
                alert_actions.c.id == run_id)).one()))
        return tuple(runs)

    def _resolve(self, conn: Connection, alert: Alert, actor: str, reason: str,
                 now: datetime) -> Alert:
        conn.execute(update(alerts).where(alerts.c.id == alert.id).values(
            state="resolved", open_key=None, resolved_by=actor, resolved_at=now,
            resolved_reason=reason))
        self.audit.append("alert_resolve", f"usecase/{alert.usecase}/alert/{alert.id}", actor,
                          {"rule": alert.rule, "reason": reason, "count": alert.count},
                          connection=conn)
        return self._get(conn, alert.id)

    @staticmethod
    def _get(conn: Connection, alert_id: str) -> Alert:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise keyed(NotFoundError, "alert.unknown", alert=alert_id)
        return _alert(row)

    # -- people ----------------------------------------------------------------------------
    def acknowledge(self, alert_id: str, actor: str, reason: str, *,
                    now: datetime | None = None) -> Alert:
        """Mark an open alert as seen by ``actor`` (it stays active; the rule keeps counting).

        Raises:
            InputError: no reason given.  NotFoundError: no such alert.
            StateError: the alert is already acknowledged or resolved.
        """
        reason = _reason(reason, "acknowledge")
        now = now or utc_now()
        with self.store.write() as conn:
            alert = self._get(conn, _check_id(alert_id))
            if alert.state != "open":
                raise keyed(StateError, "alert.not_open", alert=alert.id,
                            state=phrase(f"alert.state.{alert.state}"))
            conn.execute(update(alerts).where(alerts.c.id == alert.id).values(
                state="acknowledged", acknowledged_by=actor, acknowledged_at=now,
                acknowledged_reason=reason))
            self.audit.append("alert_acknowledge", f"usecase/{alert.usecase}/alert/{alert.id}",
                              actor, {"rule": alert.rule, "reason": reason}, connection=conn)
            return self._get(conn, alert.id)

    def resolve(self, alert_id: str, actor: str, reason: str, *,
                now: datetime | None = None) -> Alert:
        """Close an active alert by hand. If its rule is still true, the next windows open a
        new alert after ``for N windows``.

        Raises:
            InputError: no reason.  NotFoundError: no such alert.  StateError: already resolved.
        """
        reason = _reason(reason, "resolve")
        now = now or utc_now()
        with self.store.write() as conn:
            alert = self._get(conn, _check_id(alert_id))
            if not alert.is_active:
                raise keyed(StateError, "alert.resolved", alert=alert.id,
                            by=alert.resolved_by)
            # Start counting afresh, so a still-true rule needs its N windows again.
            conn.execute(update(rule_states).where(
                rule_states.c.usecase == alert.usecase, rule_states.c.rule == alert.rule)
                .values(true_streak=0))
            return self._resolve(conn, alert, actor, reason, now)

    # -- reading ---------------------------------------------------------------------------
    def get(self, alert_id: str) -> Alert:
        """One alert by id."""
        with self.store.read() as conn:
            return self._get(conn, _check_id(alert_id))

    def list(self, *, usecase: str | None = None, state: str | None = None,
             limit: int = 100) -> builtins.list[Alert]:
        """Alerts, newest activity first. ``state="active"`` means open or acknowledged."""
        query = select(alerts)
        if usecase:
            query = query.where(alerts.c.usecase == usecase)
        if state == "active":
            query = query.where(alerts.c.state.in_(ACTIVE))
        elif state:
            if state not in ALERT_STATES:
                raise InputError(f"Alert state {state!r} is not one of "
                                 f"{', '.join(ALERT_STATES)} or active.")
            query = query.where(alerts.c.state == state)
        query = query.order_by(alerts.c.last_seen.desc(), alerts.c.id.desc()).limit(limit)
        with self.store.read() as conn:
            return [_alert(r) for r in conn.execute(query)]

    def actions_of(self, alert_id: str) -> builtins.list[ActionRun]:
        """The actions queued for an alert, oldest first."""
        with self.store.read() as conn:
            return [_action(r) for r in conn.execute(
                select(alert_actions).where(alert_actions.c.alert_id == alert_id)
                .order_by(alert_actions.c.id))]

    def rule_state(self, usecase: str, rule: str) -> dict[str, Any] | None:
        """The stored streak and last evaluation of one rule, or None before its first window."""
        with self.store.read() as conn:
            row = conn.execute(select(rule_states).where(
                rule_states.c.usecase == usecase, rule_states.c.rule == rule)).first()
        return dict(row._mapping) if row else None

    # -- the outbox ------------------------------------------------------------------------
    def claim_action(self, *, now: datetime | None = None, lease_s: float = ACTION_LEASE_S,
                     action_id: str | None = None) -> ActionRun | None:
        """Take the oldest pending action that is due (or ``action_id``), counting one attempt
        and hiding it from other senders for ``lease_s``."""
        now = now or utc_now()
        query = select(alert_actions).where(alert_actions.c.status == "pending",
                                            alert_actions.c.next_attempt_at <= now)
        if action_id is not None:
            query = query.where(alert_actions.c.id == action_id)
        # A read first: the scheduler asks every second, and an empty outbox needs no write
        # lock (the claim below repeats the test inside the write transaction).
        with self.store.read() as conn:
            if conn.execute(query.limit(1)).first() is None:
                return None
        with self.store.write() as conn:
            row = conn.execute(query.order_by(alert_actions.c.next_attempt_at,
                                              alert_actions.c.id).limit(1)).first()
            if row is None:
                return None
            claimed = conn.execute(update(alert_actions).where(
                alert_actions.c.id == row.id, alert_actions.c.status == "pending",
                alert_actions.c.attempts == row.attempts).values(
                attempts=row.attempts + 1,
                next_attempt_at=now + timedelta(seconds=lease_s))).rowcount
            if claimed != 1:
                return None
            return _action(conn.execute(select(alert_actions).where(
                alert_actions.c.id == row.id)).one())

    def action_done(self, run: ActionRun, result: Any, *, now: datetime | None = None
                    ) -> ActionRun:
        """Record a delivered action (and audit it)."""
        now = now or utc_now()
        with self.store.write() as conn:
            conn.execute(update(alert_actions).where(alert_actions.c.id == run.id).values(
                status="done", finished_at=now, result=json_ready(result)))
            self.audit.append("alert_action", f"usecase/{run.usecase}/alert/{run.alert_id}",
                              SYSTEM_ACTOR, {"action": run.action, "event": run.event,
                                             "attempts": run.attempts,
                                             "result": json_ready(result)}, connection=conn)
            return _action(conn.execute(select(alert_actions).where(
                alert_actions.c.id == run.id)).one())

    def action_failed(self, run: ActionRun, error: str, *, now: datetime | None = None,
                      final: bool = False) -> ActionRun:
        """Record a failed attempt: retry after a backoff, or fail for good (audited) once the
        attempts are used up, or at once with ``final`` (trying again cannot help)."""
        now = now or utc_now()
        final = final or run.attempts >= run.max_attempts
        with self.store.write() as conn:
            values: dict[str, Any] = {"last_error": error[:2000]}
            if final:
                values |= {"status": "failed", "finished_at": now}
            else:
                values["next_attempt_at"] = now + timedelta(
                    seconds=action_backoff_s(run.attempts))
            conn.execute(update(alert_actions).where(alert_actions.c.id == run.id)
                         .values(**values))
            if final:
                self.audit.append("alert_action_failed",
                                  f"usecase/{run.usecase}/alert/{run.alert_id}", SYSTEM_ACTOR,
                                  {"action": run.action, "event": run.event,
                                   "attempts": run.attempts, "error": error[:2000]},
                                  connection=conn)
            return _action(conn.execute(select(alert_actions).where(
                alert_actions.c.id == run.id)).one())

    def pending_actions(self, *, usecase: str | None = None) -> builtins.list[ActionRun]:
        """Actions not yet delivered (due now or waiting for a retry)."""
        query = select(alert_actions).where(alert_actions.c.status == "pending")
        if usecase:
            query = query.where(alert_actions.c.usecase == usecase)
        with self.store.read() as conn:
            return [_action(r) for r in conn.execute(query.order_by(alert_actions.c.id))]

    def failed_actions(self, *, since: datetime | None = None) -> builtins.list[ActionRun]:
        """Actions that failed for good (newest first)."""
        query = select(alert_actions).where(alert_actions.c.status == "failed")
        if since is not None:
            query = query.where(alert_actions.c.finished_at >= since)
        with self.store.read() as conn:
            return [_action(r) for r in conn.execute(
                query.order_by(alert_actions.c.id.desc()))]


def _reason(reason: str | None, verb: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise keyed(InputError, "alert.no_reason", verb=phrase(f"alert.verb.{verb}"))
    return text[:2000]


def _check_id(alert_id: str) -> str:
    if not is_id(alert_id):
        raise keyed(NotFoundError, "alert.bad_id", alert=repr(alert_id))
    return alert_id


__all__ = ["ACTIVE", "MAX_ACTION_ATTEMPTS", "ActionRun", "Alert", "AlertStore", "WindowOutcome",
           "action_backoff_s"]
