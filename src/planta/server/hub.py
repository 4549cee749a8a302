"""The model hub: which bundle answers each use case, reloaded when the registry changes.

The hub polls the store (a few rows, every ``poll_s``) for the versions in production, canary
and shadow, loads any bundle it does not hold yet (verified against the registry's digest), then
swaps one dictionary. A request takes the routing table once at its start, so a promotion or a
rollback never interrupts a request in flight and needs no restart: it takes effect within one
poll (0.25 s by default).

    Registry (aliases, states) ──poll──► Hub.refresh ──► Routing{usecase: Route}
                                                            │ route(usecase, entity)
                                                            ▼
                                                 (Scorer that answers, route name, shadow?)
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from planta.errors import NotFoundError, keyed
from planta.i18n import said
from planta.services.predict import Scorer
from planta.services.workspace import Workspace
from planta.store.metadata import aliases, model_versions
from planta_edge.bundle import read_bundle

log = logging.getLogger("planta.server")


@dataclass(frozen=True)
class Route:
    """How one use case's live traffic is answered."""

    usecase: str
    production: Scorer | None
    canary: Scorer | None = None
    canary_share: float = 0.0
    shadow: Scorer | None = None

    def choose(self, entity: Any = None, draw: float | None = None) -> tuple[Scorer, str]:
        """The scorer that answers, and the route's name.

        With an entity, the choice is sticky: the same machine always meets the same version
        (a stable hash of the entity, not Python's salted ``hash``). Without one, ``draw`` (a
        uniform number in [0, 1)) decides.
        """
        if self.canary is not None and self.canary_share > 0:
            if entity is not None:
                digest = hashlib.blake2b(str(entity).encode(), digest_size=8).digest()
                draw = int.from_bytes(digest, "big") / 2**64
            if draw is not None and draw < self.canary_share:
                return self.canary, "canary"
            if self.production is None:
                return self.canary, "canary"
        if self.production is None:
            raise keyed(NotFoundError, "api.no_production", name=self.usecase)
        return self.production, "production"


@dataclass
class Routing:
    """Every use case's route, plus the generation (bumped on each change)."""

    routes: dict[str, Route] = field(default_factory=dict)
    generation: int = 0


class Hub:
    """Loads and swaps the scorers that serve live traffic."""

    def __init__(self, ws: Workspace, *, poll_s: float = 0.25) -> None:
        self.ws = ws
        self.poll_s = poll_s
        self.routing = Routing()
        self.last_error: str | None = None
        self._cache: dict[tuple[str, int], Scorer] = {}
        self._signature: tuple[Any, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[Routing], None]] = []
        self._refresh_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load what is live now, then keep polling in a background thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="planta-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def on_change(self, listener: Callable[[Routing], None]) -> None:
        self._listeners.append(listener)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the last good routing; /readyz reports it
                self.last_error = str(exc)
                log.warning("model reload failed: %s", exc)

    # -- reading the registry -----------------------------------------------------------------

    def _live(self) -> tuple[list[Any], dict[tuple[str, str], float | None]]:
        states = ("production", "canary", "shadow")
        with self.ws.store.read() as conn:
            rows = conn.execute(select(model_versions.c.usecase, model_versions.c.version,
                                       model_versions.c.state, model_versions.c.bundle_digest)
                                .where(model_versions.c.state.in_(states))).all()
            shares = {(r.usecase, r.alias): r.share for r in conn.execute(
                select(aliases.c.usecase, aliases.c.alias, aliases.c.share)
                .where(aliases.c.alias == "canary"))}
        return list(rows), shares

    def refresh(self) -> bool:
        """Reload if the live versions changed; True when the routing changed."""
        with self._refresh_lock:
            rows, shares = self._live()
            usecases = self.ws.project.usecase_names
            signature = (tuple(sorted((r.usecase, r.version, r.state) for r in rows)),
                         tuple(sorted(shares.items())), tuple(sorted(usecases)))
            if signature == self._signature:
                return False
            routes: dict[str, dict[str, Any]] = {name: {} for name in usecases}
            for r in rows:
                scorer = self._load(r.usecase, int(r.version), r.bundle_digest)
                routes.setdefault(r.usecase, {})[r.state] = scorer
            built = {}
            for name, live in routes.items():
                share = shares.get((name, "canary"))
                built[name] = Route(usecase=name, production=live.get("production"),
                                    canary=live.get("canary"),
                                    canary_share=float(share) if share is not None else (
                                        0.1 if live.get("canary") is not None else 0.0),
                                    shadow=live.get("shadow"))
            keep = {(s.usecase, s.version) for route in built.values()
                    for s in (route.production, route.canary, route.shadow) if s is not None}
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
            self.routing = Routing(routes=built, generation=self.routing.generation + 1)
            self._signature = signature
            self.last_error = None
        log.info("models live: %s", {n: {k: getattr(v, "version", None) for k, v in (
            ("production", r.production), ("canary", r.canary), ("shadow", r.shadow))
            if v is not None} for n, r in built.items()})
        for listener in self._listeners:
            listener(self.routing)
        return True

    def _load(self, usecase: str, version: int, digest: str) -> Scorer:
        cached = self._cache.get((usecase, version))
        if cached is not None and cached.digest == digest:
            return cached
        data = self.ws.artifacts.get_bytes(digest)
        scorer = Scorer.from_bundle(read_bundle(data, expected_digest=digest), digest=digest,
                                    version=version)
        self._cache[(usecase, version)] = scorer
        return scorer

    # -- serving ------------------------------------------------------------------------------

    def route(self, usecase: str) -> Route:
        """The route for ``usecase``; NotFoundError naming the known ones otherwise."""
        route = self.routing.routes.get(usecase)
        if route is None:
            known: Any = ", ".join(sorted(self.routing.routes)) or said("api.none_yet")
            raise keyed(NotFoundError, "api.no_usecase", name=usecase, known=known)
        return route

    def scorer(self, usecase: str, version: int | None) -> Scorer:
        """A specific version (loaded on demand, verified), or the production one."""
        if version is None:
            return self.route(usecase).choose()[0]
        self.route(usecase)
        mv = self.ws.registry.get_model(usecase, version)
        if mv.state == "rejected":
            raise keyed(NotFoundError, "api.rejected_version", name=usecase, version=version)
        return self._load(usecase, version, mv.bundle_digest)

    @property
    def ready(self) -> bool:
        return any(r.production is not None for r in self.routing.routes.values())


__all__ = ["Hub", "Route", "Routing"]
