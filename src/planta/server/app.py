"""The server's factory: one FastAPI app for the API, the Open Inference Protocol and the UI.

    create_app(workspace, options)
      Guard (request id, Host/Origin, body limit, token, metrics)
        ├─ FastPath: POST .../predict and .../infer, the same handlers past FastAPI's router
        └─ FastAPI
             ├─ /healthz /readyz /metrics            routes/ops.py
             ├─ /v1/...                              routes/v1.py, routes/versions.py, jobs
             ├─ /v2/...                              routes/v2.py (KServe V2 / Open Inference)
             ├─ /ui/...  /ui/static/...              planta.ui (server-rendered pages)
             └─ /docs /openapi.json                  written from the contracts (openapi.py)

Start-up loads the live models (hub), opens the prediction log's writer and, unless told not
to, a job worker thread and the scheduler thread; shutdown drains the log queue before the
process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

import planta
from planta.server import errors
from planta.server.fastpath import FastPath
from planta.server.guard import LOOPBACK_HOSTS, Guard, GuardConfig
from planta.server.hub import Hub
from planta.server.metrics import Metrics
from planta.server.openapi import with_usecases
from planta.server.runtime import Runtime, ServeOptions
from planta.services.workspace import Workspace

log = logging.getLogger("planta.server")
# PLANTA_FAST_PATH=off: the scoring routes go through FastAPI's router like every other route
# (only for measuring the short way's gain, or as a way out; planta.server.fastpath).
FAST_PATH_ENV = "PLANTA_FAST_PATH"


def allowed_hosts(options: ServeOptions) -> frozenset[str] | None:
    """Host names the server answers to; None (any) for a wildcard bind."""
    if options.host in ("0.0.0.0", "::", ""):  # nosec B104 - only the check, not a bind
        return frozenset(h.lower() for h in options.allowed_hosts) or None
    names = {options.host.lower(), *LOOPBACK_HOSTS, *(h.lower() for h in options.allowed_hosts)}
    if ":" in options.host and not options.host.startswith("["):
        names.add(f"[{options.host.lower()}]")
    return frozenset(names)


def build_runtime(ws: Workspace, options: ServeOptions) -> Runtime:
    from planta.store.feedback import FeedbackStore
    from planta.store.jobs import JobQueue
    from planta.store.predictions import PredictionLog
    from planta.store.tokens import TokenStore

    metrics = Metrics()
    hub = Hub(ws, poll_s=options.poll_s)
    # No extra wait for company: the runtime hands each event-loop turn's entries over
    # together, and entries queue up by themselves while a commit runs.
    plog = PredictionLog(ws.store, durability=options.log_durability, max_wait_ms=0)
    rt = Runtime(ws=ws, options=options, hub=hub, metrics=metrics, log=plog,
                 feedback=FeedbackStore(ws.store, plog), jobs=JobQueue(ws.store),
                 tokens=TokenStore(ws.store, ws.audit))

    def gauges() -> None:
        metrics.log_queue.set(getattr(plog, "depth", 0))
        metrics.log_rows.set(getattr(plog, "written", 0))
        metrics.log_commits.set(getattr(plog, "commits", 0))
        try:
            for status, count in rt.jobs.counts().items():
                metrics.jobs.labels(status).set(count)
        except Exception as exc:  # a scrape must not fail because the store is busy
            log.warning("job counts unavailable: %s", exc)
        metrics.model_info.clear()
        for name, route in hub.routing.routes.items():
            for kind, scorer in (("production", route.production), ("canary", route.canary),
                                 ("shadow", route.shadow)):
                if scorer is not None:
                    metrics.model_info.labels(name, str(scorer.version), kind).set(1)

    metrics.on_collect(gauges)
    return rt


def create_app(ws: Workspace, options: ServeOptions | None = None) -> Any:
    """The ASGI application (the guard around FastAPI)."""
    options = options or ServeOptions()
    rt = build_runtime(ws, options)
    worker_stop = threading.Event()
    worker_thread: list[threading.Thread] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt.hub.start()
        start = getattr(rt.log, "start", None)
        if start is not None:
            start()
        if options.worker:
            worker_thread.append(_start_worker(rt, worker_stop))
        if options.scheduler:
            worker_thread.append(_start_scheduler(rt, worker_stop))
            # The first read of a year of log (seconds) happens here, not in a page. Not
            # joined at shutdown: a daemon that only fills caches.
            from planta.services.warmup import start_warming

            start_warming(rt.ws, worker_stop)
        retention = asyncio.get_running_loop().create_task(rt.retention_loop())
        log.info("planta %s serving %s", planta.__version__,
                 ", ".join(sorted(rt.hub.routing.routes)) or "no use case yet")
        # Start-up left a large heap (web framework, model libraries, the models): put it out
        # of the cyclic collector's sight. Otherwise each full collection walks all of it and
        # stops the event loop for ~100 ms, every request in flight with it (measured: p99 at
        # c=8 went from ~80 ms to ~20 ms; bench/RESULTS.md, "Serving").
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            retention.cancel()
            await rt.drain()
            worker_stop.set()
            for t in worker_thread:
                t.join(timeout=30)
            rt.hub.stop()
            rt.log.close(drain=True)

    app = FastAPI(title="planta", version=planta.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Predictions, feedback and model versions of this plant's use "
                              "cases. Every prediction is checked against the use case's "
                              "contract and logged before it is answered.")
    app.state.runtime = rt
    app.add_exception_handler(Exception, errors.handle)
    app.add_exception_handler(planta.errors.PlantaError, errors.handle)  # type: ignore[arg-type]
    # Its own handler, so that Starlette answers it as a 4xx and does not re-raise it as a crash.
    app.add_exception_handler(OverflowError, errors.handle)
    app.add_exception_handler(StarletteHTTPException, errors.handle_framework)
    app.add_exception_handler(RequestValidationError, errors.handle_framework)
    from planta import ui
    from planta.server.routes import alerts as alert_routes
    from planta.server.routes import devices, monitor, ops, v1, v2, versions
    from planta.server.routes import jobs as jobs_routes
    from planta.server.routes import performance as performance_routes

    for module in (ops, v1, versions, jobs_routes, v2, devices, monitor, performance_routes,
                   alert_routes, ui):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=ui.STATIC_DIR), name="ui-static")
    _add_docs(app, rt)
    guard = Guard(app, config=GuardConfig(
        require_auth=options.require_auth, allowed_hosts=allowed_hosts(options),
        max_body_bytes=options.max_body_bytes, max_upload_bytes=options.max_upload_bytes,
        local_user=ws.actor, access_log=options.access_log, lang=ws.project.settings.lang),
        metrics=rt.metrics,
        tokens=rt.tokens,
        fast=None if os.environ.get(FAST_PATH_ENV, "").lower() in ("0", "off", "no", "false")
        else FastPath(app))
    guard.fastapi = app  # type: ignore[attr-defined]  # tests and the CLI reach the app here
    return guard


def _add_docs(app: FastAPI, rt: Runtime) -> None:
    import swagger_ui_bundle

    app.mount("/static/docs", StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path)),
              name="docs-static")
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        generation = rt.hub.routing.generation
        if cache.get("generation") != generation:
            app.openapi_schema = None
            base = FastAPI.openapi(app)
            scorers = {n: r.production or r.canary for n, r in rt.hub.routing.routes.items()
                       if (r.production or r.canary) is not None}
            cache["doc"] = with_usecases(base, scorers, rt.options.max_records)  # type: ignore[arg-type]
            cache["generation"] = generation
        doc: dict[str, Any] = cache["doc"]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="planta API",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css",
                                   swagger_favicon_url="/static/docs/favicon-32x32.png")

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return Response(status_code=307, headers={"location": "/ui"})


def _start_scheduler(rt: Runtime, stop: threading.Event) -> threading.Thread:
    """The project's scheduled jobs, in a thread (one scheduler per project runs them: a
    second server waits on the lease and takes over if this one dies)."""
    from planta.services.scheduler import Scheduler

    scheduler = Scheduler(rt.ws, say=lambda text: log.info("%s", text))

    def loop() -> None:
        try:
            scheduler.run(stop)
        except Exception as exc:  # the API keeps serving; the log says why
            log.error("the scheduler stopped: %s", exc, exc_info=True)

    thread = threading.Thread(target=loop, name="planta-scheduler", daemon=True)
    thread.start()
    return thread


def _start_worker(rt: Runtime, stop: threading.Event) -> threading.Thread:
    from planta.services.jobs import Worker

    worker = Worker(rt.ws, owner=f"server-{rt.started_at:%H%M%S}", log=rt.log)

    def loop() -> None:
        try:
            worker.run(stop)
        except Exception as exc:  # the API keeps serving; /readyz and the log say why
            log.error("the job worker stopped: %s", exc, exc_info=True)

    thread = threading.Thread(target=loop, name="planta-worker", daemon=True)
    thread.start()
    return thread


__all__ = ["allowed_hosts", "build_runtime", "create_app"]
