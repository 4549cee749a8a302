"""The ``planta-edge`` command: run the edge runtime from a config file.

    planta-edge run --config edge.toml       predict until SIGTERM / Ctrl-C
    planta-edge status --config edge.toml    the outbox on disk: waiting, dropped

Exit codes as planta's: 0 done, 1 error (one line, in plain words), 2 usage.

:class:`EdgeApp` assembles the parts from an :class:`~planta_edge.config.EdgeConfig`:
outbox, runtime, outputs (local log, MQTT topic), inputs (MQTT, HTTP, CSV folder), hub sync and
updates. Tests and the benchmark build one directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from planta_edge import __version__
from planta_edge.config import EdgeConfig
from planta_edge.errors import PlantaError
from planta_edge.outbox import Outbox
from planta_edge.runtime import EdgeRuntime, LocalLog, Model, Output

log = logging.getLogger("planta_edge")


class EdgeApp:
    """One device's runtime, assembled from its config.

    Args:
        cfg: the configuration.
        model: a model to start with; otherwise the config's bundle, the last bundle the
            device switched to (kept in ``state_dir``), or none until the hub sends one.
    """

    def __init__(self, cfg: EdgeConfig, model: Model | None = None) -> None:
        self.cfg = cfg
        self.started = time.monotonic()
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(cfg.state_dir / "outbox.db", max_rows=cfg.outbox_max_rows,
                             max_bytes=cfg.outbox_max_bytes)
        self.local_log = LocalLog(cfg.log_path or cfg.state_dir / "predictions.jsonl",
                                  max_bytes=cfg.log_max_bytes)
        outputs: list[Output] = [self.local_log]
        self.updates: Any = None
        if model is None:
            model = self._initial_model()
        self.runtime = EdgeRuntime(model, self.outbox, outputs=outputs)
        self.mqtt: Any = None
        if cfg.mqtt is not None:
            from planta_edge.mqtt import MqttLink

            self.mqtt = MqttLink(cfg.mqtt, self.runtime, device=cfg.device)
            outputs.append(self.mqtt)
            self.runtime.outputs = outputs
        self.http: Any = None
        if cfg.http_host is not None:
            from planta_edge.httpin import HttpInput

            self.http = HttpInput(self.runtime, host=cfg.http_host, port=cfg.http_port,
                                  status=self.status)
        self.folder: Any = None
        if cfg.folder is not None:
            from planta_edge.folder import FolderInput

            self.folder = FolderInput(self.runtime, cfg.folder, poll_s=cfg.folder_poll_s)
        self.sync: Any = None
        if cfg.hub_url and cfg.hub_token:
            from planta_edge.sync import HubLink, Syncer

            link = HubLink(cfg.hub_url, cfg.hub_token, ca_file=cfg.hub_ca_file)
            self.link = link
            self.sync = Syncer(self.outbox, link, batch_rows=cfg.batch_rows,
                               heartbeat_s=cfg.heartbeat_s, max_backoff_s=cfg.max_backoff_s,
                               status=self.status,
                               on_heartbeat=self._on_heartbeat)

    def _initial_model(self) -> Model | None:
        from planta_edge.updates import Updater

        self.updates = Updater(self.cfg.state_dir, self.cfg.trusted_keys)
        return self.updates.load_current(self.cfg.bundle)

    def _on_heartbeat(self, answer: dict[str, Any]) -> None:
        if self.updates is not None and self.sync is not None:
            self.updates.consider(answer.get("bundle"), self.runtime, self.link)

    def status(self) -> dict[str, Any]:
        """The device's state, for the heartbeat and ``GET /status``."""
        model = self.runtime.model
        return {
            "device": self.cfg.device, "edge_version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "model": None if model is None else {"usecase": model.usecase,
                                                 "version": model.version,
                                                 "digest": model.digest},
            "outbox": self.outbox.stats().to_dict(),
            "runtime": self.runtime.stats.to_dict(),
            "mqtt": None if self.mqtt is None else self.mqtt.stats(),
            "updates": None if self.updates is None else self.updates.stats(),
        }

    def start(self) -> None:
        for part in (self.http, self.folder, self.mqtt, self.sync):
            if part is not None:
                part.start()

    def stop(self) -> None:
        for part in (self.mqtt, self.folder, self.http):
            if part is not None:
                part.stop()
        self.runtime.close()
        if self.sync is not None:
            self.sync.stop()
        self.outbox.close()
        self.local_log.close()


def _run(cfg: EdgeConfig) -> int:
    app = EdgeApp(cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    model = app.runtime.model
    log.info("planta-edge %s on device %s: %s", __version__, cfg.device,
             "no model yet (waiting for the hub)" if model is None
             else f"{model.usecase} version {model.version}")
    stop.wait()
    app.stop()
    return 0


def _status(cfg: EdgeConfig) -> int:
    box = Outbox(cfg.state_dir / "outbox.db", max_rows=cfg.outbox_max_rows,
                 max_bytes=cfg.outbox_max_bytes)
    try:
        print(json.dumps({"device": cfg.device, "outbox": box.stats().to_dict()}, indent=2))
    finally:
        box.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    parser = argparse.ArgumentParser(prog="planta-edge", description=(
        "planta's edge runtime: predictions beside the machine, stored first, synced later."))
    parser.add_argument("--version", action="version", version=f"planta-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the runtime until SIGTERM or Ctrl-C"),
                       ("status", "the outbox on disk: predictions waiting, dropped")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", "-c", type=Path, default=Path("edge.toml"),
                       help="the device's TOML config file (default: edge.toml)")
        p.add_argument("--verbose", "-v", action="store_true", help="log more")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = EdgeConfig.load(args.config)
        return _run(cfg) if args.command == "run" else _status(cfg)
    except PlantaError as exc:
        print(f"planta-edge: {exc}", file=sys.stderr)
        return exc.exit_code


__all__ = ["EdgeApp", "main"]
