"""Alert actions (planta.services.alerts) against real receivers: an HTTP server and a Mosquitto
broker on 127.0.0.1, and a retrain function; failures are retried with backoff, never dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mqtt_broker import Broker
from receivers import HttpSink, free_port

from planta.services.alerts import AlertService
from planta.services.workspace import Workspace

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def workspace(make_project):
    """``workspace(root, rules, alerts=None)``: a project with those rules (and [alerts]
    table), opened."""
    opened: list[Workspace] = []

    def open_one(root: Path, rules: list[dict[str, Any]], alerts: dict[str, Any] | None = None
                 ) -> Workspace:
        make_project(root, rules=rules, extra={"alerts": alerts} if alerts else None)
        opened.append(Workspace.open(root))
        return opened[-1]

    yield open_one
    for ws in opened:
        ws.close()


def test_webhook_posts_the_alert_and_its_resolution(tmp_path: Path, http_sink: HttpSink,
                                                    workspace) -> None:
    ws = workspace(tmp_path, [{"name": "recall low", "when": "estimated_recall < objective",
                               "then": ["webhook"], "resolve_after": 1}],
                   {"webhook_url": http_sink.url})
    service = AlertService(ws, clock=Clock())
    [out] = service.evaluate("failure", {"estimated_recall": 0.61}, window="w1")
    assert out.decision == "open"
    [sent] = http_sink.received
    assert sent["event"] == "opened" and sent["rule"] == "recall low"
    assert sent["project"] == "plant-a" and sent["usecase"] == "failure"
    assert sent["values"] == {"estimated_recall": 0.61} and sent["alert_id"] == out.alert.id
    assert "estimated_recall = 0.61" in sent["message"]
    [run] = service.store.actions_of(out.alert.id)
    assert run.status == "done" and run.result == {"status": 200, "url": http_sink.url}
    service.evaluate("failure", {"estimated_recall": 0.9}, window="w2")
    assert [m["event"] for m in http_sink.received] == ["opened", "resolved"]
    assert http_sink.received[1]["state"] == "resolved"
    ws.close()


def test_the_message_speaks_the_projects_language(tmp_path: Path, http_sink: HttpSink,
                                                  make_project, monkeypatch) -> None:
    monkeypatch.delenv("PLANTA_LANG", raising=False)
    make_project(tmp_path, rules=[{"name": "recall low", "when": "estimated_recall < objective",
                                   "then": ["webhook"], "resolve_after": 1}],
                 extra={"alerts": {"webhook_url": http_sink.url}, "ui": {"lang": "es"}})
    ws = Workspace.open(tmp_path)
    try:
        service = AlertService(ws, clock=Clock())
        service.evaluate("failure", {"estimated_recall": 0.61}, window="w1")
        service.evaluate("failure", {"estimated_recall": 0.9}, window="w2")
    finally:
        ws.close()
    opened, resolved = http_sink.received
    assert opened["lang"] == "es" and opened["event"] == "opened"
    assert opened["message"].startswith("La regla «recall low» del caso de uso failure se disparó")
    assert "estimated_recall = 0,61" in opened["message"]  # Spanish numbers
    assert resolved["message"].startswith("La regla «recall low» del caso de uso failure se "
                                          "resolvió")


def test_a_failing_webhook_is_retried_with_backoff_then_delivered(
        tmp_path: Path, http_sink: HttpSink, workspace) -> None:
    http_sink.statuses.extend([500, 503])
    ws = workspace(tmp_path, [{"when": "rejected_rate > 0.05", "then": ["webhook"],
                               "webhook_url": http_sink.url}])
    clock = Clock()
    service = AlertService(ws, clock=clock, webhook_timeout_s=5)
    [out] = service.evaluate("failure", {"rejected_rate": 0.2}, window="w1")
    [run] = service.store.actions_of(out.alert.id)
    assert (run.status, run.attempts) == ("pending", 1)
    assert run.last_error == f"the webhook at {http_sink.url} answered HTTP 500"
    assert service.deliver() == []                 # backoff: not yet
    clock.advance(10)
    [second] = service.deliver()
    assert (second.status, second.attempts) == ("pending", 2) and "HTTP 503" in second.last_error
    clock.advance(20)
    [third] = service.deliver()
    assert (third.status, third.attempts) == ("done", 3)
    assert len(http_sink.received) == 1
    ws.close()


def test_an_unreachable_webhook_fails_for_good_reported_in_log_and_audit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, workspace) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"    # nothing listens there
    ws = workspace(tmp_path, [{"when": "rejected_rate > 0.05", "then": ["webhook", "log"]}],
                   {"webhook_url": dead})
    clock = Clock()
    service = AlertService(ws, clock=clock, webhook_timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="planta.alerts"):
        [out] = service.evaluate("failure", {"rejected_rate": 0.2}, window="w1")
        for _ in range(6):
            clock.advance(700)
            service.deliver()
    runs = {r.action: r for r in service.store.actions_of(out.alert.id)}
    assert runs["log"].status == "done"
    assert (runs["webhook"].status, runs["webhook"].attempts) == ("failed", 5)
    assert "could not be reached" in runs["webhook"].last_error
    assert any("giving up" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)
    events = ws.audit.events(action="alert_action_failed")
    assert len(events) == 1
    ws.close()


def test_mqtt_publishes_qos1_to_a_real_broker(tmp_path: Path, mosquitto: Broker,
                                              workspace) -> None:
    ws = workspace(tmp_path, [{"name": "torque", "when": "psi(torque_nm) > 0.2",
                               "then": ["mqtt"]}], {"mqtt_url": mosquitto.url})
    sub = mosquitto.subscribe("planta/#")
    try:
        service = AlertService(ws, clock=Clock())
        [out] = service.evaluate("failure", {"psi(torque_nm)": 0.4}, window="w1")
        [(topic, message)] = sub.wait(1)
    finally:
        sub.close()
    assert topic == "planta/plant-a/alerts/failure"
    assert message["rule"] == "torque" and message["values"] == {"psi(torque_nm)": 0.4}
    [run] = service.store.actions_of(out.alert.id)
    assert run.status == "done" and run.result["topic"] == topic
    ws.close()


def test_mqtt_to_a_stopped_broker_waits_and_is_delivered_when_it_is_back(
        tmp_path: Path, mosquitto: Broker, workspace) -> None:
    ws = workspace(tmp_path, [{"name": "torque", "when": "psi(torque_nm) > 0.2",
                               "then": ["mqtt"], "mqtt_topic": "line1/{rule}"}],
                   {"mqtt_url": mosquitto.url})
    mosquitto.stop()
    clock = Clock()
    service = AlertService(ws, clock=clock, mqtt_timeout_s=2)
    [out] = service.evaluate("failure", {"psi(torque_nm)": 0.4}, window="w1")
    [run] = service.store.actions_of(out.alert.id)
    assert run.status == "pending" and "could not be reached" in run.last_error
    mosquitto.start()                                  # back on the same port
    sub = mosquitto.subscribe("line1/#")
    try:
        clock.advance(10)
        [done] = service.deliver()
        [(topic, message)] = sub.wait(1)
    finally:
        sub.close()
    assert (done.status, done.attempts) == ("done", 2)
    assert topic == "line1/torque" and message["event"] == "opened"
    ws.close()


def test_retrain_calls_the_wired_function_and_records_its_outcome(tmp_path: Path,
                                                                  workspace) -> None:
    calls: list[dict[str, Any]] = []

    class Outcome:
        def to_dict(self) -> dict[str, Any]:
            return {"version": 7, "gate": "passed"}

    def retrain(ws: Workspace, usecase: str, *, actor: str, reason: str) -> Outcome:
        calls.append({"usecase": usecase, "actor": actor, "reason": reason})
        return Outcome()

    ws = workspace(tmp_path, [{"name": "recall low", "when": "recall < 0.7 for 2 windows",
                               "then": ["log", "retrain"]}])
    service = AlertService(ws, retrain=retrain, clock=Clock())
    service.evaluate("failure", {"recall": 0.6}, window="w1")
    assert calls == []
    [out] = service.evaluate("failure", {"recall": 0.55}, window="w2")
    service.evaluate("failure", {"recall": 0.5}, window="w3")     # a repeat: no new retrain
    assert len(calls) == 1
    assert calls[0]["usecase"] == "failure" and calls[0]["actor"] == "planta-monitor:recall low"
    assert out.alert.id in calls[0]["reason"]
    runs = {r.action: r for r in service.store.actions_of(out.alert.id)}
    assert runs["retrain"].status == "done"
    assert runs["retrain"].result == {"version": 7, "gate": "passed"}
    ws.close()


def test_retrain_without_a_wired_function_is_reported_not_dropped(tmp_path: Path,
                                                                   workspace) -> None:
    ws = workspace(tmp_path, [{"when": "recall < 0.7", "then": ["retrain"]}])
    service = AlertService(ws, clock=Clock())
    [out] = service.evaluate("failure", {"recall": 0.5}, window="w1")
    [run] = service.store.actions_of(out.alert.id)
    assert run.status == "pending" and "not available in this process" in run.last_error
    ws.close()


def test_actions_survive_a_crash_between_commit_and_delivery(tmp_path: Path, http_sink: HttpSink,
                                                             workspace) -> None:
    """The alert and its pending action commit first; a process that dies before sending
    leaves them for the next one (here: evaluate without delivering, then a new service)."""
    ws = workspace(tmp_path, [{"when": "rejected_rate > 0.05", "then": ["webhook"]}],
                   {"webhook_url": http_sink.url})
    AlertService(ws, clock=Clock()).evaluate("failure", {"rejected_rate": 0.3}, window="w1",
                                             deliver=False)
    ws.close()
    assert http_sink.received == []
    again = Workspace.open(tmp_path)
    [run] = AlertService(again, clock=Clock()).deliver()
    assert run.status == "done" and len(http_sink.received) == 1
    again.close()


# -- people: the UI page and the CLI ------------------------------------------------------------
def _open_alert(ws: Workspace) -> str:
    [out] = AlertService(ws, clock=Clock()).evaluate("failure", {"rejected_rate": 0.2},
                                                      window="w1")
    return out.alert.id


def test_the_alerts_page_and_api_list_and_act_with_a_reason_for_operators_only(tmp_path: Path,
                                                                         workspace) -> None:
    from starlette.testclient import TestClient

    from planta.server.app import create_app
    from planta.server.runtime import ServeOptions
    from planta.store.tokens import TokenStore

    ws = workspace(tmp_path, [{"name": "rejections", "when": "rejected_rate > 0.05"}])
    alert_id = _open_alert(ws)
    tokens = TokenStore(ws.store, ws.audit)
    viewer = {"authorization": "Bearer " + tokens.create("vera", "viewer", actor="admin")[1]}
    operator = {"authorization": "Bearer " + tokens.create("olga", "operator",
                                                           actor="admin")[1]}
    app = create_app(ws, ServeOptions(worker=False, require_auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        # The API: the same list and the same refusals.
        [listed] = client.get("/v1/alerts", headers=viewer).json()["alerts"]
        assert (listed["id"], listed["state"]) == (alert_id, "open")
        one = client.get(f"/v1/alerts/{alert_id.lower()}", headers=viewer).json()
        assert [a["action"] for a in one["actions"]] == ["log"]
        assert client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=viewer,
                           json={"reason": "x"}).status_code == 403
        assert client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=operator,
                           json={}).status_code == 422
        assert client.get("/v1/alerts/not-an-id", headers=viewer).status_code == 404
        page = client.get("/ui/alerts", headers=viewer)
        assert page.status_code == 200 and "rejections" in page.text
        assert f'action="/ui/alerts/{alert_id}"' not in page.text     # no forms for a viewer
        assert "operator role" in page.text
        refused = client.post(f"/ui/alerts/{alert_id}", headers=viewer,
                              data={"verb": "ack", "reason": "mine"})
        assert refused.status_code == 403
        shown = client.get("/ui/alerts", headers=operator)
        assert f'action="/ui/alerts/{alert_id}"' in shown.text
        no_reason = client.post(f"/ui/alerts/{alert_id}", headers=operator,
                                data={"verb": "ack", "reason": " "})
        assert no_reason.status_code == 400 and "reason" in no_reason.text
        acked = client.post(f"/ui/alerts/{alert_id}", headers=operator,
                            data={"verb": "ack", "reason": "checking the line"},
                            follow_redirects=False)
        assert acked.status_code == 303
        assert client.get(acked.headers["location"], headers=operator).text.count(
            "acknowledged") >= 1
        resolved = client.post(f"/ui/alerts/{alert_id}", headers=operator,
                               data={"verb": "resolve", "reason": "feeder fixed"})
        assert resolved.status_code == 200 and "feeder fixed" in resolved.text
        spanish = client.get("/ui/alerts?lang=es", headers=operator)
        assert "Resueltas recientemente" in spanish.text
    events = [(e.action, e.actor, e.payload.get("reason"))
              for e in ws.audit.events() if e.action.startswith("alert_")]
    assert events == [("alert_open", "planta-monitor", None),
                      ("alert_action", "planta-monitor", None),      # the log action
                      ("alert_acknowledge", "olga", "checking the line"),
                      ("alert_resolve", "olga", "feeder fixed")]
    ws.close()


def test_the_cli_lists_acknowledges_and_resolves(tmp_path: Path, workspace) -> None:
    import json

    from typer.testing import CliRunner

    from planta.cli.app import app

    ws = workspace(tmp_path, [{"name": "rejections", "when": "rejected_rate > 0.05"}])
    alert_id = _open_alert(ws)
    ws.close()
    runner = CliRunner()
    env = {"PLANTA_PROJECT": str(tmp_path), "PLANTA_USER": "luis"}
    listed = runner.invoke(app, ["alerts", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["id"], row["state"], row["rule"]) == (alert_id, "open", "rejections")
    missing = runner.invoke(app, ["alerts", "ack", alert_id], env=env)
    assert missing.exit_code == 2                                  # --reason is required
    acked = runner.invoke(app, ["alerts", "ack", alert_id, "--reason", "on it"], env=env)
    assert acked.exit_code == 0 and "acknowledged by luis" in acked.output
    again = runner.invoke(app, ["alerts", "ack", alert_id, "--reason", "x", "--json"], env=env)
    assert again.exit_code == 1 and json.loads(again.output)["ok"] is False
    done = runner.invoke(app, ["alerts", "resolve", alert_id, "--reason", "fixed", "--json"],
                         env=env)
    assert done.exit_code == 0 and json.loads(done.output)["state"] == "resolved"
    assert json.loads(runner.invoke(app, ["alerts", "--json"], env=env).output) == []
    everything = json.loads(runner.invoke(app, ["alerts", "--state", "all", "--json"],
                                          env=env).output)
    assert [a["resolved_reason"] for a in everything] == ["fixed"]
    wide = env | {"COLUMNS": "200"}
    table = runner.invoke(app, ["alerts", "--state", "all"], env=wide)
    assert table.exit_code == 0 and "Alerts (newest first)" in table.output
    assert "Resolved" in table.output
    spanish = runner.invoke(app, ["alerts", "--state", "all"], env=wide | {"PLANTA_LANG": "es"})
    assert spanish.exit_code == 0 and "Alertas (las más recientes primero)" in spanish.output
    assert "Resuelta" in spanish.output and "caso de uso" in spanish.output, spanish.output
    none = runner.invoke(app, ["alerts"], env=env | {"PLANTA_LANG": "es"})
    assert none.exit_code == 0 and "No hay alertas." in none.output


def test_a_retrain_the_data_cannot_support_fails_at_once_not_five_times(tmp_path: Path,
                                                                        workspace) -> None:
    from planta.errors import InputError

    calls: list[str] = []

    def retrain(ws: Workspace, usecase: str, *, actor: str, reason: str) -> None:
        calls.append(usecase)
        raise InputError("Only 3 labelled failures: too few to train on.")

    ws = workspace(tmp_path, [{"when": "recall < 0.7", "then": ["retrain"]}])
    clock = Clock()
    service = AlertService(ws, retrain=retrain, clock=clock)
    [out] = service.evaluate("failure", {"recall": 0.5}, window="w1")
    clock.advance(3600)
    service.deliver()
    [run] = service.store.actions_of(out.alert.id)
    assert (run.status, run.attempts, len(calls)) == ("failed", 1, 1)
    assert run.last_error == "Only 3 labelled failures: too few to train on."
    assert [e.payload["action"] for e in ws.audit.events(action="alert_action_failed")] == [
        "retrain"]
    ws.close()
