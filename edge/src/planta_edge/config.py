"""The device's configuration: one small TOML file, read once at start.

    device = "press-07"                      # the name it was enrolled under
    state_dir = "/var/lib/planta-edge"       # outbox, bundles, local log
    bundle = "failure-v3.edge.planta"        # optional: a bundle to start with (else from hub)
    trusted_keys = ["ed25519:BASE64..."]     # public keys whose signatures it accepts

    [hub]        url, token, batch_rows = 500, heartbeat_s = 30, max_backoff_s = 30, ca_file
    [mqtt]       host, port = 1883, client_id, username, password, tls_ca, tls_cert, tls_key,
                 qos = 1, output_topic, output_qos = 1,
                 dedup_fields = ["reading_id"], dedup_window = 10000  (see planta_edge.mqtt)
    [[mqtt.inputs]]  topic = "plant/+/readings", entity = "{1}"  ({n}: topic level n, 0-based)
    [http]       host = "127.0.0.1", port = 8765
    [folder]     path, poll_s = 1.0
    [outbox]     max_rows = 1000000, max_mb = 512
    [log]        path (default state_dir/predictions.jsonl), max_mb = 50

A section left out turns that part off (no ``[mqtt]``: no broker). A wrong value stops the start
with its key and what was expected.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planta_edge.errors import ConfigError


@dataclass(frozen=True)
class TopicInput:
    """One subscription: an MQTT topic filter and how its topics name the entity."""

    topic: str
    entity: str | None = None

    def entity_of(self, topic: str) -> str | None:
        """The entity a topic names: ``{n}`` is topic level n (0-based), else literal text.

        >>> TopicInput("plant/+/readings", "{1}").entity_of("plant/press-07/readings")
        'press-07'
        """
        if self.entity is None:
            return None
        levels = topic.split("/")
        text = self.entity
        for i, level in enumerate(levels):
            text = text.replace("{" + str(i) + "}", level)
        return text


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    qos: int = 1
    keepalive_s: int = 30
    inputs: tuple[TopicInput, ...] = ()
    output_topic: str | None = None
    output_qos: int = 1
    # Payload fields that identify a reading (with the topic's entity), and how many recent
    # readings are remembered to drop a publisher's re-send (0: off). See planta_edge.mqtt.
    dedup_fields: tuple[str, ...] = ("reading_id",)
    dedup_window: int = 10_000


@dataclass(frozen=True)
class EdgeConfig:
    """Everything the runtime reads from its config file."""

    device: str
    state_dir: Path
    bundle: Path | None = None
    trusted_keys: tuple[str, ...] = ()
    hub_url: str | None = None
    hub_token: str | None = None
    hub_ca_file: str | None = None
    batch_rows: int = 500
    heartbeat_s: float = 30.0
    max_backoff_s: float = 30.0
    mqtt: MqttConfig | None = None
    http_host: str | None = None
    http_port: int = 8765
    folder: Path | None = None
    folder_poll_s: float = 1.0
    outbox_max_rows: int | None = 1_000_000
    outbox_max_bytes: int | None = 512 * 1024 * 1024
    log_path: Path | None = None
    log_max_bytes: int = 50 * 1024 * 1024
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> EdgeConfig:
        """Read and check a config file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"Cannot read the config file {path}: {exc.strerror}.") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"The config file {path} is not valid TOML: {exc}.") from exc
        return cls.from_dict(data, base=path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path = Path()) -> EdgeConfig:
        def get(section: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any,
                where: str = "") -> Any:
            value = section.get(key, default)
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"{where}{key} = {value!r} in the config file is not "
                                  f"{_kind(kind)}.")
            return value

        device = get(data, "device", str, None)
        if not device:
            raise ConfigError("The config file needs device = \"<name>\" (the name the device "
                              "was enrolled under).")
        state = base / get(data, "state_dir", str, "state")
        bundle = get(data, "bundle", str, None)
        keys = get(data, "trusted_keys", list, [])
        hub = get(data, "hub", dict, {}) or {}
        outbox = get(data, "outbox", dict, {}) or {}
        logs = get(data, "log", dict, {}) or {}
        http = get(data, "http", dict, None)
        folder = get(data, "folder", dict, None)
        mqtt = get(data, "mqtt", dict, None)
        mcfg = None
        if mqtt is not None:
            inputs = tuple(TopicInput(get(i, "topic", str, None, "mqtt.inputs."),
                                      get(i, "entity", str, None, "mqtt.inputs."))
                           for i in get(mqtt, "inputs", list, [], "mqtt."))
            if any(not i.topic for i in inputs):
                raise ConfigError("Each [[mqtt.inputs]] needs topic = \"...\".")
            opts = {k: get(mqtt, k, str, None, "mqtt.") for k in (
                "client_id", "username", "password", "tls_ca", "tls_cert", "tls_key",
                "output_topic")}
            dedup = get(mqtt, "dedup_fields", list, ["reading_id"], "mqtt.")
            if not all(isinstance(f, str) and f for f in dedup):
                raise ConfigError(f"mqtt.dedup_fields = {dedup!r} in the config file is not a "
                                  "list of field names.")
            window = get(mqtt, "dedup_window", int, 10_000, "mqtt.")
            if window < 0:
                raise ConfigError(f"mqtt.dedup_window = {window} in the config file is "
                                  "negative; use 0 to turn the duplicate check off.")
            mcfg = MqttConfig(host=get(mqtt, "host", str, "127.0.0.1", "mqtt."),
                              port=get(mqtt, "port", int, 1883, "mqtt."),
                              qos=get(mqtt, "qos", int, 1, "mqtt."),
                              output_qos=get(mqtt, "output_qos", int, 1, "mqtt."),
                              keepalive_s=get(mqtt, "keepalive_s", int, 30, "mqtt."),
                              inputs=inputs, dedup_fields=tuple(dedup),
                              dedup_window=window, **opts)
        max_mb = get(outbox, "max_mb", (int, float), 512, "outbox.")
        return cls(
            device=device, state_dir=state,
            bundle=None if bundle is None else base / bundle,
            trusted_keys=tuple(str(k) for k in keys),
            hub_url=get(hub, "url", str, None, "hub."),
            hub_token=get(hub, "token", str, None, "hub."),
            hub_ca_file=get(hub, "ca_file", str, None, "hub."),
            batch_rows=get(hub, "batch_rows", int, 500, "hub."),
            heartbeat_s=float(get(hub, "heartbeat_s", (int, float), 30, "hub.")),
            max_backoff_s=float(get(hub, "max_backoff_s", (int, float), 30, "hub.")),
            mqtt=mcfg,
            http_host=None if http is None else get(http, "host", str, "127.0.0.1", "http."),
            http_port=8765 if http is None else get(http, "port", int, 8765, "http."),
            folder=None if folder is None else base / get(folder, "path", str, "inbox",
                                                          "folder."),
            folder_poll_s=1.0 if folder is None else float(
                get(folder, "poll_s", (int, float), 1.0, "folder.")),
            outbox_max_rows=get(outbox, "max_rows", int, 1_000_000, "outbox."),
            outbox_max_bytes=None if not max_mb else int(max_mb * 1024 * 1024),
            log_path=None if logs.get("path") is None else base / str(logs["path"]),
            log_max_bytes=int(float(get(logs, "max_mb", (int, float), 50, "log.")) * 1024 * 1024),
        )


def _kind(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", float: "a number", list: "a list",
             dict: "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


__all__ = ["EdgeConfig", "MqttConfig", "TopicInput"]
