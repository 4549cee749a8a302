"""The model-version state machine: every move, allowed or not, every role, four-eyes."""

from __future__ import annotations

import itertools

import pytest

from planta.core import lifecycle
from planta.core.lifecycle import RULES, Action, Role, State, as_markdown, check_move
from planta.errors import AccessError, InputError, StateError

PEOPLE = [Role.VIEWER, Role.OPERATOR, Role.APPROVER, Role.ADMIN]
ALLOWED = {(r.from_state, r.to_state, r.action): r for r in RULES}


def _check(src, dst, action, role, *, actor="ana", trained_by="luis", four_eyes=False,
           reason="checked on May data", exception=None):
    if exception is None:
        exception = src is State.REJECTED and dst is State.PRODUCTION
    return check_move(src, dst, action=action, role=role, actor=actor, trained_by=trained_by,
                      four_eyes=four_eyes, reason=reason, exception=exception, usecase="failure",
                      version=3)


def test_the_table_is_the_documented_one() -> None:
    assert as_markdown() in lifecycle.__doc__
    assert len(RULES) == 13
    assert len(ALLOWED) == len(RULES)  # no duplicated move


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.from_state}-{r.action.value}")
def test_every_allowed_move_passes_for_the_roles_it_needs(rule) -> None:
    roles = [Role.SYSTEM] if rule.needs is Role.SYSTEM else [Role.APPROVER, Role.ADMIN]
    for role in roles:
        move = _check(rule.from_state, rule.to_state, rule.action, role)
        assert (move.from_state, move.to_state, move.action) == (
            rule.from_state, rule.to_state, rule.action)
        assert move.role is role
        assert move.exception is rule.exception


@pytest.mark.parametrize("rule", [r for r in RULES if r.needs is Role.APPROVER],
                         ids=lambda r: f"{r.from_state}-{r.action.value}")
def test_people_moves_refuse_low_roles_and_planta_itself(rule) -> None:
    for role in (Role.VIEWER, Role.OPERATOR, Role.SYSTEM):
        with pytest.raises(AccessError, match="role"):
            _check(rule.from_state, rule.to_state, rule.action, role)


@pytest.mark.parametrize("rule", [r for r in RULES if r.needs is Role.SYSTEM],
                         ids=lambda r: f"{r.from_state}-{r.action.value}")
def test_system_moves_are_not_for_people_even_admins(rule) -> None:
    for role in PEOPLE:
        with pytest.raises(AccessError, match="happens by itself"):
            _check(rule.from_state, rule.to_state, rule.action, role)


def test_every_other_combination_is_forbidden() -> None:
    forbidden = 0
    for src, dst, action in itertools.product([None, *State], State, Action):
        if (src, dst, action) in ALLOWED:
            continue
        forbidden += 1
        for role in (Role.ADMIN, Role.SYSTEM):
            with pytest.raises(StateError) as info:
                _check(src, dst, action, role, exception=False)
            assert "cannot go to" in str(info.value)
    assert forbidden == 7 * 6 * 8 - len(RULES)


def test_rejected_to_production_needs_a_recorded_exception() -> None:
    with pytest.raises(StateError) as info:
        check_move("rejected", "production", action="promote", role="approver", actor="ana",
                   trained_by="luis", four_eyes=False, reason="line stop", usecase="failure",
                   version=3, gate_reasons=["recall 0.71 < 0.80"])
    assert str(info.value) == (
        "Version 3 of 'failure' was rejected by the objective gate (recall 0.71 < 0.80): it "
        "cannot go to production. An approver can record an exception with --exception "
        "--reason '...'.")
    move = check_move("rejected", "production", action="promote", role="approver",
                      actor="ana", trained_by="luis", four_eyes=False, reason="line stop",
                      exception=True)
    assert move.exception is True


def test_an_exception_is_only_for_rejected_versions() -> None:
    with pytest.raises(StateError, match="only for a version the objective gate rejected"):
        _check(State.CANDIDATE, State.PRODUCTION, Action.PROMOTE, Role.APPROVER, exception=True)


def test_rejected_versions_cannot_go_to_canary_or_shadow_either() -> None:
    for action, dst in ((Action.CANARY, State.CANARY), (Action.SHADOW, State.SHADOW)):
        with pytest.raises(StateError):
            _check(State.REJECTED, dst, action, Role.ADMIN, exception=True)


@pytest.mark.parametrize("rule", [r for r in RULES if r.four_eyes],
                         ids=lambda r: f"{r.from_state}-{r.action.value}")
def test_four_eyes_stops_the_trainer_from_approving_even_as_admin(rule) -> None:
    for role in (Role.APPROVER, Role.ADMIN):
        with pytest.raises(AccessError, match="four-eyes"):
            _check(rule.from_state, rule.to_state, rule.action, role, actor="luis",
                   trained_by="luis", four_eyes=True)
        # Someone else may; and without the policy the trainer may too.
        _check(rule.from_state, rule.to_state, rule.action, role, actor="ana",
               trained_by="luis", four_eyes=True)
        _check(rule.from_state, rule.to_state, rule.action, role, actor="luis",
               trained_by="luis", four_eyes=False)


@pytest.mark.parametrize("rule", [r for r in RULES if not r.four_eyes
                                  and r.needs is Role.APPROVER],
                         ids=lambda r: f"{r.from_state}-{r.action.value}")
def test_safety_moves_stay_open_to_the_trainer(rule) -> None:
    # Declining, stopping and rolling back never make production riskier.
    move = _check(rule.from_state, rule.to_state, rule.action, Role.APPROVER, actor="luis",
                  trained_by="luis", four_eyes=True)
    assert move.to_state == rule.to_state


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_people_moves_need_a_reason(reason) -> None:
    for rule in RULES:
        if rule.needs is Role.SYSTEM:
            assert _check(rule.from_state, rule.to_state, rule.action, Role.SYSTEM,
                          reason=reason).reason == ""
            continue
        with pytest.raises(InputError, match="No reason"):
            _check(rule.from_state, rule.to_state, rule.action, Role.ADMIN, reason=reason)


def test_the_reason_is_kept_trimmed() -> None:
    assert _check(State.CANDIDATE, State.PRODUCTION, Action.PROMOTE, Role.APPROVER,
                  reason="  recall 0.86  ").reason == "recall 0.86"


def test_roles_rank_in_order() -> None:
    assert [r.rank for r in PEOPLE] == [0, 1, 2, 3]
    for low, high in itertools.combinations(PEOPLE, 2):
        assert high.allows(low) and not low.allows(high)
    assert not Role.ADMIN.allows(Role.SYSTEM) and not Role.SYSTEM.allows(Role.VIEWER)


@pytest.mark.parametrize("kwargs, word", [
    ({"from_state": "live"}, "state"), ({"to_state": "gone"}, "state"),
    ({"action": "deploy"}, "lifecycle action"), ({"role": "root"}, "role")])
def test_unknown_words_are_input_errors(kwargs, word) -> None:
    args = {"from_state": "candidate", "to_state": "production", "action": "promote",
            "role": "approver"} | kwargs
    with pytest.raises(InputError, match=word):
        check_move(args["from_state"], args["to_state"], action=args["action"],
                   role=args["role"], actor="ana", trained_by="luis", four_eyes=False,
                   reason="x")


def test_forbidden_messages_say_what_is_allowed_instead() -> None:
    with pytest.raises(StateError) as info:
        _check(State.ARCHIVED, State.CANARY, Action.CANARY, Role.ADMIN)
    assert "archived" in info.value.message
    assert "rollback → production" in (info.value.hint or "")
    with pytest.raises(StateError) as info:
        _check(State.PRODUCTION, State.REJECTED, Action.DECLINE, Role.ADMIN)
    assert "promoted or an earlier one is rolled back" in (info.value.hint or "")


def test_moves_convert_to_plain_dicts() -> None:
    move = _check(State.CANDIDATE, State.PRODUCTION, Action.PROMOTE, Role.APPROVER)
    assert move.to_dict() == {"from_state": "candidate", "to_state": "production",
                              "action": "promote", "role": "approver", "actor": "ana",
                              "reason": "checked on May data", "exception": False}
    assert RULES[0].to_dict()["from_state"] is None
