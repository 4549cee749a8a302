"""`planta serve`: the API, the Open Inference Protocol and the job worker in one process."""

from __future__ import annotations

import ipaddress
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from planta.cli.output import console, handle_errors
from planta.errors import ConfigError


class JSONFormatter(logging.Formatter):
    """One JSON object per line: what log collectors on a plant server can parse."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(),
                               "level": record.levelname.lower(), "logger": record.name,
                               "message": record.getMessage()}
        for key in ("request_id", "method", "path", "status", "duration_ms", "caller"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True  # planta's guard logs requests itself


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _stopped(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@handle_errors
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but "
                                   "loopback turns token authentication on."),
          port: int = typer.Option(8000, help="Port to listen on."),
          require_auth: bool = typer.Option(False, "--require-auth",
                                            help="Ask for tokens on loopback too."),
          cert: Path = typer.Option(None, "--cert", help="TLS certificate (PEM) of this "
                                    "server, from the plant's IT."),
          key: Path = typer.Option(None, "--key", help="TLS private key (PEM) for --cert."),
          allowed_host: list[str] = typer.Option([], "--allowed-host", help="Extra host "
                                                 "name clients use to reach this server "
                                                 "(repeatable)."),
          worker: bool = typer.Option(True, "--worker/--no-worker", help="Run async jobs in "
                                      "this process (or run `planta worker` separately)."),
          scheduler: bool = typer.Option(None, "--scheduler/--no-scheduler", help="Run the "
                                         "scheduled jobs (monitoring, reports, retraining) in "
                                         "this process; default: [scheduler] enabled in "
                                         "planta.toml (true), or run `planta scheduler` "
                                         "separately.", show_default=False),
          access_log: bool = typer.Option(False, "--access-log", help="Log every request "
                                          "(one JSON line each)."),
          log_predictions: bool = typer.Option(True, "--log-predictions/--no-log-predictions",
                                               hidden=True, help="Only for measuring the "
                                               "log's cost: predictions are not logged."),
          max_records: int = typer.Option(10_000, "--max-records", min=1, hidden=True,
                                          help="Records per predict request (tests)."),
          log_level: str = typer.Option("info", help="debug, info, warning or error.")) -> None:
    """Serve every use case's production model over HTTP (API, V2 protocol, jobs).

    Promotions and rollbacks take effect within a second, without a restart.
    """
    import uvicorn

    from planta.server.app import create_app
    from planta.server.runtime import ServeOptions
    from planta.services.workspace import Workspace

    if (cert is None) != (key is None):
        raise ConfigError("TLS needs both --cert and --key.",
                          hint="Pass the certificate and its private key, both PEM files.")
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise ConfigError(f"Cannot read the TLS file {path}.",
                              hint="Check the path and that planta's user may read it.")
    configure_logging(log_level)
    ws = Workspace.open()
    settings = ws.project.settings
    auth = require_auth or not is_loopback(host)
    options = ServeOptions(host=host, port=port, require_auth=auth,
                           allowed_hosts=tuple(allowed_host), worker=worker,
                           scheduler=settings.scheduler if scheduler is None else scheduler,
                           cert=str(cert) if cert else None, key=str(key) if key else None,
                           access_log=access_log, log_predictions=log_predictions,
                           max_records=max_records,
                           log_durability=getattr(settings, "log_durability", "full"))
    if auth:
        from planta.store.tokens import TokenStore

        if not TokenStore(ws.store, ws.audit).any_active():
            ws.close()
            raise ConfigError(
                "Token authentication is on (the server listens beyond this machine, or "
                "--require-auth was given), but no token exists: nobody could use it.",
                hint="Create one first: `planta token create --role operator --name <you>`.")
    app = create_app(ws, options)
    scheme = "https" if cert else "http"
    shown = f"[{host}]" if ":" in host else host
    console.print(f"planta serving {ws.project.name} at {scheme}://{shown}:{port} "
                  f"(API docs: {scheme}://{shown}:{port}/docs; tokens "
                  f"{'required' if auth else 'not required on loopback'}). Ctrl-C stops it.",
                  soft_wrap=True)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    # uvicorn drains on SIGTERM, then raises the signal again to die by it (exit 143); a
    # server that stopped cleanly exits 0 instead, which service managers read as success.
    signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, log_level=log_level,
                    access_log=False, http="httptools", loop=loop, server_header=False,
                    ssl_certfile=str(cert) if cert else None,
                    ssl_keyfile=str(key) if key else None, timeout_graceful_shutdown=15,
                    lifespan="on")
    finally:
        ws.close()


__all__ = ["JSONFormatter", "configure_logging", "is_loopback", "serve"]
