"""Training started from the web UI: a background thread owned by the server, its progress in
memory.

    POST /ui/usecases/{name}/train ──► Trainings.start ──► thread: train_version(progress=…)
                                              │                       │ TrainEvent per stage/trial
                                              ▼                       ▼
    GET  /ui/usecases/{name}/training/{id}(.json) ◄── Training.snapshot() (latest events)

The thread calls :func:`planta.services.versions.train_version` exactly as ``planta train``
does, so the version is registered, gated and audited the same way (``trained_by`` and the
audit event name the token's owner). Progress lives only in this server's memory: the latest
:data:`KEEP` trainings and, for each, its last :data:`KEEP_TRIALS` trials. A server that stops
mid-training loses that run (nothing half-registered is left: the registry writes come last).

At most one training per use case and :data:`MAX_RUNNING` in all run at once, so a second
click, or a busy day, cannot starve the server that is also answering predictions.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from planta.errors import PlantaError, StateError
from planta.services.train import TrainEvent
from planta.services.workspace import Workspace

log = logging.getLogger("planta.server")

MAX_RUNNING = 2
KEEP = 50
KEEP_TRIALS = 200
# A training id: 16 lower-case hex digits (the page and JSON routes match only that).
ID_PATTERN = "[0-9a-f]{16}"


@dataclass
class ActingWorkspace(Workspace):
    """The server's workspace, acting for one caller: services record ``acting_as`` as the
    actor (the token's owner) instead of the server's local user. Shares every adapter; never
    close it."""

    acting_as: str = ""

    @property
    def actor(self) -> str:
        return self.acting_as

    @classmethod
    def of(cls, ws: Workspace, actor: str) -> ActingWorkspace:
        return cls(project=ws.project, store=ws.store, registry=ws.registry, audit=ws.audit,
                   artifacts=ws.artifacts, acting_as=actor)


@dataclass
class Training:
    """One training run and what it has reported so far."""

    id: str
    usecase: str
    budget_s: float
    started_by: str
    started_at: float = field(default_factory=time.time)
    status: str = "running"                 # running | done | failed
    message: str = ""
    elapsed_s: float = 0.0
    n_trials: int = 0
    best: float | None = None
    trials: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP_TRIALS))
    version: int | None = None
    state: str | None = None
    gate_passed: bool | None = None
    error: str | None = None
    hint: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def event(self, e: TrainEvent) -> None:
        with self._lock:
            self.elapsed_s = float(e.elapsed_s)
            if e.kind == "trial":
                self.n_trials += 1
                self.best = e.best
                self.trials.append({"n": e.n, "estimator": e.estimator, "score": e.score,
                                    "best": e.best, "elapsed_s": round(e.elapsed_s, 1)})
            else:
                self.message = e.message

    def finish(self, **done: Any) -> None:
        with self._lock:
            for key, value in done.items():
                setattr(self, key, value)
            self.elapsed_s = time.time() - self.started_at

    def snapshot(self) -> dict[str, Any]:
        """A copy that is safe to read while the thread goes on."""
        with self._lock:
            return {"id": self.id, "usecase": self.usecase, "status": self.status,
                    "budget_s": self.budget_s, "elapsed_s": round(self.elapsed_s, 1),
                    "started_by": self.started_by, "message": self.message,
                    "n_trials": self.n_trials, "best": self.best,
                    "trials": list(self.trials), "version": self.version, "state": self.state,
                    "gate_passed": self.gate_passed, "error": self.error, "hint": self.hint}


class Trainings:
    """The trainings this server started, newest last."""

    def __init__(self, *, max_running: int = MAX_RUNNING, keep: int = KEEP) -> None:
        self.max_running = max_running
        self.keep = keep
        self._runs: OrderedDict[str, Training] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, training_id: str) -> Training | None:
        with self._lock:
            return self._runs.get(training_id)

    def running(self, usecase: str) -> Training | None:
        with self._lock:
            return next((t for t in self._runs.values()
                         if t.usecase == usecase and t.status == "running"), None)

    def start(self, ws: Workspace, usecase: str, *, budget_s: float, actor: str,
              note: str | None = None) -> Training:
        """Start training ``usecase`` in a background thread; StateError if one is running
        for it already or the server is busy with :data:`MAX_RUNNING`."""
        from planta.services.versions import train_version

        with self._lock:
            busy = [t for t in self._runs.values() if t.status == "running"]
            mine = next((t for t in busy if t.usecase == usecase), None)
            if mine is not None:
                raise StateError(f"{usecase!r} is already being trained (started by "
                                 f"{mine.started_by}).",
                                 hint=f"Follow it at /ui/usecases/{usecase}/training/{mine.id}.")
            if len(busy) >= self.max_running:
                raise StateError(f"This server is already training {len(busy)} models.",
                                 hint="Try again when one of them has finished.")
            run = Training(id=secrets.token_hex(8), usecase=usecase, budget_s=budget_s,
                           started_by=actor)
            self._runs[run.id] = run
            while len(self._runs) > self.keep:
                oldest = next((k for k, t in self._runs.items() if t.status != "running"), None)
                if oldest is None:
                    break
                del self._runs[oldest]
        acting = ActingWorkspace.of(ws, actor)

        def work() -> None:
            try:
                result = train_version(acting, usecase, budget_s=budget_s, progress=run.event,
                                       note=note)
                run.finish(status="done", version=result.version, state=result.state,
                           gate_passed=result.outcome.gate.passed)
            except PlantaError as exc:
                run.finish(status="failed", error=exc.message, hint=exc.hint)
            except Exception as exc:  # a thread has no caller: log why, show one line
                log.error("training %s of %s failed: %s", run.id, usecase, exc, exc_info=True)
                run.finish(status="failed", error=f"Training stopped unexpectedly ({run.id}).",
                           hint="The server log has the details.")

        threading.Thread(target=work, name=f"planta-train-{run.id}", daemon=True).start()
        return run


__all__ = ["ID_PATTERN", "ActingWorkspace", "Training", "Trainings"]
