"""Canary and shadow in the registry: aliases follow the state, one of each per use case, the
canary's share, and every change in one transaction with its audit event. Run on a real SQLite
file and a real PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from planta.errors import AccessError, InputError, NotFoundError, StateError, StoreError
from planta.store import AuditLog, Registry
from planta.store.metadata import aliases
from planta.store.registry import DEFAULT_CANARY_SHARE

PASS = {"passed": True, "reasons": []}
WHO = {"actor": "ana", "role": "approver"}


def digest(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def registry(store) -> Registry:
    """Use case 'failure': version 1 in production, versions 2, 3 and 4 candidates."""
    registry = Registry(store)
    registry.add_dataset_version("failure", content_hash=digest(1), source_name="history.csv",
                                 n_rows=100, n_accepted=100, n_rejected=0, created_by="luis")
    for n in range(4):
        registry.register_model("failure", 1, digest(9000 + n), 1234, {"recall": 0.86}, PASS,
                                "luis")
    registry.promote("failure", 1, reason="first model", **WHO)
    return registry


def shares(store) -> dict[str, float | None]:
    """The share column of every alias, as the server's hub reads it."""
    with store.read() as conn:
        return {r.alias: r.share for r in conn.execute(
            select(aliases.c.alias, aliases.c.share).where(aliases.c.usecase == "failure"))}


def snapshot(registry: Registry, store) -> tuple[object, ...]:
    return (registry.list_models("failure"), registry.list_transitions("failure"),
            shares(store), AuditLog(store).count())


# -- canary ------------------------------------------------------------------------------------
def test_canary_sets_the_alias_with_its_share_and_audits_it(store, registry) -> None:
    moved = registry.canary("failure", 2, share=0.25, reason="try on line 2", **WHO)
    assert (moved.from_state, moved.to_state, moved.action) == ("candidate", "canary", "canary")
    assert registry.aliases("failure") == {"production": 1, "canary": 2, "candidate": 4}
    assert registry.canary_share("failure") == 0.25
    assert shares(store)["canary"] == 0.25 and shares(store)["production"] is None
    assert registry.resolve("failure", "canary").aliases == ("canary",)
    event = AuditLog(store).events(limit=1)[0]
    assert (event.action, event.subject, event.actor) == ("canary", "usecase/failure/model/2",
                                                           "ana")
    assert event.payload["share"] == 0.25 and event.payload["reason"] == "try on line 2"
    assert event.payload["transition"] == moved.id
    assert AuditLog(store).verify().ok


def test_canary_without_a_share_gets_the_default(store, registry) -> None:
    registry.move("failure", 2, "canary", action="canary", reason="try", **WHO)
    assert registry.canary_share("failure") == DEFAULT_CANARY_SHARE == 0.1
    assert shares(store)["canary"] == 0.1


def test_a_second_canary_is_refused_naming_the_first_and_changing_nothing(store,
                                                                         registry) -> None:
    registry.canary("failure", 2, share=0.2, reason="try", **WHO)
    before = snapshot(registry, store)
    with pytest.raises(StateError, match=r"Version 2 of 'failure' is already the canary") as err:
        registry.canary("failure", 3, share=0.5, reason="me too", **WHO)
    assert "planta stop failure 2" in (err.value.hint or "")
    assert snapshot(registry, store) == before
    assert registry.canary_share("failure") == 0.2


def test_a_second_shadow_is_refused_but_one_canary_and_one_shadow_run_together(store,
                                                                              registry) -> None:
    registry.shadow("failure", 2, reason="watch it", **WHO)
    registry.canary("failure", 3, reason="try", **WHO)
    assert registry.aliases("failure") == {"production": 1, "shadow": 2, "canary": 3,
                                           "candidate": 4}
    assert shares(store)["shadow"] is None
    before = snapshot(registry, store)
    with pytest.raises(StateError, match="already the shadow") as err:
        registry.shadow("failure", 4, reason="watch this too", **WHO)
    assert "planta stop failure 2" in (err.value.hint or "")
    assert snapshot(registry, store) == before


def test_stop_clears_the_alias_and_makes_it_a_candidate_again(store, registry) -> None:
    registry.canary("failure", 2, share=0.3, reason="try", **WHO)
    registry.shadow("failure", 3, reason="watch", **WHO)
    stopped = registry.stop("failure", 2, reason="false alarms on line 2", **WHO)
    assert (stopped.from_state, stopped.to_state, stopped.action) == ("canary", "candidate",
                                                                      "stop")
    assert registry.aliases("failure") == {"production": 1, "shadow": 3, "candidate": 4}
    assert registry.canary_share("failure") is None
    registry.stop("failure", 3, reason="enough", **WHO)
    assert registry.aliases("failure") == {"production": 1, "candidate": 4}
    assert [(e.action, e.subject) for e in AuditLog(store).events(limit=2)] == [
        ("stop", "usecase/failure/model/2"), ("stop", "usecase/failure/model/3")]
    with pytest.raises(NotFoundError, match="is canary yet") as err:
        registry.resolve("failure", "canary")
    assert "planta canary failure" in (err.value.hint or "")
    # Stopped, it can be the canary again (with a new share).
    registry.canary("failure", 2, share=0.05, reason="second try", **WHO)
    assert registry.canary_share("failure") == 0.05


@pytest.mark.parametrize("state", ["canary", "shadow"])
def test_promoting_the_canary_or_shadow_clears_its_alias(store, registry, state) -> None:
    registry.move("failure", 2, state, action=state, reason="try", **WHO)
    promoted = registry.promote("failure", 2, reason="it went well", **WHO)
    assert (promoted.from_state, promoted.to_state) == (state, "production")
    assert registry.aliases("failure") == {"production": 2, "previous": 1, "candidate": 4}
    assert state not in shares(store)
    assert [m.state for m in registry.list_models("failure")] == [
        "archived", "production", "candidate", "candidate"]
    assert [e.action for e in AuditLog(store).events(limit=2)] == ["promote", "archive"]
    # The usual way back still works: rollback puts version 1 back.
    registry.rollback("failure", reason="bad night shift", **WHO)
    assert registry.aliases("failure") == {"production": 1, "candidate": 4}


def test_a_canary_keeps_running_across_a_rollback_of_production(store, registry) -> None:
    registry.promote("failure", 4, reason="better", **WHO)
    registry.canary("failure", 2, share=0.2, reason="try", **WHO)
    registry.rollback("failure", reason="version 4 misbehaves", **WHO)
    assert registry.aliases("failure") == {"production": 1, "canary": 2, "candidate": 3}
    assert registry.canary_share("failure") == 0.2


# -- the share ---------------------------------------------------------------------------------
def test_set_canary_share_changes_it_and_audits_old_and_new(store, registry) -> None:
    registry.canary("failure", 2, share=0.1, reason="try", **WHO)
    before = registry.set_canary_share("failure", 0.5, actor="ana", reason="ramp up")
    assert before == 0.1 and registry.canary_share("failure") == 0.5
    assert shares(store)["canary"] == 0.5
    event = AuditLog(store).events(limit=1)[0]
    assert (event.action, event.subject, event.actor) == ("canary_share",
                                                           "usecase/failure/model/2", "ana")
    assert event.payload == {"from": 0.1, "to": 0.5, "reason": "ramp up"}
    count = AuditLog(store).count()
    assert registry.set_canary_share("failure", 0.5, actor="ana") == 0.5
    assert AuditLog(store).count() == count  # the same share changes and records nothing
    assert AuditLog(store).verify().ok


@pytest.mark.parametrize("share", [0, 1, 0.0, 1.0, -0.1, 1.5, math.nan, math.inf, True, "0.3",
                                   None])
def test_a_share_outside_zero_to_one_is_refused(store, registry, share) -> None:
    registry.canary("failure", 2, share=0.2, reason="try", **WHO)
    before = snapshot(registry, store)
    with pytest.raises(InputError, match="between 0 and 1"):
        registry.set_canary_share("failure", share, actor="ana")
    if share is not None:
        registry.stop("failure", 2, reason="again", **WHO)
        stopped = snapshot(registry, store)
        with pytest.raises(InputError, match="between 0 and 1"):
            registry.canary("failure", 2, share=share, reason="try", **WHO)
        assert snapshot(registry, store) == stopped
    else:
        assert snapshot(registry, store) == before


def test_set_canary_share_without_a_canary_says_how_to_start_one(store, registry) -> None:
    with pytest.raises(StateError, match="no canary version") as err:
        registry.set_canary_share("failure", 0.2, actor="ana")
    assert "planta canary failure" in (err.value.hint or "")


def test_a_share_is_only_for_a_canary(store, registry) -> None:
    before = snapshot(registry, store)
    with pytest.raises(InputError, match="only for a move to canary"):
        registry.move("failure", 2, "shadow", action="shadow", reason="x", share=0.2, **WHO)
    assert snapshot(registry, store) == before


# -- the rules still hold ----------------------------------------------------------------------
def test_four_eyes_roles_and_reasons_apply_to_canary_and_shadow(store, registry) -> None:
    before = snapshot(registry, store)
    with pytest.raises(AccessError, match="four-eyes"):
        registry.canary("failure", 2, actor="luis", role="admin", reason="mine",
                        four_eyes=True)
    with pytest.raises(AccessError, match="operator role"):
        registry.shadow("failure", 2, actor="olga", role="operator", reason="x")
    with pytest.raises(InputError, match="No reason"):
        registry.canary("failure", 2, reason=" ", **WHO)
    assert snapshot(registry, store) == before
    # Stopping makes production safer: the trainer may do it, even with four-eyes on.
    registry.canary("failure", 2, reason="try", **WHO)
    registry.stop("failure", 2, actor="luis", role="approver", reason="my model misbehaves")
    assert "canary" not in registry.aliases("failure")


def test_with_four_eyes_the_trainer_may_lower_the_share_but_not_raise_it(store,
                                                                        registry) -> None:
    registry.canary("failure", 2, share=0.2, reason="try", **WHO)
    with pytest.raises(AccessError, match="someone else must raise"):
        registry.set_canary_share("failure", 0.5, actor="luis", four_eyes=True)
    assert registry.canary_share("failure") == 0.2
    assert registry.set_canary_share("failure", 0.05, actor="luis", four_eyes=True) == 0.2
    assert registry.set_canary_share("failure", 0.5, actor="ana", four_eyes=True) == 0.05
    assert registry.canary_share("failure") == 0.5


def test_a_failing_audit_write_rolls_the_canary_back(store, registry, monkeypatch) -> None:
    before = snapshot(registry, store)

    def broken(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(AuditLog, "_append", staticmethod(broken))
    with pytest.raises(StoreError, match="disk full"):
        registry.canary("failure", 2, share=0.3, reason="try", **WHO)
    monkeypatch.undo()
    assert snapshot(registry, store) == before
    registry.canary("failure", 2, share=0.3, reason="try", **WHO)
    monkeypatch.setattr(AuditLog, "_append", staticmethod(broken))
    with pytest.raises(StoreError, match="disk full"):
        registry.set_canary_share("failure", 0.6, actor="ana")
    with pytest.raises(StoreError, match="disk full"):
        registry.stop("failure", 2, reason="enough", **WHO)
    monkeypatch.undo()
    assert registry.canary_share("failure") == 0.3
    assert registry.get_model("failure", 2).state == "canary"


def test_use_cases_have_their_own_canary(store, registry) -> None:
    registry.add_dataset_version("scrap", content_hash=digest(2), source_name="scrap.csv",
                                 n_rows=10, n_accepted=10, n_rejected=0, created_by="luis")
    registry.register_model("scrap", 1, digest(8000), 10, {}, PASS, "luis")
    registry.canary("failure", 2, share=0.2, reason="try", **WHO)
    registry.canary("scrap", 1, share=0.4, reason="try", **WHO)
    assert registry.canary_share("failure") == 0.2 and registry.canary_share("scrap") == 0.4
    registry.stop("scrap", 1, reason="enough", **WHO)
    assert registry.aliases("failure")["canary"] == 2
