"""The door of the server: one ASGI middleware that every request passes first.

In order: give the request an id; refuse a Host the server does not answer to (DNS rebinding
against a loopback server) and a cross-site Origin on state-changing methods; refuse a body over
the size limit before reading it (Content-Length) and while reading it (chunked uploads);
identify the caller by token; count and time the request for ``/metrics``.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: it adds no task or copy per request,
which matters at thousands of requests a second.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from planta.core.lifecycle import Role
from planta.server.errors import HTTPProblem, accepted_lang, keyed_problem, problem
from planta.server.metrics import Metrics
from planta.store.ids import encode

log = logging.getLogger("planta.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Routes anyone may call, token or not: liveness and readiness probes.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready",
                        "/ui/login"})
# The UI's own files (CSS, JS): the login page needs them before anyone has a token.
OPEN_PREFIXES = ("/ui/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_UPLOAD_PAGE = re.compile(r"/ui/usecases/[^/]+/(?:batch|feedback)")
# A request id only ties log lines together: a time-ordered ULID whose random part comes from a
# non-cryptographic generator (planta.store.ids.new_id draws from os.urandom).
_ids = random.Random()  # nosec B311 - not a secret


def new_request_id() -> str:
    """A fresh ULID (26 Crockford base32 characters: 48 bits of milliseconds, 80 random)."""
    return encode((time.time_ns() // 1_000_000) << 80 | _ids.getrandbits(80))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role, or the local user when auth is off."""

    name: str
    role: Role
    token_id: str | None = None

    def allows(self, needed: Role) -> bool:
        return self.role.allows(needed)


class TokenVerifier(Protocol):
    def verify(self, secret: str) -> Any: ...


@dataclass
class GuardConfig:
    """What the guard enforces."""

    require_auth: bool
    allowed_hosts: frozenset[str] | None      # None: any Host (a non-loopback bind with auth)
    max_body_bytes: int
    max_upload_bytes: int
    local_user: str = "local"
    access_log: bool = False
    lang: str = "en"          # the server's language, for refusals without Accept-Language


def body_too_large(limit: int) -> HTTPProblem:
    """413: the body is (or says it will be) over ``limit`` bytes."""
    return keyed_problem(413, "http.body_too_large", rule="body_too_large",
                         limit=f"{limit:,}")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any bytes
                return None
    return None


def host_name(value: str) -> str:
    """The host part of a Host header or an Origin, lower-cased, without the port."""
    if "://" in value:
        value = urlsplit(value).netloc
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """The ASGI middleware; ``tokens`` verifies secrets (planta.store.tokens.TokenStore)."""

    def __init__(self, app: ASGIApp, *, config: GuardConfig, metrics: Metrics,
                 tokens: TokenVerifier | None, fast: Any = None) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.tokens = tokens
        self.local = Principal(config.local_user, Role.ADMIN)  # every caller when auth is off
        # planta.server.fastpath.FastPath: the scoring routes' short way past FastAPI's layers
        # (None: every request goes through FastAPI).
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _header(scope, b"x-request-id")
        request_id = rid if rid and _REQUEST_ID.match(rid) else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status_box = [500]

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            self._check_host(scope)
            limit = self._limit(scope)
            state["principal"] = self._principal(scope)
            receive = self._limited(receive, limit)
            fast = self.fast.match(scope) if self.fast is not None else None
            if fast is not None:
                await self.fast(scope, receive, send_wrapped, *fast)
            else:
                await self.app(scope, receive, send_wrapped)
        except HTTPProblem as exc:
            lang = accepted_lang(_header(scope, b"accept-language"), self.config.lang)
            await problem(exc, request_id, lang=lang)(scope, receive, send_wrapped)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            status = status_box[0]
            m = self.metrics
            m.child(m.requests, path, scope["method"], str(status)).inc()
            m.child(m.latency, path).observe(time.perf_counter() - start)
            if status >= 400:
                m.child(m.errors, path, str(status)).inc()
            if self.config.access_log:
                principal = state.get("principal")
                log.info("%s %s %s", scope["method"], scope["path"], status, extra={
                    "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "caller": principal.name if principal is not None else None})

    def _check_host(self, scope: Scope) -> None:
        allowed = self.config.allowed_hosts
        host = _header(scope, b"host")
        if allowed is not None and (host is None or host_name(host) not in allowed):
            raise keyed_problem(421 if host else 400, "http.host_not_allowed",
                                rule="host_not_allowed", host=repr(host))
        if scope["method"] in SAFE_METHODS:
            return
        origin = _header(scope, b"origin")
        if origin is None:
            return  # not a browser, or a same-origin request from an old one
        # A wildcard bind answers any Host: then a page may only post to the host it came from.
        origins = allowed if allowed is not None else (
            frozenset({host_name(host)}) if host else frozenset())
        if origin == "null" or host_name(origin) not in origins:
            raise keyed_problem(403, "http.cross_site", rule="cross_site_request",
                                origin=origin)

    def _limit(self, scope: Scope) -> int:
        path: str = scope["path"]
        limit = (self.config.max_upload_bytes if path.endswith(("/jobs", "/bundles", "/feedback"))
                 or path == "/ui/wizard/upload"
                 or (path.startswith("/ui/usecases/") and _UPLOAD_PAGE.fullmatch(path))
                 else self.config.max_body_bytes)
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise keyed_problem(400, "http.bad_content_length",
                                    rule="bad_content_length") from None
            if declared > limit:
                raise body_too_large(limit)
        return limit

    def _limited(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise body_too_large(limit)
            return message

        return wrapped

    def _principal(self, scope: Scope) -> Principal | None:
        if not self.config.require_auth:
            return self.local
        secret = None
        auth = _header(scope, b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            secret = auth[7:].strip()
        if secret is None:
            secret = _cookie(_header(scope, b"cookie"), "planta_token")
        if secret is None:
            if scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
                return None
            raise keyed_problem(401, "http.token_missing", rule="token_missing")
        token = self.tokens.verify(secret) if self.tokens is not None else None
        if token is None:
            if scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
                return None
            raise keyed_problem(401, "http.token_invalid", rule="token_invalid")
        return Principal(token.name, Role(token.role), token.id)


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def require(scope_state: dict[str, Any], needed: Role, doing: str) -> Principal:
    """The caller, if their role allows ``doing``; AccessError (403) otherwise."""
    from planta.errors import AccessError

    principal: Principal | None = scope_state.get("principal")
    if principal is None:
        raise keyed_problem(401, "http.token_missing", rule="token_missing")
    if not principal.allows(needed):
        raise AccessError(f"{principal.name} has the {principal.role.value} role; {doing} "
                          f"needs {needed.value} or above.",
                          hint="Ask an admin for a token with that role.")
    return principal


__all__ = ["LOOPBACK_HOSTS", "OPEN_PATHS", "OPEN_PREFIXES", "Guard", "GuardConfig", "Principal",
           "host_name", "new_request_id", "require"]
