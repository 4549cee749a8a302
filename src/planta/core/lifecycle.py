"""The model-version state machine: the one place that says which moves are allowed, and by whom.

A model version is in exactly one state:

* ``candidate``  passed the objective gate; waits for a person to approve it
* ``rejected``   failed the objective gate, or an approver declined it
* ``shadow``     runs beside production on live data; its answers are logged, not used
* ``canary``     answers a small share of live requests
* ``production`` the version that answers (at most one per use case)
* ``archived``   was production and was replaced; it can be rolled back to

The moves (``—`` means "no state yet"; *system* moves are made by planta itself, never asked
for by a person):

| from | to | action | who | four-eyes | notes |
|---|---|---|---|---|---|
| — | candidate | register | system | no | the objective gate passed |
| — | rejected | register | system | no | the objective gate failed |
| candidate | production | promote | approver | yes | the old production version is archived |
| rejected | production | promote | approver | yes | only as a recorded exception (`--exception`) |
| candidate | rejected | decline | approver | no | |
| candidate | canary | canary | approver | yes | |
| candidate | shadow | shadow | approver | yes | |
| canary | production | promote | approver | yes | |
| shadow | production | promote | approver | yes | |
| canary | candidate | stop | approver | no | |
| shadow | candidate | stop | approver | no | |
| production | archived | archive | system | no | when another version becomes production |
| archived | production | rollback | approver | no | the current production version is archived |

Roles rank ``viewer < operator < approver < admin``; a move needing ``approver`` is allowed to
``approver`` and ``admin``. Every move a person makes needs a non-empty reason, which the audit
trail keeps. With ``four_eyes`` on, the person who trained a version may not approve it
(promote, canary, shadow, exception), whatever their role, admin included: separation of duty
that an admin could skip would prove nothing to an auditor. Declining, stopping and rolling
back stay open to the trainer, because they make production safer, never riskier.

The table above is also :func:`as_markdown`, which the documentation renders; a unit test keeps
the two equal.

>>> move = check_move("candidate", "production", action="promote", role="approver",
...                   actor="ana", trained_by="luis", four_eyes=True, reason="better recall")
>>> move.to_state
<State.PRODUCTION: 'production'>
>>> check_move("rejected", "production", action="promote", role="approver", actor="ana",
...            trained_by="luis", four_eyes=False, reason="line stop", usecase="failure",
...            version=3, gate_reasons=["recall 0.71 < 0.80"])
Traceback (most recent call last):
...
planta_edge.errors.StateError: Version 3 of 'failure' was rejected by the objective gate (recall 0.71 < 0.80): it cannot go to production. An approver can record an exception with --exception --reason '...'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from planta.errors import AccessError, InputError, StateError, keyed, phrase


class State(str, Enum):
    """The state of a model version."""

    CANDIDATE = "candidate"
    REJECTED = "rejected"
    SHADOW = "shadow"
    CANARY = "canary"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class Action(str, Enum):
    """What a move is called in the CLI, the API and the audit trail."""

    REGISTER = "register"
    PROMOTE = "promote"
    DECLINE = "decline"
    CANARY = "canary"
    SHADOW = "shadow"
    STOP = "stop"
    ARCHIVE = "archive"
    ROLLBACK = "rollback"


class Role(str, Enum):
    """Who may do what. ``SYSTEM`` is planta itself; it ranks with no person's role."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"
    SYSTEM = "system"

    @property
    def rank(self) -> int:
        """Position in ``viewer < operator < approver < admin`` (-1 for ``system``)."""
        return _RANK.get(self, -1)

    def allows(self, needed: Role) -> bool:
        """True when this role may make a move that needs ``needed``.

        >>> Role.ADMIN.allows(Role.APPROVER), Role.OPERATOR.allows(Role.APPROVER)
        (True, False)
        """
        if needed is Role.SYSTEM or self is Role.SYSTEM:
            return self is needed
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.APPROVER: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Rule:
    """One allowed move of the table."""

    from_state: State | None
    to_state: State
    action: Action
    needs: Role
    four_eyes: bool
    exception: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"from_state": self.from_state.value if self.from_state else None,
                "to_state": self.to_state.value, "action": self.action.value,
                "needs": self.needs.value, "four_eyes": self.four_eyes,
                "exception": self.exception, "note": self.note}


S, A, R = State, Action, Role
RULES: tuple[Rule, ...] = (
    Rule(None, S.CANDIDATE, A.REGISTER, R.SYSTEM, False, note="the objective gate passed"),
    Rule(None, S.REJECTED, A.REGISTER, R.SYSTEM, False, note="the objective gate failed"),
    Rule(S.CANDIDATE, S.PRODUCTION, A.PROMOTE, R.APPROVER, True,
         note="the old production version is archived"),
    Rule(S.REJECTED, S.PRODUCTION, A.PROMOTE, R.APPROVER, True, exception=True,
         note="only as a recorded exception (`--exception`)"),
    Rule(S.CANDIDATE, S.REJECTED, A.DECLINE, R.APPROVER, False),
    Rule(S.CANDIDATE, S.CANARY, A.CANARY, R.APPROVER, True),
    Rule(S.CANDIDATE, S.SHADOW, A.SHADOW, R.APPROVER, True),
    Rule(S.CANARY, S.PRODUCTION, A.PROMOTE, R.APPROVER, True),
    Rule(S.SHADOW, S.PRODUCTION, A.PROMOTE, R.APPROVER, True),
    Rule(S.CANARY, S.CANDIDATE, A.STOP, R.APPROVER, False),
    Rule(S.SHADOW, S.CANDIDATE, A.STOP, R.APPROVER, False),
    Rule(S.PRODUCTION, S.ARCHIVED, A.ARCHIVE, R.SYSTEM, False,
         note="when another version becomes production"),
    Rule(S.ARCHIVED, S.PRODUCTION, A.ROLLBACK, R.APPROVER, False,
         note="the current production version is archived"),
)
del S, A, R


@dataclass(frozen=True)
class Move:
    """A move that :func:`check_move` allowed; the registry records it as a transition."""

    from_state: State | None
    to_state: State
    action: Action
    role: Role
    actor: str
    reason: str
    exception: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"from_state": self.from_state.value if self.from_state else None,
                "to_state": self.to_state.value, "action": self.action.value,
                "role": self.role.value, "actor": self.actor, "reason": self.reason,
                "exception": self.exception}


def _enum(kind: type[Enum], value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(str(m.value) for m in kind)
        raise keyed(InputError, f"life.unknown_{what}", value=value, known=known) from None


def check_move(from_state: State | str | None, to_state: State | str, *,
               action: Action | str, role: Role | str, actor: str, trained_by: str | None,
               four_eyes: bool, reason: str | None, exception: bool = False,
               usecase: str | None = None, version: int | None = None,
               gate_reasons: Sequence[str] = ()) -> Move:
    """Check one move against the table, the roles and the four-eyes rule.

    Args:
        from_state: the version's state now (``None`` when registering).
        to_state: the state asked for.
        action: ``promote``, ``decline``, ``canary``, ``shadow``, ``stop``, ``rollback``
            (people) or ``register``, ``archive`` (planta itself, role ``system``).
        role: the actor's role.
        actor: who asks; ``trained_by``: who trained the version.
        four_eyes: the project's four-eyes policy.
        reason: why; required for every move a person makes.
        exception: promote a version the objective gate rejected, on the record.
        usecase, version, gate_reasons: only used to word the messages.

    Returns:
        The allowed :class:`Move`.

    Raises:
        StateError: the table has no such move, or a rejected version without ``exception``.
        AccessError: the role is too low, or four-eyes forbids the trainer to approve.
        InputError: an unknown state, action or role, or a missing reason.
    """
    src = None if from_state is None else _enum(State, from_state, "state")
    dst = _enum(State, to_state, "state")
    act = _enum(Action, action, "action")
    who = _enum(Role, role, "role")
    subject, subject_cap = _subject(usecase, version), _subject(usecase, version, cap=True)

    rule = next((r for r in RULES if r.from_state == src and r.to_state == dst
                 and r.action == act), None)
    if rule is None:
        raise _no_rule(subject_cap, src, dst, act, gate_reasons)
    if not who.allows(rule.needs):
        if rule.needs is Role.SYSTEM:
            raise keyed(AccessError, "life.by_itself", act=phrase(f"life.act_cap.{act.value}"),
                        subject=subject, note=phrase(f"life.note.{act.value}.{dst.value}"))
        raise keyed(AccessError, "life.role_too_low", actor=actor, role=_role(who),
                    act=_act(act), subject=subject, needs=_role(rule.needs))
    if src is State.REJECTED and dst is State.PRODUCTION and not exception:
        raise _rejected(subject_cap, gate_reasons)
    if exception and not rule.exception:
        raise keyed(StateError, "life.not_an_exception", subject=subject_cap,
                    state=phrase(f"life.is.{src.value}") if src else phrase("life.is.new"),
                    act=phrase(f"life.act_cap.{act.value}"))
    if four_eyes and rule.four_eyes and trained_by is not None and actor == trained_by:
        raise keyed(AccessError, "life.four_eyes", actor=actor, subject=subject, act=_act(act))
    text = (reason or "").strip()
    if rule.needs is not Role.SYSTEM and not text:
        raise keyed(InputError, "life.no_reason", act=_act(act), subject=subject)
    return Move(from_state=src, to_state=dst, action=act, role=who, actor=actor,
                reason=text, exception=bool(exception))


def _subject(usecase: str | None, version: int | None, *, cap: bool = False) -> dict[str, Any]:
    """"version 3 of 'failure'" as a sentence part, said in each language (``cap``: first
    letter in capitals, to open a sentence)."""
    end = ".cap" if cap else ""
    if version is None:
        return (phrase(f"life.subject.this{end}") if usecase is None else
                phrase(f"life.subject.some_of{end}", usecase=usecase))
    return (phrase(f"life.subject.version{end}", version=version) if usecase is None else
            phrase(f"life.subject.version_of{end}", version=version, usecase=usecase))


def _act(act: Action) -> dict[str, Any]:
    """The move as a verb ("promote"), said in each language."""
    return phrase(f"life.act.{act.value}")


def _role(role: Role) -> dict[str, Any]:
    return phrase(f"life.role.{role.value}")


def _rejected(subject: dict[str, Any], gate_reasons: Sequence[str]) -> StateError:
    return keyed(StateError, "life.rejected", subject=subject,
                 why=phrase("life.rejected.why", reasons="; ".join(gate_reasons))
                 if gate_reasons else "")


def _no_rule(subject: dict[str, Any], src: State | None, dst: State, act: Action,
             gate_reasons: Sequence[str]) -> StateError:
    if src is State.REJECTED and dst is State.PRODUCTION:
        return _rejected(subject, gate_reasons)
    allowed = [r for r in RULES if r.from_state == src and r.needs is not Role.SYSTEM]
    if src is State.PRODUCTION:
        hint = phrase("life.hint.production")
    elif allowed:
        hint = phrase("life.hint.moves", state=phrase(f"life.state.{src.value}"),  # type: ignore[union-attr]
                      moves={"items": [phrase("life.hint.move", act=r.action.value,
                                              state=phrase(f"life.state.{r.to_state.value}"))
                                       for r in allowed], "sep": ", "})
    else:
        hint = phrase("life.hint.stuck")
    now = phrase(f"life.is.{src.value}") if src else phrase("life.is.unregistered")
    target = phrase(f"life.state.{dst.value}") if act.value in (
        dst.value, "promote", "rollback") else phrase("life.target_by", state=phrase(
            f"life.state.{dst.value}"), act=act.value)
    return keyed(StateError, "life.no_move", subject=subject, state=now, target=target,
                 hint=hint)


def as_markdown() -> str:
    """The move table as Markdown (the same table as in this module's docstring).

    >>> print(as_markdown().splitlines()[2])
    | — | candidate | register | system | no | the objective gate passed |
    """
    lines = ["| from | to | action | who | four-eyes | notes |", "|---|---|---|---|---|---|"]
    for r in RULES:
        lines.append(f"| {r.from_state.value if r.from_state else '—'} | {r.to_state.value} | "
                     f"{r.action.value} | {r.needs.value} | {'yes' if r.four_eyes else 'no'} | "
                     f"{r.note} |".replace("|  |", "| |"))
    return "\n".join(lines)


__all__ = ["RULES", "Action", "Move", "Role", "Rule", "State", "as_markdown", "check_move"]
