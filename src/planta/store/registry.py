"""The registry: dataset versions, model versions, aliases, lifecycle moves, trials and batches.

    add_dataset_version ─► DatasetVersion      idempotent on the content hash
    register_model      ─► ModelVersion        candidate (gate passed) or rejected; trials kept
    move / promote / decline / rollback / canary / shadow / stop ─► Transition
                             checked by planta.core.lifecycle (the only place rules live);
                             state, aliases, transition rows and audit events change together,
                             in one transaction, or not at all
    add_batch           ─► Batch               one batch-scoring run

Aliases of a use case:

* ``production``  the version in production (at most one)
* ``previous``    where ``rollback`` goes: the version production replaced
* ``candidate``   the newest version waiting for approval (state ``candidate``)
* ``canary``      the version in state ``canary`` (at most one), with the ``share`` of live
                  requests it answers (0 < share < 1; 0.1 unless told)
* ``shadow``      the version in state ``shadow`` (at most one): scored beside production on
                  live requests, logged, never answered with

``canary`` and ``shadow`` follow the state: set when a version moves to canary or shadow, cleared
in the same transaction when it leaves that state (promoted, stopped back to candidate, or any
other move). A second canary (or shadow) of the same use case is refused, naming the one there
is and how to stop it.

Rollback walks back through production history like a stack. Promoting version 3 over 2 sets
``previous`` to 2; rolling back puts 2 in production (3 is archived) and sets ``previous`` to
what it was when 2 was last in production (say 1). A second rollback puts 1 back, and so on;
when there is nothing earlier, rollback says so and changes nothing. Rolling back never goes
"forward" to the version that was just rolled back: to bring it back, roll back to it by number
(``move(..., "production", action="rollback")``), which restores the ``previous`` it had.

Values come back as frozen dataclasses, never as ORM rows; ids are ULIDs, times aware UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from ulid import ULID

from planta.core.lifecycle import Action, Role, State, check_move
from planta.errors import AccessError, InputError, NotFoundError, StateError, keyed, phrase
from planta.store.audit import AuditLog
from planta.store.metadata import (
    Store,
    aliases,
    batches,
    dataset_versions,
    json_ready,
    model_versions,
    transitions,
    utc_now,
)
from planta.store.metadata import trials as trials_table  # `trials` is also an argument name

ALIASES = ("production", "candidate", "previous", "canary", "shadow")
#: The share of live requests a canary answers when none is given.
DEFAULT_CANARY_SHARE = 0.1
# The states that hold an alias of their own name, at most one version each.
_SERVING = (State.CANARY, State.SHADOW)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _iso(at: datetime) -> str:
    return at.isoformat()


@dataclass(frozen=True)
class DatasetVersion:
    """One version of a use case's data: accepted rows, by content hash."""

    usecase: str
    version: int
    content_hash: str
    snapshot_digest: str | None
    profile_digest: str | None
    contract_digest: str | None
    source_name: str
    source_hash: str | None
    n_rows: int
    n_accepted: int
    n_rejected: int
    report: Mapping[str, Any]
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "version": self.version,
                "content_hash": self.content_hash, "snapshot_digest": self.snapshot_digest,
                "profile_digest": self.profile_digest, "contract_digest": self.contract_digest,
                "source_name": self.source_name, "source_hash": self.source_hash,
                "n_rows": self.n_rows, "n_accepted": self.n_accepted,
                "n_rejected": self.n_rejected, "report": dict(self.report),
                "created_by": self.created_by, "created_at": _iso(self.created_at)}


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version: its bundle, verdict, state and aliases."""

    usecase: str
    version: int
    state: str
    bundle_digest: str
    bundle_size: int
    dataset_version: int | None
    metrics: Mapping[str, Any]
    gate: Mapping[str, Any]
    trained_by: str
    created_at: datetime
    summary: Mapping[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.state == State.PRODUCTION.value

    @property
    def gate_passed(self) -> bool:
        return bool(self.gate.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "version": self.version, "state": self.state,
                "bundle_digest": self.bundle_digest, "bundle_size": self.bundle_size,
                "dataset_version": self.dataset_version, "metrics": dict(self.metrics),
                "gate": dict(self.gate), "trained_by": self.trained_by,
                "created_at": _iso(self.created_at), "summary": dict(self.summary),
                "aliases": list(self.aliases)}


@dataclass(frozen=True)
class Transition:
    """One recorded lifecycle move."""

    id: str
    usecase: str
    version: int
    from_state: str | None
    to_state: str
    action: str
    actor: str
    role: str
    reason: str
    exception: bool
    previous_version: int | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "usecase": self.usecase, "version": self.version,
                "from_state": self.from_state, "to_state": self.to_state,
                "action": self.action, "actor": self.actor, "role": self.role,
                "reason": self.reason, "exception": self.exception,
                "previous_version": self.previous_version, "at": _iso(self.at)}


@dataclass(frozen=True)
class Trial:
    """One trial of the search that produced a model version."""

    usecase: str
    model_version: int
    n: int
    estimator: str
    params: Mapping[str, Any]
    cv_scores: list[float | None] = field(default_factory=list)
    score: float | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "model_version": self.model_version, "n": self.n,
                "estimator": self.estimator, "params": dict(self.params),
                "cv_scores": list(self.cv_scores), "score": self.score,
                "duration_s": self.duration_s}


@dataclass(frozen=True)
class Batch:
    """One batch-scoring run."""

    id: str
    usecase: str
    model_version: int
    input_name: str
    input_hash: str | None
    n_rows: int
    n_ok: int
    n_rejected: int
    output_digest: str | None
    output: str | None
    actor: str
    created_at: datetime
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "usecase": self.usecase, "model_version": self.model_version,
                "input_name": self.input_name, "input_hash": self.input_hash,
                "n_rows": self.n_rows, "n_ok": self.n_ok, "n_rejected": self.n_rejected,
                "output_digest": self.output_digest, "output": self.output,
                "actor": self.actor, "created_at": _iso(self.created_at),
                "duration_s": self.duration_s}


def _check_digest(value: str | None, what: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise InputError(f"{what} {value!r} is not a sha256 digest (64 lowercase hex "
                         "characters).")


class Registry:
    """Dataset and model versions of every use case in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.audit = AuditLog(store)

    # -- dataset versions ------------------------------------------------------------------
    def add_dataset_version(self, usecase: str, *, content_hash: str, source_name: str,
                            n_rows: int, n_accepted: int, n_rejected: int, created_by: str,
                            snapshot_digest: str | None = None,
                            profile_digest: str | None = None,
                            contract_digest: str | None = None, source_hash: str | None = None,
                            report: Mapping[str, Any] | None = None
                            ) -> tuple[DatasetVersion, bool]:
        """Record a dataset version; identical data (same content hash) gives the same one.

        Returns:
            ``(dataset_version, created)``: ``created`` is False when this content was
            already a version of the use case (nothing is written then).
        """
        _check_digest(content_hash, "Content hash")
        for what, value in (("Snapshot digest", snapshot_digest),
                            ("Profile digest", profile_digest),
                            ("Contract digest", contract_digest)):
            _check_digest(value, what, optional=True)
        with self.store.write() as conn:
            row = conn.execute(select(dataset_versions).where(
                dataset_versions.c.usecase == usecase,
                dataset_versions.c.content_hash == content_hash)).first()
            if row is not None:
                return _dataset(row), False
            version = 1 + int(conn.scalar(select(func.coalesce(
                func.max(dataset_versions.c.version), 0)).where(
                dataset_versions.c.usecase == usecase)) or 0)
            values: dict[str, Any] = {
                "usecase": usecase, "version": version, "content_hash": content_hash,
                "snapshot_digest": snapshot_digest, "profile_digest": profile_digest,
                "contract_digest": contract_digest, "source_name": source_name,
                "source_hash": source_hash, "n_rows": int(n_rows),
                "n_accepted": int(n_accepted), "n_rejected": int(n_rejected),
                "report": json_ready(dict(report or {})), "created_by": created_by,
                "created_at": utc_now()}
            conn.execute(insert(dataset_versions).values(**values))
            return DatasetVersion(**values), True

    def get_dataset_version(self, usecase: str, version: int) -> DatasetVersion:
        """One dataset version. Raises :class:`NotFoundError` when there is none."""
        with self.store.read() as conn:
            row = conn.execute(select(dataset_versions).where(
                dataset_versions.c.usecase == usecase,
                dataset_versions.c.version == int(version))).first()
            if row is None:
                known = _span(conn.execute(select(dataset_versions.c.version).where(
                    dataset_versions.c.usecase == usecase)).scalars().all())
                raise keyed(NotFoundError, "err.no_dataset_version", usecase=usecase,
                            version=version, known=known)
        return _dataset(row)

    def latest_dataset_version(self, usecase: str) -> DatasetVersion | None:
        """The newest dataset version of a use case, or None when it has no data yet."""
        with self.store.read() as conn:
            row = conn.execute(select(dataset_versions).where(
                dataset_versions.c.usecase == usecase)
                .order_by(dataset_versions.c.version.desc()).limit(1)).first()
        return None if row is None else _dataset(row)

    def list_dataset_versions(self, usecase: str) -> list[DatasetVersion]:
        """Every dataset version of a use case, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(select(dataset_versions).where(
                dataset_versions.c.usecase == usecase)
                .order_by(dataset_versions.c.version)).all()
        return [_dataset(r) for r in rows]

    # -- model versions --------------------------------------------------------------------
    def next_model_version(self, usecase: str) -> int:
        """The number the next registered model version of ``usecase`` will get.

        A bundle carries its own version number, so training asks first and passes it back to
        :meth:`register_model`, which refuses it if another training got there meanwhile.
        """
        with self.store.read() as conn:
            return _next_version(conn, usecase)

    def register_model(self, usecase: str, dataset_version: int | None, bundle_digest: str,
                       bundle_size: int, metrics: Mapping[str, Any], gate: Mapping[str, Any],
                       trained_by: str, summary: Mapping[str, Any] | None = None,
                       trials: Iterable[Mapping[str, Any] | Any] = (), *,
                       version: int | None = None) -> ModelVersion:
        """Register a trained bundle as the next model version of ``usecase``.

        The state follows the objective gate: ``candidate`` when ``gate["passed"]``, else
        ``rejected``; a candidate also gets the ``candidate`` alias. The version number is
        taken atomically; pass ``version`` (from :meth:`next_model_version`) when the bundle
        already carries it.

        Raises:
            NotFoundError: the dataset version does not exist.
            StateError: ``version`` was taken by another registration meanwhile.
        """
        _check_digest(bundle_digest, "Bundle digest")
        passed = bool(gate.get("passed"))
        to_state = State.CANDIDATE if passed else State.REJECTED
        with self.store.write() as conn:
            if dataset_version is not None:
                found = conn.scalar(select(dataset_versions.c.version).where(
                    dataset_versions.c.usecase == usecase,
                    dataset_versions.c.version == int(dataset_version)))
                if found is None:
                    raise NotFoundError(f"Use case {usecase!r} has no dataset version "
                                        f"{dataset_version}: cannot register a model trained "
                                        "on it.",
                                        hint=f"List them with `planta datasets {usecase}`.")
            number = _next_version(conn, usecase)
            if version is not None and int(version) != number:
                raise StateError(f"Version {version} of {usecase!r} cannot be registered: the "
                                 f"next free version number is {number} (another training "
                                 "registered meanwhile).", hint="Train again.")
            move = check_move(None, to_state, action=Action.REGISTER, role=Role.SYSTEM,
                              actor=trained_by, trained_by=trained_by, four_eyes=False,
                              reason=None, usecase=usecase, version=number)
            at = utc_now()
            values: dict[str, Any] = {
                "usecase": usecase, "version": number, "state": move.to_state.value,
                "bundle_digest": bundle_digest, "bundle_size": int(bundle_size),
                "dataset_version": dataset_version, "metrics": json_ready(dict(metrics)),
                "gate": json_ready(dict(gate)), "trained_by": trained_by, "created_at": at,
                "summary": json_ready(dict(summary or {}))}
            conn.execute(insert(model_versions).values(**values))
            reason = ("passed the objective gate" if passed else
                      "rejected by the objective gate: " + "; ".join(
                          map(str, gate.get("reasons") or [])))
            _record(conn, usecase, number, None, move.to_state.value, Action.REGISTER.value,
                    trained_by, Role.SYSTEM.value, reason.rstrip(": "), False, None, at,
                    str(ULID()))
            rows = [_trial_values(usecase, number, i, t) for i, t in enumerate(trials)]
            if rows:
                conn.execute(insert(trials_table), rows)
            _refresh_candidate(conn, usecase, trained_by, at)
            return self._model(conn, usecase, number)

    def get_model(self, usecase: str, version: int) -> ModelVersion:
        """One model version. Raises :class:`NotFoundError` when there is none."""
        with self.store.read() as conn:
            return self._model(conn, usecase, int(version))

    def list_models(self, usecase: str) -> list[ModelVersion]:
        """Every model version of a use case, oldest first, with its aliases."""
        with self.store.read() as conn:
            rows = conn.execute(select(model_versions).where(
                model_versions.c.usecase == usecase).order_by(model_versions.c.version)).all()
            names = _alias_names(conn, usecase)
        return [_model(r, names.get(r.version, ())) for r in rows]

    def aliases(self, usecase: str) -> dict[str, int]:
        """The aliases of a use case: ``{"production": 3, "previous": 2, ...}``."""
        with self.store.read() as conn:
            return _aliases(conn, usecase)

    def resolve(self, usecase: str, version_or_alias: int | str) -> ModelVersion:
        """The model version named by a number (``3``, ``"3"``, ``"v3"``) or an alias.

        Raises:
            NotFoundError: no such version, or the alias is not set (yet).
        """
        if isinstance(version_or_alias, int):
            return self.get_model(usecase, version_or_alias)
        name = str(version_or_alias).strip().lower()
        number = name.removeprefix("v")
        if number.isdigit():
            return self.get_model(usecase, int(number))
        if name not in ALIASES:
            raise NotFoundError(f"{version_or_alias!r} is neither a version number nor an alias "
                                f"of {usecase!r} ({', '.join(ALIASES)}).",
                                hint=f"List the versions with `planta models {usecase}`.")
        with self.store.read() as conn:
            version = _aliases(conn, usecase).get(name)
            if version is None:
                raise keyed(NotFoundError, _alias_key(name), usecase=usecase, alias=name)
            return self._model(conn, usecase, version)

    # -- lifecycle ---------------------------------------------------------------------------
    def move(self, usecase: str, version: int, to_state: State | str, *, action: Action | str,
             actor: str, role: Role | str, reason: str | None, exception: bool = False,
             four_eyes: bool = False, share: float | None = None) -> Transition:
        """Move a model version to another state, if the lifecycle allows it.

        Checks the move with :func:`planta.core.lifecycle.check_move`, then, in one
        transaction: updates the state, archives the old production version when this one
        goes to production, sets the aliases, records the transitions and appends one audit
        event per transition.

        Args:
            share: for a move to canary, the share of live requests it answers
                (0 < share < 1; default :data:`DEFAULT_CANARY_SHARE`). Refused otherwise.

        Raises:
            NotFoundError, StateError, AccessError, InputError: nothing is changed then.
            StateError also when the use case already has a canary (or a shadow) and this
            version would be a second one.
        """
        with self.store.write() as conn:
            return self._move(conn, usecase, int(version), to_state, action=action, actor=actor,
                              role=role, reason=reason, exception=exception,
                              four_eyes=four_eyes, share=share)

    def promote(self, usecase: str, version: int, *, actor: str, role: Role | str,
                reason: str | None, exception: bool = False,
                four_eyes: bool = False) -> Transition:
        """Put a version in production (the old production version is archived)."""
        return self.move(usecase, version, State.PRODUCTION, action=Action.PROMOTE, actor=actor,
                         role=role, reason=reason, exception=exception, four_eyes=four_eyes)

    def decline(self, usecase: str, version: int, *, actor: str, role: Role | str,
                reason: str | None) -> Transition:
        """Decline a candidate: it becomes rejected and will not go to production."""
        return self.move(usecase, version, State.REJECTED, action=Action.DECLINE, actor=actor,
                         role=role, reason=reason)

    def canary(self, usecase: str, version: int, *, actor: str, role: Role | str,
               reason: str | None, share: float | None = None,
               four_eyes: bool = False) -> Transition:
        """Let a candidate answer ``share`` of live requests (the rest stay on production)."""
        return self.move(usecase, version, State.CANARY, action=Action.CANARY, actor=actor,
                         role=role, reason=reason, four_eyes=four_eyes, share=share)

    def shadow(self, usecase: str, version: int, *, actor: str, role: Role | str,
               reason: str | None, four_eyes: bool = False) -> Transition:
        """Score a candidate beside production on live requests, logged but never answered."""
        return self.move(usecase, version, State.SHADOW, action=Action.SHADOW, actor=actor,
                         role=role, reason=reason, four_eyes=four_eyes)

    def stop(self, usecase: str, version: int, *, actor: str, role: Role | str,
             reason: str | None) -> Transition:
        """Take a canary or shadow version off live traffic: it is a candidate again."""
        return self.move(usecase, version, State.CANDIDATE, action=Action.STOP, actor=actor,
                         role=role, reason=reason)

    def canary_share(self, usecase: str) -> float | None:
        """The share of live requests the canary answers, or None when there is no canary."""
        with self.store.read() as conn:
            found = conn.execute(select(aliases.c.share).where(
                aliases.c.usecase == usecase, aliases.c.alias == "canary")).first()
        if found is None:
            return None
        return DEFAULT_CANARY_SHARE if found.share is None else float(found.share)

    def set_canary_share(self, usecase: str, share: float, *, actor: str,
                         reason: str | None = None, four_eyes: bool = False) -> float:
        """Change the share of live requests the canary of ``usecase`` answers.

        Audited (``canary_share``, old and new share) in the same transaction; setting the
        share it already has changes and records nothing. With ``four_eyes``, the person who
        trained the canary may lower its share but not raise it (as for the canary move).

        Returns:
            The share the canary had before.

        Raises:
            InputError: ``share`` is not a number strictly between 0 and 1.
            StateError: no version of the use case is in canary.
            AccessError: four-eyes forbids the trainer to raise the share.
        """
        value = _check_share(share)
        with self.store.write() as conn:
            found = conn.execute(select(aliases.c.version, aliases.c.share).where(
                aliases.c.usecase == usecase, aliases.c.alias == "canary")).first()
            if found is None:
                raise keyed(StateError, "err.canary.none", usecase=usecase, share=f"{value:g}")
            before = DEFAULT_CANARY_SHARE if found.share is None else float(found.share)
            if found.share is not None and float(found.share) == value:
                return before
            if four_eyes and value > before and actor == _model_row(
                    conn, usecase, int(found.version)).trained_by:
                raise keyed(AccessError, "err.canary.four_eyes", actor=actor,
                            version=int(found.version), usecase=usecase)
            conn.execute(update(aliases).where(
                aliases.c.usecase == usecase, aliases.c.alias == "canary")
                .values(share=value, set_by=actor, set_at=utc_now()))
            payload: dict[str, Any] = {"from": before, "to": value}
            if reason is not None and reason.strip():
                payload["reason"] = reason.strip()
            self.audit.append("canary_share", _subject(usecase, int(found.version)), actor,
                              payload, connection=conn)
            return before

    def rollback(self, usecase: str, *, actor: str, role: Role | str,
                 reason: str | None) -> Transition:
        """Put the ``previous`` version back in production (see the module docstring).

        Raises:
            StateError: there is no production version, or nothing earlier to go back to.
        """
        with self.store.write() as conn:
            names = _aliases(conn, usecase)
            target = names.get("previous")
            if target is None:
                current = names.get("production")
                if current is None:
                    raise keyed(StateError, "err.rollback.no_production", usecase=usecase)
                raise keyed(StateError, "err.rollback.no_earlier", usecase=usecase,
                            version=current)
            return self._move(conn, usecase, target, State.PRODUCTION, action=Action.ROLLBACK,
                              actor=actor, role=role, reason=reason)

    def _move(self, conn: Connection, usecase: str, version: int, to_state: State | str, *,
              action: Action | str, actor: str, role: Role | str, reason: str | None,
              exception: bool = False, four_eyes: bool = False,
              share: float | None = None) -> Transition:
        row = _model_row(conn, usecase, version)
        move = check_move(row.state, to_state, action=action, role=role, actor=actor,
                          trained_by=row.trained_by, four_eyes=four_eyes, reason=reason,
                          exception=exception, usecase=usecase, version=version,
                          gate_reasons=[str(r) for r in (row.gate or {}).get("reasons") or []])
        if move.to_state is State.CANARY:
            share = DEFAULT_CANARY_SHARE if share is None else _check_share(share)
        elif share is not None:
            raise keyed(InputError, "err.canary.share_only",
                        state=phrase(f"life.state.{move.to_state.value}"))
        if move.to_state in _SERVING:
            _refuse_a_second(conn, usecase, version, move.to_state)
        at = utc_now()
        names = _aliases(conn, usecase)
        previous = names.get("previous")
        replaced = names.get("production")
        first_id = ULID()
        if move.to_state is State.PRODUCTION:
            if move.action is Action.ROLLBACK:
                previous = _previous_when_last_in_production(conn, usecase, version, replaced)
            else:
                previous = replaced
        conn.execute(update(model_versions).where(
            model_versions.c.usecase == usecase, model_versions.c.version == version)
            .values(state=move.to_state.value))
        main = _record(conn, usecase, version, row.state, move.to_state.value,
                       move.action.value, actor, move.role.value, move.reason, move.exception,
                       previous, at, str(first_id))
        details: dict[str, Any] = {
            "from": row.state, "to": move.to_state.value, "reason": move.reason,
            "role": move.role.value, "exception": move.exception,
            "replaced": replaced if move.to_state is State.PRODUCTION else None,
            "previous": previous, "transition": main.id}
        if move.to_state is State.CANARY:
            details["share"] = share
        self.audit.append(move.action.value, _subject(usecase, version), actor, details,
                          connection=conn)
        if move.to_state is State.PRODUCTION:
            if replaced is not None:
                archive = check_move(State.PRODUCTION, State.ARCHIVED, action=Action.ARCHIVE,
                                     role=Role.SYSTEM, actor=actor, trained_by=None,
                                     four_eyes=False, reason=None, usecase=usecase,
                                     version=replaced)
                conn.execute(update(model_versions).where(
                    model_versions.c.usecase == usecase,
                    model_versions.c.version == replaced).values(state=archive.to_state.value))
                # Same instant, next id: listed right after the move that caused it.
                side = _record(conn, usecase, replaced, State.PRODUCTION.value,
                               archive.to_state.value, archive.action.value, actor,
                               Role.SYSTEM.value, f"replaced by version {version} "
                               f"({move.action.value})", False, previous, at,
                               str(ULID.from_int(int(first_id) + 1)))
                self.audit.append(archive.action.value, _subject(usecase, replaced), actor,
                                  {"from": State.PRODUCTION.value, "to": archive.to_state.value,
                                   "reason": side.reason, "role": Role.SYSTEM.value,
                                   "replaced_by": version, "transition": side.id},
                                  connection=conn)
            _set_alias(conn, usecase, "production", version, actor, at)
            _set_alias(conn, usecase, "previous", previous, actor, at)
        _refresh_candidate(conn, usecase, actor, at)
        _refresh_serving(conn, usecase, actor, at, share)
        return main

    def list_transitions(self, usecase: str, version: int | None = None) -> list[Transition]:
        """Every lifecycle move of a use case (or of one version), oldest first."""
        query = select(transitions).where(transitions.c.usecase == usecase)
        if version is not None:
            query = query.where(transitions.c.version == int(version))
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(transitions.c.at, transitions.c.id)).all()
        return [_transition(r) for r in rows]

    def list_trials(self, usecase: str, version: int) -> list[Trial]:
        """The trials of the search behind a model version, in the order they ran."""
        with self.store.read() as conn:
            _model_row(conn, usecase, int(version))
            rows = conn.execute(select(trials_table).where(
                trials_table.c.usecase == usecase,
                trials_table.c.model_version == int(version)).order_by(trials_table.c.n)).all()
        return [Trial(usecase=r.usecase, model_version=r.model_version, n=r.n,
                      estimator=r.estimator, params=r.params or {},
                      cv_scores=list(r.cv_scores or []), score=r.score,
                      duration_s=r.duration_s) for r in rows]

    # -- batches ---------------------------------------------------------------------------
    def add_batch(self, usecase: str, model_version: int, input_name: str,
                  input_hash: str | None, n_rows: int, n_ok: int, n_rejected: int, *,
                  actor: str, duration_s: float, output: str | None = None,
                  output_digest: str | None = None) -> Batch:
        """Record one batch-scoring run (``output``: where the results were written)."""
        _check_digest(output_digest, "Output digest", optional=True)
        values: dict[str, Any] = {
            "id": str(ULID()), "usecase": usecase, "model_version": int(model_version),
            "input_name": input_name, "input_hash": input_hash, "n_rows": int(n_rows),
            "n_ok": int(n_ok), "n_rejected": int(n_rejected), "output_digest": output_digest,
            "output": output, "actor": actor, "created_at": utc_now(),
            "duration_s": float(duration_s)}
        with self.store.write() as conn:
            _model_row(conn, usecase, int(model_version))
            conn.execute(insert(batches).values(**values))
        return Batch(**values)

    def list_batches(self, usecase: str | None = None, *, limit: int = 100) -> list[Batch]:
        """The most recent batch runs (of one use case, or all), newest first."""
        query = select(batches).order_by(batches.c.created_at.desc(), batches.c.id.desc())
        if usecase is not None:
            query = query.where(batches.c.usecase == usecase)
        with self.store.read() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [Batch(**r._asdict()) for r in rows]

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _model(conn: Connection, usecase: str, version: int) -> ModelVersion:
        row = _model_row(conn, usecase, version)
        return _model(row, _alias_names(conn, usecase).get(version, ()))



def _subject(usecase: str, version: int) -> str:
    return f"usecase/{usecase}/model/{version}"


def _span(versions: Sequence[int]) -> dict[str, Any]:
    if not versions:
        return phrase("err.versions.none")
    low, high = min(versions), max(versions)
    return phrase("err.versions.one", low=low) if low == high else phrase(
        "err.versions.span", low=low, high=high)


def _alias_key(alias: str) -> str:
    """The catalogue's message (and hint) for "no version is ``alias`` yet"."""
    if alias in ("production", "candidate"):
        return f"err.no_{alias}"
    return "err.no_trial" if alias in ("canary", "shadow") else "err.no_previous"


def _next_version(conn: Connection, usecase: str) -> int:
    return 1 + int(conn.scalar(select(func.coalesce(func.max(model_versions.c.version), 0))
                               .where(model_versions.c.usecase == usecase)) or 0)


def _model_row(conn: Connection, usecase: str, version: int) -> Any:
    row = conn.execute(select(model_versions).where(
        model_versions.c.usecase == usecase, model_versions.c.version == version)).first()
    if row is None:
        known = _span(conn.execute(select(model_versions.c.version).where(
            model_versions.c.usecase == usecase)).scalars().all())
        raise keyed(NotFoundError, "err.no_model_version", usecase=usecase, version=version,
                    known=known)
    return row


def _aliases(conn: Connection, usecase: str) -> dict[str, int]:
    return {r.alias: r.version for r in conn.execute(
        select(aliases.c.alias, aliases.c.version).where(aliases.c.usecase == usecase))}


def _alias_names(conn: Connection, usecase: str) -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {}
    for alias, version in sorted(_aliases(conn, usecase).items()):
        out.setdefault(version, []).append(alias)
    return {v: tuple(names) for v, names in out.items()}


def _set_alias(conn: Connection, usecase: str, alias: str, version: int | None, actor: str,
               at: datetime, share: float | None = None) -> None:
    conn.execute(delete(aliases).where(aliases.c.usecase == usecase, aliases.c.alias == alias))
    if version is not None:
        conn.execute(insert(aliases).values(usecase=usecase, alias=alias, version=version,
                                            set_by=actor, set_at=at, share=share))


def _check_share(share: Any) -> float:
    """A canary share: a number strictly between 0 and 1."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or \
            not math.isfinite(share) or not 0 < share < 1:
        raise keyed(InputError, "err.canary.share_range", share=repr(share))
    return float(share)


def _refuse_a_second(conn: Connection, usecase: str, version: int, state: State) -> None:
    """At most one canary and one shadow per use case: name the one there is, and the way out."""
    current = conn.scalar(select(func.min(model_versions.c.version)).where(
        model_versions.c.usecase == usecase, model_versions.c.state == state.value,
        model_versions.c.version != version))
    if current is None:
        return
    key = "err.second.canary" if state is State.CANARY else "err.second.shadow"
    raise keyed(StateError, key, usecase=usecase, current=current, version=version)


def _refresh_serving(conn: Connection, usecase: str, actor: str, at: datetime,
                     share: float | None) -> None:
    """``canary`` and ``shadow`` name the version in that state, or nothing. A new canary
    alias gets ``share``; one that still names the same version keeps its share."""
    now = _aliases(conn, usecase)
    for state in _SERVING:
        holder = conn.scalar(select(func.min(model_versions.c.version)).where(
            model_versions.c.usecase == usecase, model_versions.c.state == state.value))
        if now.get(state.value) != holder:
            _set_alias(conn, usecase, state.value, holder, actor, at,
                       share if state is State.CANARY and holder is not None else None)


def _refresh_candidate(conn: Connection, usecase: str, actor: str, at: datetime) -> None:
    """``candidate`` names the newest version in state candidate, or nothing."""
    newest = conn.scalar(select(func.max(model_versions.c.version)).where(
        model_versions.c.usecase == usecase,
        model_versions.c.state == State.CANDIDATE.value))
    if _aliases(conn, usecase).get("candidate") != newest:
        _set_alias(conn, usecase, "candidate", newest, actor, at)


def _previous_when_last_in_production(conn: Connection, usecase: str, version: int,
                                      replaced: int | None) -> int | None:
    """The ``previous`` alias as it was when ``version`` was last in production, if that
    version is still one production can go back to (archived, or the one archived now)."""
    recorded = conn.scalar(select(transitions.c.previous_version).where(
        transitions.c.usecase == usecase, transitions.c.version == version,
        transitions.c.to_state == State.PRODUCTION.value)
        .order_by(transitions.c.at.desc(), transitions.c.id.desc()).limit(1))
    if recorded is None or recorded == version:
        return None
    if recorded == replaced:
        return int(recorded)
    state = conn.scalar(select(model_versions.c.state).where(
        model_versions.c.usecase == usecase, model_versions.c.version == recorded))
    return int(recorded) if state == State.ARCHIVED.value else None


def _record(conn: Connection, usecase: str, version: int, from_state: str | None,
            to_state: str, action: str, actor: str, role: str, reason: str, exception: bool,
            previous: int | None, at: datetime, transition_id: str) -> Transition:
    values: dict[str, Any] = {
        "id": transition_id, "usecase": usecase, "version": version, "from_state": from_state,
        "to_state": to_state, "action": action, "actor": actor, "role": role, "reason": reason,
        "exception": exception, "previous_version": previous, "at": at}
    conn.execute(insert(transitions).values(**values))
    return Transition(**values)


def _trial_values(usecase: str, version: int, index: int, trial: Any) -> dict[str, Any]:
    data = trial.to_dict() if hasattr(trial, "to_dict") else dict(trial)
    score = data.get("score")
    return {"usecase": usecase, "model_version": version, "n": int(data.get("n", index + 1)),
            "estimator": str(data.get("estimator", "")),
            "params": json_ready(dict(data.get("params") or {})),
            "cv_scores": json_ready(list(data.get("cv_scores") or [])),
            "score": json_ready(float(score)) if score is not None else None,
            "duration_s": float(data.get("duration_s") or 0.0)}


def _dataset(row: Any) -> DatasetVersion:
    return DatasetVersion(**row._asdict())


def _model(row: Any, names: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(**row._asdict(), aliases=names)


def _transition(row: Any) -> Transition:
    return Transition(**row._asdict())


__all__ = ["ALIASES", "DEFAULT_CANARY_SHARE", "Batch", "DatasetVersion", "ModelVersion", "Registry", "Transition",
           "Trial"]
