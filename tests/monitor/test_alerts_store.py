"""The alert store (planta.store.alerts) and the scheduler's store (planta.store.schedule) on a
real SQLite file and a real PostgreSQL: dedupe, states, audit, the outbox, leases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from planta.core.rules import parse_rule
from planta.core.schedule import JobSpec
from planta.errors import InputError, NotFoundError, StateError, StoreError
from planta.store.alerts import AlertStore
from planta.store.audit import AuditLog
from planta.store.metadata import alerts as alerts_table
from planta.store.schedule import ScheduleStore

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RULE = parse_rule("psi(torque_nm) > 0.2 for 2 windows", name="torque drift",
                  actions=("log", "webhook", "retrain"), resolve_after=2)


def window(store: AlertStore, value: float | None, n: int, rule=RULE, usecase: str = "failure"):
    signals = {} if value is None else {"psi(torque_nm)": value}
    return store.apply_window(usecase, rule, rule.evaluate(signals), f"w{n}",
                              now=T0 + timedelta(minutes=15 * n))


def audit_actions(store) -> list[str]:
    from sqlalchemy import select

    from planta.store.metadata import audit_events

    with store.read() as conn:
        return [r.action for r in conn.execute(select(audit_events.c.action)
                                               .order_by(audit_events.c.seq))]


def test_one_alert_per_rule_counts_repeats_and_resolves_itself(store) -> None:
    alerts = AlertStore(store)
    assert window(alerts, 0.3, 1).decision == "none"          # 1 of 2 windows
    opened = window(alerts, 0.35, 2)
    assert opened.decision == "open" and opened.alert.state == "open"
    assert [a.action for a in opened.actions] == ["log", "webhook", "retrain"]
    assert opened.alert.payload["values"] == {"psi(torque_nm)": 0.35}
    for n in (3, 4, 5):
        out = window(alerts, 0.4, n)
        assert out.decision == "repeat" and out.actions == ()
    alert = alerts.get(opened.alert.id)
    assert alert.count == 4 and alert.first_seen == T0 + timedelta(minutes=30)
    assert alert.last_seen == T0 + timedelta(minutes=75)
    assert len(alerts.list(usecase="failure")) == 1
    assert window(alerts, 0.1, 6).decision == "none"          # 1 false window of 2
    resolved = window(alerts, 0.1, 7)
    assert resolved.decision == "resolve" and resolved.alert.state == "resolved"
    assert resolved.alert.resolved_by == "planta-monitor"
    # The resolution is announced (log, webhook) but never retrains.
    assert [a.action for a in resolved.actions] == ["log", "webhook"]
    assert {a.event for a in resolved.actions} == {"resolved"}
    # Firing again later opens a new alert.
    window(alerts, 0.5, 8)
    again = window(alerts, 0.5, 9)
    assert again.decision == "open" and again.alert.id != opened.alert.id
    assert [a.state for a in alerts.list()] == ["open", "resolved"]
    assert audit_actions(store) == ["alert_open", "alert_resolve", "alert_open"]
    assert AuditLog(store).verify().ok


def test_the_same_window_twice_counts_once(store) -> None:
    alerts = AlertStore(store)
    window(alerts, 0.3, 1)
    again = window(alerts, 0.3, 1)
    assert again.repeated_window and again.decision == "none"
    assert alerts.rule_state("failure", "torque drift")["true_streak"] == 1


def test_an_unevaluable_rule_is_recorded_and_audited_once(store) -> None:
    alerts = AlertStore(store)
    window(alerts, 0.3, 1)
    for n in (2, 3):
        out = window(alerts, None, n)
        assert out.decision == "unknown"
        assert out.evaluation.message == "cannot be evaluated: no value for psi(torque_nm)"
    state = alerts.rule_state("failure", "torque drift")
    assert state["last_result"] == "unknown" and state["true_streak"] == 1
    assert audit_actions(store) == ["rule_unevaluable"]
    assert window(alerts, 0.3, 4).decision == "open"     # the unknown windows broke nothing


def test_acknowledge_and_resolve_need_a_reason_and_are_audited(store) -> None:
    alerts = AlertStore(store)
    window(alerts, 0.3, 1)
    alert = window(alerts, 0.3, 2).alert
    with pytest.raises(InputError, match="A reason is needed"):
        alerts.acknowledge(alert.id, "ana", "  ")
    acked = alerts.acknowledge(alert.id, "ana", "checking the torque sensor", now=T0)
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_reason) == (
        "acknowledged", "ana", "checking the torque sensor")
    with pytest.raises(StateError, match="only an open alert can be acknowledged"):
        alerts.acknowledge(alert.id, "luis", "again")
    # An acknowledged alert is still the active one: repeats count on it.
    assert window(alerts, 0.3, 3).alert.id == alert.id
    done = alerts.resolve(alert.id, "luis", "sensor replaced")
    assert (done.state, done.resolved_by, done.resolved_reason) == ("resolved", "luis",
                                                                     "sensor replaced")
    with pytest.raises(StateError, match="already resolved"):
        alerts.resolve(alert.id, "luis", "twice")
    with pytest.raises(NotFoundError):
        alerts.resolve("not-an-id", "luis", "x")
    # Resolved by hand while still true: the rule needs its 2 windows again.
    assert window(alerts, 0.3, 4).decision == "none"
    assert window(alerts, 0.3, 5).decision == "open"
    assert audit_actions(store) == ["alert_open", "alert_acknowledge", "alert_resolve",
                                    "alert_open"]


def test_the_database_refuses_a_second_active_alert_for_a_rule(store) -> None:
    alerts = AlertStore(store)
    window(alerts, 0.3, 1)
    window(alerts, 0.3, 2)
    with pytest.raises((StoreError, SAIntegrityError)), store.write() as conn:
        conn.execute(insert(alerts_table).values(
            id="01" + "0" * 24, usecase="failure", rule="torque drift", condition="x",
            state="open", open_key="failure/torque drift", first_seen=T0, last_seen=T0,
            count=1, payload={}))


def test_concurrent_windows_from_threads_make_one_alert(store) -> None:
    rule = parse_rule("recall < 0.7", name="recall", actions=("log",))
    alerts = AlertStore(store)
    errors: list[BaseException] = []

    def fire(n: int) -> None:
        try:
            alerts.apply_window("failure", rule, rule.evaluate({"recall": 0.5}), f"t{n}",
                                now=T0 + timedelta(seconds=n))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = alerts.list()
    assert len(found) == 1 and found[0].count == 8
    assert len(alerts.actions_of(found[0].id)) == 1


def test_the_outbox_claims_once_retries_with_backoff_and_fails_for_good(store) -> None:
    alerts = AlertStore(store)
    window(alerts, 0.3, 1)
    opened = window(alerts, 0.3, 2)
    now = opened.alert.first_seen
    first = alerts.claim_action(now=now)
    assert first is not None and first.attempts == 1
    # Claimed: hidden from a second sender until its lease ends.
    others = [alerts.claim_action(now=now) for _ in range(2)]
    assert first.id not in {o.id for o in others if o}
    run = first
    for attempt in range(1, 6):
        after = alerts.action_failed(run, f"boom {attempt}", now=now)
        if attempt < 5:
            assert after.status == "pending"
            assert after.next_attempt_at == now + timedelta(seconds=10 * 2 ** (attempt - 1))
            assert alerts.claim_action(now=now, action_id=run.id) is None   # backoff
            now = after.next_attempt_at
            run = alerts.claim_action(now=now, action_id=run.id)
            assert run.attempts == attempt + 1
    assert after.status == "failed" and after.last_error == "boom 5"
    assert [a.id for a in alerts.failed_actions()] == [first.id]
    assert "alert_action_failed" in audit_actions(store)


def test_leases_are_exclusive_until_they_run_out(store) -> None:
    state = ScheduleStore(store)
    assert state.acquire("scheduler", "a", lease_s=30, now=T0)
    assert not state.acquire("scheduler", "b", lease_s=30, now=T0 + timedelta(seconds=29))
    assert state.acquire("scheduler", "a", lease_s=30, now=T0 + timedelta(seconds=29))  # renew
    assert not state.acquire("scheduler", "b", lease_s=30, now=T0 + timedelta(seconds=58))
    assert state.acquire("scheduler", "b", lease_s=30, now=T0 + timedelta(seconds=60))
    assert state.holder("scheduler", now=T0 + timedelta(seconds=61))[0] == "b"
    state.release("scheduler", "a")  # not a's any more: nothing happens
    assert state.holder("scheduler", now=T0 + timedelta(seconds=61))[0] == "b"
    state.release("scheduler", "b")
    assert state.holder("scheduler", now=T0 + timedelta(seconds=61)) is None


def test_job_rows_sync_claim_and_finish(store) -> None:
    state = ScheduleStore(store)
    spec = JobSpec("monitor:failure", "monitor", "*/15 * * * *", "failure")
    rows = state.sync([spec], {spec.name: T0 + timedelta(minutes=15)}, now=T0)
    assert [(r.name, r.next_due) for r in rows] == [(spec.name, T0 + timedelta(minutes=15))]
    seen = rows[0]
    job = state.claim(spec.name, "a", lease_s=30, now=T0, seen=seen)
    assert job.lease_owner == "a"
    assert state.claim(spec.name, "b", lease_s=30, now=T0 + timedelta(seconds=10)) is None
    assert state.finish(spec.name, "a", status="ok", next_due=T0 + timedelta(minutes=30),
                        last_due=T0 + timedelta(minutes=15), failures=0, retry_at=None,
                        error=None, now=T0)
    # b decided from the old row: its claim is refused, the run is not repeated.
    assert state.claim(spec.name, "b", lease_s=30, now=T0, seen=seen) is None
    # A changed schedule starts afresh; a removed job goes away.
    moved = JobSpec(spec.name, "monitor", "0 * * * *", "failure")
    assert state.sync([moved], {spec.name: T0 + timedelta(hours=1)}, now=T0)[0].last_due is None
    assert state.sync([], {}, now=T0) == []
