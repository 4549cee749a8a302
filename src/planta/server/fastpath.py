"""The short way in for the prediction routes: the guard hands them straight to their handler.

A one-record prediction costs the model ~40 µs, but FastAPI's way to its handler (eleven ASGI
layers: error, telemetry, body-limit and exception middleware, the exit stack, nested routers
matched in order, dependency solving for the path parameter) cost more than the model and the
contract check together (bench/RESULTS.md, "Serving"). For the three routes that score, the
guard (which has already checked Host, Origin, size and token) calls the *same* handler
functions as FastAPI would, with the same Starlette ``Request``, and answers their exceptions
with the app's own exception handlers, as Starlette's middleware would. Everything else (and
these routes under a ``root_path``) goes through FastAPI unchanged.

What FastAPI adds there and this path does not: its OpenTelemetry spans, which run only when
an OpenTelemetry provider is configured in the process (planta configures none).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from planta.server.guard import Receive, Scope, Send


@dataclass(frozen=True)
class FastRoute:
    """What ``scope["route"]`` holds for a request that took the short way (the metrics read
    its ``path``, the route template, exactly as for a FastAPI route)."""

    path: str
    pattern: re.Pattern[str]
    endpoint: Callable[..., Any]
    name: str


def _route(path: str, endpoint: Callable[..., Any]) -> FastRoute:
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"  # Starlette's str convertor
    return FastRoute(path=path, pattern=re.compile(regex), endpoint=endpoint,
                     name=endpoint.__name__)


class FastPath:
    """The scoring routes of ``app`` (a planta FastAPI app), matched without its router."""

    PREFIXES = ("/v1/usecases/", "/v2/models/")

    def __init__(self, app: Any) -> None:
        from planta.server.routes import v1, v2

        self.app = app
        self.routes = (_route("/v1/usecases/{name}/predict", v1.predict),
                       _route("/v2/models/{name}/infer", v2.infer),
                       _route("/v2/models/{name}/versions/{version}/infer", v2.version_infer))
        handlers = dict(app.exception_handlers)
        # Starlette's split: Exception (and 500) answer in ServerErrorMiddleware, which then
        # re-raises; every other class answers in ExceptionMiddleware, which does not.
        self.server_error = handlers.pop(Exception, None) or handlers.pop(500, None)
        self.handlers = {k: v for k, v in handlers.items() if isinstance(k, type)}

    def match(self, scope: Scope) -> tuple[FastRoute, dict[str, str]] | None:
        """The route and path parameters of a scoring request, or None (FastAPI answers)."""
        if scope["method"] != "POST" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not path.startswith(self.PREFIXES):
            return None
        for route in self.routes:
            found = route.pattern.match(path)
            if found is not None:
                return route, found.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, route: FastRoute,
                       params: dict[str, str]) -> None:
        scope["app"] = self.app
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request, **params)
        except Exception as exc:
            handler = next((self.handlers[c] for c in type(exc).__mro__ if c in self.handlers),
                           None)
            if handler is not None:
                await (await handler(request, exc))(scope, receive, send)
                exc.__traceback__ = None
                return
            if self.server_error is None:
                raise
            await (await self.server_error(request, exc))(scope, receive, send)
            raise
        await response(scope, receive, send)


__all__ = ["FastPath", "FastRoute"]
