"""Settings: environment variables ``PLANTA_*`` over ``planta.toml`` over defaults.

The order is declared here and nowhere else. Settings are read once at an entry point (CLI,
server) and passed down; core code never reads the environment.

    key              env var               planta.toml           default
    store_url        PLANTA_STORE_URL      [store] url           sqlite:///.planta/planta.db
    artifacts_url    PLANTA_ARTIFACTS_URL  [store] artifacts     .planta/artifacts
    four_eyes        PLANTA_FOUR_EYES      [policy] four_eyes    false
    user             PLANTA_USER           -                     the OS user
    lang             PLANTA_LANG           [ui] lang             en
    log_retention_days  PLANTA_LOG_RETENTION_DAYS  [serve] log_retention_days  365 (0 keeps all)
    log_durability   PLANTA_LOG_DURABILITY [serve] log_durability  full (or process)
    signing_keys     PLANTA_SIGNING_KEYS   [signing] keys        ~/.config/planta/signing
                     (the hub's bundle-signing keys; must be outside the project folder)
    webhook_url      PLANTA_WEBHOOK_URL    [alerts] webhook_url  none (the webhook action needs it)
    mqtt_url         PLANTA_MQTT_URL       [alerts] mqtt_url     none (mqtt://host:1883)
    mqtt_topic       PLANTA_MQTT_TOPIC     [alerts] mqtt_topic   planta/{project}/alerts/{usecase}
    scheduler        PLANTA_SCHEDULER      [scheduler] enabled   true (`planta serve` runs it)

Relative paths and ``sqlite:///relative`` URLs are resolved against the project folder, so a
project folder can be copied, moved or backed up as it is.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planta.errors import ConfigError, keyed

DEFAULT_STORE_URL = "sqlite:///.planta/planta.db"
DEFAULT_ARTIFACTS_URL = ".planta/artifacts"
LANGS = ("en", "es")
DEFAULT_LOG_RETENTION_DAYS = 365
LOG_DURABILITIES = ("full", "process")
DEFAULT_MQTT_TOPIC = "planta/{project}/alerts/{usecase}"


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one project."""

    root: Path
    store_url: str = DEFAULT_STORE_URL
    artifacts_url: str = DEFAULT_ARTIFACTS_URL
    four_eyes: bool = False
    user: str = "planta"
    lang: str = "en"
    # How long the prediction log keeps predictions (a use case's retention_days wins); 0
    # keeps them all. full: an acknowledged prediction survives a power cut; process: only a
    # crash of planta (see planta.store.predictions).
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    log_durability: str = "full"
    # Folder of the hub's Ed25519 signing keys (planta.store.keys); empty: the default below.
    signing_keys: str = ""
    # Where alert actions go (planta.services.alerts); a rule may name its own webhook_url
    # or mqtt_topic. The topic may use {project}, {usecase} and {rule}.
    webhook_url: str = ""
    mqtt_url: str = ""
    mqtt_topic: str = DEFAULT_MQTT_TOPIC
    # Whether `planta serve` also runs the scheduler (planta.services.scheduler).
    scheduler: bool = True

    @property
    def resolved_signing_keys(self) -> Path:
        """The signing-key folder: outside the project, so copies of a project never carry
        the private key. A folder inside the project is refused."""
        if self.signing_keys:
            path = Path(self.signing_keys).expanduser()
            path = path if path.is_absolute() else (self.root / path)
        else:
            path = Path.home() / ".config" / "planta" / "signing"
        path = path.resolve()
        if path == self.root.resolve() or self.root.resolve() in path.parents:
            raise keyed(ConfigError, "set.signing_inside", path=repr(str(path)))
        return path

    @property
    def resolved_store_url(self) -> str:
        """The store URL with a relative SQLite path made absolute against the project root."""
        prefix = "sqlite:///"
        if self.store_url.startswith(prefix):
            path = self.store_url[len(prefix):]
            if path and not path.startswith("/") and path != ":memory:":
                return prefix + str((self.root / path).resolve())
        return self.store_url

    @property
    def resolved_artifacts_url(self) -> str:
        """The artifact URL with a relative folder made absolute against the project root."""
        if "://" in self.artifacts_url:
            return self.artifacts_url
        path = Path(self.artifacts_url)
        return str(path if path.is_absolute() else (self.root / path).resolve())


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise keyed(ConfigError, "set.not_bool", key=key, value=repr(value))


def _days(key: str, value: Any) -> int:
    try:
        days = int(str(value).strip())
    except ValueError:
        days = -1
    if days < 0 or isinstance(value, bool):
        raise keyed(ConfigError, "set.not_days", key=key, value=repr(value))
    return days


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def load_settings(root: Path, toml: Mapping[str, Any], env: Mapping[str, str] | None = None
                  ) -> Settings:
    """Build settings from ``planta.toml`` content and the environment (env wins)."""
    env = os.environ if env is None else env
    store = toml.get("store", {}) or {}
    policy = toml.get("policy", {}) or {}
    ui = toml.get("ui", {}) or {}
    serve = toml.get("serve", {}) or {}
    if not isinstance(store, Mapping) or not isinstance(policy, Mapping) or not isinstance(
            serve, Mapping):
        raise keyed(ConfigError, "set.tables",
                    names={"items": ["[store]", "[policy]", "[serve]"]})
    durability = str(env.get("PLANTA_LOG_DURABILITY") or serve.get("log_durability")
                     or "full").strip().lower()
    if durability not in LOG_DURABILITIES:
        raise keyed(ConfigError, "set.durability", value=repr(durability))
    lang = env.get("PLANTA_LANG") or ui.get("lang") or "en"
    lang = lang.split("_")[0].split(".")[0].lower()
    if lang not in LANGS:
        raise keyed(ConfigError, "set.lang", value=repr(lang), known=", ".join(LANGS))
    return Settings(
        root=root,
        store_url=str(env.get("PLANTA_STORE_URL") or store.get("url") or DEFAULT_STORE_URL),
        artifacts_url=str(env.get("PLANTA_ARTIFACTS_URL") or store.get("artifacts")
                          or DEFAULT_ARTIFACTS_URL),
        four_eyes=_bool("PLANTA_FOUR_EYES" if "PLANTA_FOUR_EYES" in env else "policy.four_eyes",
                        env.get("PLANTA_FOUR_EYES", policy.get("four_eyes", False))),
        user=env.get("PLANTA_USER") or _os_user(),
        lang=lang,
        log_retention_days=_days(
            "PLANTA_LOG_RETENTION_DAYS" if "PLANTA_LOG_RETENTION_DAYS" in env
            else "serve.log_retention_days",
            env.get("PLANTA_LOG_RETENTION_DAYS",
                    serve.get("log_retention_days", DEFAULT_LOG_RETENTION_DAYS))),
        log_durability=durability,
        signing_keys=str(env.get("PLANTA_SIGNING_KEYS")
                         or (toml.get("signing", {}) or {}).get("keys")
                         or (str(Path(env["XDG_CONFIG_HOME"]) / "planta" / "signing")
                             if env.get("XDG_CONFIG_HOME") else "")),
        **_alert_settings(toml, env),
    )


def _alert_settings(toml: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    alerts = toml.get("alerts", {}) or {}
    scheduler = toml.get("scheduler", {}) or {}
    if not isinstance(alerts, Mapping) or not isinstance(scheduler, Mapping):
        raise keyed(ConfigError, "set.tables", names={"items": ["[alerts]", "[scheduler]"]})
    webhook = str(env.get("PLANTA_WEBHOOK_URL") or alerts.get("webhook_url") or "").strip()
    if webhook and not webhook.startswith(("http://", "https://")):
        raise keyed(ConfigError, "set.webhook", value=repr(webhook))
    mqtt = str(env.get("PLANTA_MQTT_URL") or alerts.get("mqtt_url") or "").strip()
    if mqtt and not mqtt.startswith(("mqtt://", "mqtts://")):
        raise keyed(ConfigError, "set.mqtt", value=repr(mqtt))
    key = "PLANTA_SCHEDULER" if "PLANTA_SCHEDULER" in env else "scheduler.enabled"
    return {"webhook_url": webhook, "mqtt_url": mqtt,
            "mqtt_topic": str(env.get("PLANTA_MQTT_TOPIC") or alerts.get("mqtt_topic")
                              or DEFAULT_MQTT_TOPIC),
            "scheduler": _bool(key, env.get("PLANTA_SCHEDULER", scheduler.get("enabled", True)))}


__all__ = ["DEFAULT_ARTIFACTS_URL", "DEFAULT_LOG_RETENTION_DAYS", "DEFAULT_MQTT_TOPIC",
           "DEFAULT_STORE_URL", "LANGS",
           "LOG_DURABILITIES", "Settings", "load_settings"]
