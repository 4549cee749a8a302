"""Alerts from monitoring windows: evaluate a use case's rules, keep one alert per rule, act.

    evaluate(usecase, signals, window)        signals: {"psi(torque_nm)": 0.31, "recall": …}
      for each rule in planta.toml ─► AlertStore.apply_window ─► open / repeat / resolve
      (the alert, its queued actions and the audit event commit together)
    deliver()                                 the outbox, oldest first, retried with backoff
      log      Python logging (the alert row and audit event are the record)
      webhook  HTTP POST of a JSON message to the rule's webhook_url or [alerts] webhook_url
      mqtt     one QoS 1 message to [alerts] mqtt_url, topic planta/{project}/alerts/{usecase}
      retrain  calls the retrain function the entry point wired in; its outcome is recorded

A failed delivery is tried again after 10 s, 20 s, 40 s … up to five attempts; the last failure
is logged as an error and audited (``alert_action_failed``), and ``planta alerts`` shows it.
Actions run when an alert opens; webhook, MQTT and log also say when it resolves.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import planta
from planta.core.rules import Rule
from planta.errors import ConfigError, InputError, NotFoundError, PlantaError, error_words, keyed
from planta.i18n import DEFAULT_LANG, number, said, say, translator
from planta.store.alerts import SYSTEM_ACTOR, ActionRun, Alert, AlertStore, WindowOutcome
from planta.store.ids import new_id
from planta.store.metadata import json_ready, utc_now

if TYPE_CHECKING:
    from planta.services.workspace import Workspace

log = logging.getLogger("planta.alerts")

WEBHOOK_TIMEOUT_S = 10.0
MQTT_TIMEOUT_S = 10.0
# retrain(ws, usecase, *, actor, reason) -> an outcome (anything with to_dict(), or JSON data).
RetrainFunction = Callable[..., Any]
Sender = Callable[[ActionRun, dict[str, Any]], Any]


class DeliveryError(OSError):
    """A receiver (webhook, MQTT broker) did not take the message; the text says which and
    why, in words for the alert list.

    Made by :func:`undelivered`, it keeps its catalogue key and values (``message_key``,
    ``params``) so that the alert list can say it in the project's language.
    """

    message_key: str | None = None
    params: dict[str, Any] = {}  # noqa: RUF012 - replaced per instance by undelivered()


def undelivered(key: str, /, **params: Any) -> DeliveryError:
    """A :class:`DeliveryError` with the catalogue's English for ``key`` (see
    :func:`planta.errors.keyed`)."""
    t = translator(DEFAULT_LANG)
    error = DeliveryError(t(key, **{k: say(v, t) for k, v in params.items()}))
    error.message_key, error.params = key, dict(params)
    return error


def failure_words(exc: BaseException, lang: str) -> str:
    """What went wrong with an action, in ``lang``: a planta error or a delivery error by its
    catalogue key where it has one; anything else as ``Type: text``."""
    t = translator(lang)
    if isinstance(exc, PlantaError):
        return error_words(exc, t)[0]
    if isinstance(exc, DeliveryError):
        return (t(exc.message_key, **{k: say(v, t) for k, v in exc.params.items()})
                if exc.message_key else str(exc))
    return f"{type(exc).__name__}: {exc}"


class AlertService:
    """Rules, alerts and actions of one workspace.

    Args:
        ws: the opened workspace (project settings give webhook and MQTT targets).
        retrain: called by the ``retrain`` action as ``retrain(ws, usecase, actor=…,
            reason=…)``; None makes that action fail with a clear message (and be retried).
        clock: the current time (tests pass a fake one).
        senders: replace or add actions by name (tests).
    """

    def __init__(self, ws: Workspace, *, retrain: RetrainFunction | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 webhook_timeout_s: float = WEBHOOK_TIMEOUT_S,
                 mqtt_timeout_s: float = MQTT_TIMEOUT_S,
                 senders: Mapping[str, Sender] | None = None) -> None:
        self.ws = ws
        self.store = AlertStore(ws.store, ws.audit)
        self.retrain = retrain
        self.clock = clock
        self.webhook_timeout_s = webhook_timeout_s
        self.mqtt_timeout_s = mqtt_timeout_s
        self.senders: dict[str, Sender] = {"log": self._log, "webhook": self._webhook,
                                           "mqtt": self._mqtt, "retrain": self._retrain}
        self.senders.update(senders or {})
        # One delivery pass at a time per process (the server's scheduler thread and a UI
        # request may both ask); other processes are kept apart by the claim in the store.
        self._delivering = threading.Lock()

    # -- windows -----------------------------------------------------------------------------
    def evaluate(self, usecase: str, signals: Mapping[str, float | None], *,
                 window: str | None = None, context: Mapping[str, Any] | None = None,
                 deliver: bool = True) -> list[WindowOutcome]:
        """Evaluate every rule of ``usecase`` on one window's signals and record the result.

        ``window`` names the window (its end time): evaluating it again counts it once. A rule
        whose signals are missing is reported "cannot be evaluated" (outcome ``unknown``, a
        warning in the log, an audit event when it starts) and changes no streak.
        With ``deliver`` the queued actions are sent before this returns.
        """
        rules = self.ws.project.rules(usecase)
        now = self.clock()
        outcomes = []
        for rule in rules:
            evaluation = rule.evaluate(signals)
            outcome = self.store.apply_window(usecase, rule, evaluation, window, now=now,
                                              context=context)
            if outcome.decision == "unknown":
                log.warning("rule %r of use case %s %s", rule.name, usecase,
                            evaluation.message)
            outcomes.append(outcome)
        if deliver and any(o.actions for o in outcomes):
            self.deliver()
        return outcomes

    # -- people ------------------------------------------------------------------------------
    def acknowledge(self, alert_id: str, actor: str, reason: str) -> Alert:
        """An operator has seen the alert (audited with the reason)."""
        return self.store.acknowledge(alert_id, actor, reason, now=self.clock())

    def resolve(self, alert_id: str, actor: str, reason: str) -> Alert:
        """Close the alert by hand (audited with the reason)."""
        return self.store.resolve(alert_id, actor, reason, now=self.clock())

    # -- the outbox --------------------------------------------------------------------------
    def deliver(self, *, limit: int = 100) -> list[ActionRun]:
        """Send the actions that are due (new ones and retries whose backoff ended)."""
        done: list[ActionRun] = []
        with self._delivering:
            for _ in range(limit):
                run = self.store.claim_action(now=self.clock())
                if run is None:
                    break
                done.append(self._send(run))
        return done

    def _send(self, run: ActionRun) -> ActionRun:
        sender = self.senders.get(run.action)
        try:
            if sender is None:
                raise keyed(ConfigError, "alert.action.unknown", action=run.action)
            result = sender(run, self.message(run))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
            # Kept as text in the alert list, so in the project's language, as the message.
            error = failure_words(exc, self.ws.project.settings.lang)
            # The data cannot make a model, the use case is gone: a retry would only spend
            # another training budget. Receivers down and settings missing are retried.
            final = isinstance(exc, (InputError, NotFoundError))
            after = self.store.action_failed(run, error, now=self.clock(), final=final)
            level = logging.ERROR if after.status == "failed" else logging.WARNING
            log.log(level, "alert action %s of rule %r (%s) failed, attempt %d of %d: %s%s",
                    run.action, run.rule, run.usecase, run.attempts, run.max_attempts, error,
                    "; giving up" if after.status == "failed" else "; will retry")
            return after
        return self.store.action_done(run, result, now=self.clock())

    def message(self, run: ActionRun) -> dict[str, Any]:
        """The JSON document a webhook or MQTT subscriber receives."""
        try:
            alert = self.store.get(run.alert_id).to_dict()
        except NotFoundError:
            alert = {}
        payload = dict(run.payload)
        # In the project's language ([ui] lang or PLANTA_LANG): the people reading the
        # plant's chat or pager speak it; the fields around it stay machine-readable.
        lang = self.ws.project.settings.lang
        values = values_words(payload.get("values") or {}, lang)
        text = translator(lang)(
            "alert.message.fired" if run.event == "opened" else "alert.message.resolved",
            rule=run.rule,
            usecase=run.usecase, values=f": {values}" if values else "",
            when=payload.get("when", ""))
        return json_ready({"project": self.ws.project.name, "usecase": run.usecase,
                           "rule": run.rule, "event": run.event, "alert_id": run.alert_id,
                           "state": alert.get("state"), "count": alert.get("count"),
                           "first_seen": alert.get("first_seen"),
                           "last_seen": alert.get("last_seen"), "when": payload.get("when"),
                           "values": payload.get("values") or {},
                           "window": payload.get("window"), "message": text,
                           "lang": self.ws.project.settings.lang,
                           "sent_by": f"planta {planta.__version__}"})

    def _rule(self, run: ActionRun) -> Rule | None:
        try:
            rules = self.ws.project.rules(run.usecase)
        except PlantaError:
            return None
        return next((r for r in rules if r.name == run.rule), None)

    # -- senders -----------------------------------------------------------------------------
    def _log(self, run: ActionRun, message: dict[str, Any]) -> dict[str, Any]:
        level = logging.WARNING if run.event == "opened" else logging.INFO
        log.log(level, "%s", message["message"])
        return {"logged": True}

    def _webhook(self, run: ActionRun, message: dict[str, Any]) -> dict[str, Any]:
        rule = self._rule(run)
        url = (rule.webhook_url if rule and rule.webhook_url else
               self.ws.project.settings.webhook_url)
        if not url:
            raise keyed(ConfigError, "alert.action.no_webhook")
        return post_json(url, message, timeout_s=self.webhook_timeout_s)

    def _mqtt(self, run: ActionRun, message: dict[str, Any]) -> dict[str, Any]:
        settings = self.ws.project.settings
        if not settings.mqtt_url:
            raise keyed(ConfigError, "alert.action.no_mqtt")
        rule = self._rule(run)
        template = rule.mqtt_topic if rule and rule.mqtt_topic else settings.mqtt_topic
        topic = template.format(project=self.ws.project.name, usecase=run.usecase,
                                rule=run.rule)
        return publish_mqtt(settings.mqtt_url, topic, message, timeout_s=self.mqtt_timeout_s)

    def _retrain(self, run: ActionRun, message: dict[str, Any]) -> Any:
        if self.retrain is None:
            raise keyed(ConfigError, "alert.action.no_retrain")
        outcome = self.retrain(self.ws, run.usecase, actor=f"{SYSTEM_ACTOR}:{run.rule}",
                               reason=f"alert {run.alert_id}: {message['message']}")
        return outcome.to_dict() if hasattr(outcome, "to_dict") else json_ready(outcome)


def values_words(values: Mapping[str, Any], lang: str) -> str:
    """The signals that made a rule fire, for people: ``psi(torque) = 0,31`` in Spanish.

    >>> values_words({"recall": 0.5432, "rows": 1234.0, "note": "low"}, "es")
    'recall = 0,543, rows = 1.234, note = low'
    """
    return ", ".join(f"{k} = {number(v, lang)}" if isinstance(v, (int, float))
                     and not isinstance(v, bool) else f"{k} = {v}" for k, v in values.items())


def post_json(url: str, document: Mapping[str, Any], *, timeout_s: float) -> dict[str, Any]:
    """POST ``document`` as JSON; the HTTP status if it is 2xx, else an error.

    Raises:
        ConfigError: the URL is not http(s).  DeliveryError: no answer, or not a 2xx answer.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise keyed(ConfigError, "alert.webhook.bad_url", url=repr(url))
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"planta/{planta.__version__}"})
    try:
        # The scheme is checked above: only http(s), never file:// or custom openers.
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # nosec B310
            return {"status": answer.status, "url": url}
    except urllib.error.HTTPError as exc:
        raise undelivered("alert.webhook.status", url=url, code=exc.code) from exc
    except urllib.error.URLError as exc:
        raise undelivered("alert.webhook.unreachable", url=url, reason=str(exc.reason)) from exc
    except OSError as exc:  # a timeout, a reset connection
        raise undelivered("alert.webhook.silent", url=url, reason=str(exc)) from exc


def publish_mqtt(url: str, topic: str, document: Mapping[str, Any], *, timeout_s: float
                 ) -> dict[str, Any]:
    """Publish ``document`` as one QoS 1 message and wait for the broker's PUBACK.

    ``url`` is ``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS, port 8883).

    Raises:
        ConfigError: a bad URL.  DeliveryError: the broker cannot be reached or did not
            acknowledge.
    """
    import paho.mqtt.client as mqtt

    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise keyed(ConfigError, "alert.mqtt.bad_url", url=repr(url))
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"planta-alerts-{new_id().lower()}")
    if parts.username:
        client.username_pw_set(unquote(parts.username),
                               unquote(parts.password) if parts.password else None)
    if parts.scheme == "mqtts":
        client.tls_set()
    client.connect_timeout = timeout_s
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(parts.hostname, port, keepalive=max(int(timeout_s) * 2, 10))
    except OSError as exc:
        raise undelivered("alert.mqtt.unreachable", broker=f"{parts.hostname}:{port}",
                          reason=str(exc)) from exc
    client.loop_start()
    try:
        if not connected.wait(timeout_s) or refused:
            raise undelivered("alert.mqtt.refused", broker=f"{parts.hostname}:{port}",
                              reason=refused[0] if refused else said("alert.mqtt.no_answer"))
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        info = client.publish(topic, body, qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise undelivered("alert.mqtt.no_ack", broker=f"{parts.hostname}:{port}",
                              topic=topic, seconds=f"{timeout_s:g}")
        return {"topic": topic, "mid": info.mid, "broker": f"{parts.hostname}:{port}"}
    finally:
        client.disconnect()
        client.loop_stop()


__all__ = ["AlertService", "DeliveryError", "RetrainFunction", "failure_words", "post_json",
           "publish_mqtt", "undelivered", "values_words"]
