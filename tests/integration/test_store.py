"""The metadata store and registry: one suite, run on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from ulid import ULID

from planta.errors import AccessError, InputError, NotFoundError, StateError, StoreError
from planta.store import AuditLog, Registry, open_store
from planta.store.metadata import metadata, model_versions, transitions

PASS = {"passed": True, "reasons": []}
FAIL = {"passed": False, "reasons": ["recall 0.71 < 0.80"]}


def digest(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def registry(store):
    return Registry(store)


def add_data(registry: Registry, usecase: str = "failure", n: int = 1):
    return registry.add_dataset_version(
        usecase, content_hash=digest(1000 + n), snapshot_digest=digest(2000 + n),
        profile_digest=digest(3000 + n), contract_digest=digest(4000 + n),
        source_name=f"history-{n}.csv", source_hash=digest(5000 + n), n_rows=100,
        n_accepted=98, n_rejected=2, report={"rows": 100, "missing": {"Torque [Nm]": 1}},
        created_by="ana")


def register(registry: Registry, gate=PASS, *, usecase: str = "failure", by: str = "luis",
             n: int = 0, trials=()):
    return registry.register_model(usecase, 1, digest(9000 + n), 1234, {"recall": 0.86}, gate,
                                   by, {"estimator": "lightgbm"}, trials)


@pytest.fixture
def with_data(registry):
    add_data(registry)
    return registry


# -- opening -----------------------------------------------------------------------------------
def test_open_creates_the_schema_the_code_expects(store) -> None:
    with store.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                metadata)
        revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert diff == []
    assert revision == "0004"


def test_open_twice_is_harmless_and_keeps_the_data(store_url, registry) -> None:
    add_data(registry)
    with open_store(store_url) as again:
        assert len(Registry(again).list_dataset_versions("failure")) == 1


def test_sqlite_runs_in_wal_with_full_sync_and_foreign_keys(tmp_path) -> None:
    path = tmp_path / "planta.db"
    with open_store(f"sqlite:///{path}") as store, store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_foreign_keys_are_enforced(store) -> None:
    orphan = model_versions.insert().values(
        usecase="failure", version=1, state="candidate", bundle_digest=digest(1), bundle_size=1,
        dataset_version=99, metrics={}, gate={}, trained_by="x", created_at=datetime.now(UTC),
        summary={})
    with pytest.raises(StoreError, match="Cannot write to the planta store"), \
            store.write() as conn:
        conn.execute(orphan)


def test_a_missing_folder_is_a_plain_store_error(tmp_path) -> None:
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{tmp_path / 'nowhere' / 'planta.db'}")
    assert "does not exist" in info.value.message
    assert "planta.toml" in (info.value.hint or "")


@pytest.mark.parametrize("url", ["not a url", "mysql+pymysql://x@localhost/db"])
def test_unsupported_urls_are_store_errors(url) -> None:
    with pytest.raises(StoreError):
        open_store(url)


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://planta:s3cret@127.0.0.1:1/planta?connect_timeout=2")
    assert "s3cret" not in str(info.value)
    assert "Cannot" in info.value.message and "127.0.0.1" in info.value.message
    assert isinstance(info.value.__cause__, Exception)


def test_a_store_from_a_newer_planta_is_refused(store_url, store) -> None:
    with store.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer planta"):
        open_store(store_url)


def test_in_memory_sqlite_works_for_quick_tests() -> None:
    with open_store("sqlite://") as store:
        registry = Registry(store)
        add_data(registry)
        assert registry.latest_dataset_version("failure").version == 1


# -- dataset versions --------------------------------------------------------------------------
def test_identical_data_gives_the_same_dataset_version(registry) -> None:
    first, created = add_data(registry, n=1)
    again, created_again = add_data(registry, n=1)
    second, created_second = add_data(registry, n=2)
    assert (created, created_again, created_second) == (True, False, True)
    assert again == first and first.version == 1 and second.version == 2
    assert registry.get_dataset_version("failure", 2) == second
    assert registry.latest_dataset_version("failure") == second
    assert registry.list_dataset_versions("failure") == [first, second]
    assert first.created_at.tzinfo == UTC
    assert first.report["missing"] == {"Torque [Nm]": 1}
    json.dumps(first.to_dict())


def test_use_cases_number_their_versions_apart(registry) -> None:
    add_data(registry, "failure", 1)
    dv, _ = add_data(registry, "scrap", 1)  # same content, other use case: a new version 1
    assert dv.version == 1 and dv.usecase == "scrap"
    assert registry.latest_dataset_version("energy") is None


def test_a_missing_dataset_version_says_which_exist(registry) -> None:
    add_data(registry)
    with pytest.raises(NotFoundError, match=r"no dataset version 7 \(it has version 1\)"):
        registry.get_dataset_version("failure", 7)


def test_digests_are_checked(registry) -> None:
    with pytest.raises(InputError, match="sha256"):
        registry.add_dataset_version("failure", content_hash="../../x", source_name="a.csv",
                                     n_rows=1, n_accepted=1, n_rejected=0, created_by="ana")


# -- registering -------------------------------------------------------------------------------
def test_register_follows_the_gate_and_keeps_the_trials(with_data) -> None:
    registry = with_data
    trials = [{"n": 1, "estimator": "lightgbm", "params": {"num_leaves": 31},
               "cv_scores": [0.8, float("nan")], "score": 0.8, "duration_s": 1.5},
              {"estimator": "logistic", "params": {}, "cv_scores": [0.7], "score": None,
               "duration_s": 0.2}]
    assert registry.next_model_version("failure") == 1
    good = register(registry, PASS, trials=trials)
    bad = register(registry, FAIL, n=1)
    assert (good.version, good.state, bad.version, bad.state) == (1, "candidate", 2, "rejected")
    assert good.aliases == ("candidate",) and bad.aliases == ()
    assert registry.aliases("failure") == {"candidate": 1}
    listed = registry.list_trials("failure", 1)
    assert [(t.n, t.estimator, t.cv_scores, t.score) for t in listed] == [
        (1, "lightgbm", [0.8, None], 0.8), (2, "logistic", [0.7], None)]
    history = registry.list_transitions("failure")
    assert [(t.version, t.from_state, t.to_state, t.action, t.role) for t in history] == [
        (1, None, "candidate", "register", "system"), (2, None, "rejected", "register", "system")]
    assert "recall 0.71 < 0.80" in history[1].reason
    assert registry.next_model_version("failure") == 3
    json.dumps(good.to_dict())


def test_register_refuses_a_version_number_taken_meanwhile(with_data) -> None:
    registry = with_data
    planned = registry.next_model_version("failure")
    register(registry)
    with pytest.raises(StateError, match="next free version number is 2"):
        registry.register_model("failure", 1, digest(5), 1, {}, PASS, "luis", version=planned)
    assert registry.register_model("failure", 1, digest(5), 1, {}, PASS, "luis",
                                   version=2).version == 2


def test_register_needs_an_existing_dataset_version(registry) -> None:
    with pytest.raises(NotFoundError, match="no dataset version 4"):
        registry.register_model("failure", 4, digest(1), 1, {}, PASS, "luis")


def test_concurrent_registrations_get_distinct_consecutive_versions(store_url, with_data) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with open_store(store_url) as own:
                for j in range(3):
                    register(Registry(own), n=10 * i + j)
        except Exception as exc:  # noqa: BLE001 - pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [m.version for m in with_data.list_models("failure")] == list(range(1, 19))
    assert with_data.aliases("failure")["candidate"] == 18


# -- resolving ---------------------------------------------------------------------------------
def test_resolve_by_number_or_alias(with_data) -> None:
    registry = with_data
    register(registry)
    assert registry.resolve("failure", 1).version == 1
    assert registry.resolve("failure", "1").version == 1
    assert registry.resolve("failure", "v1").version == 1
    assert registry.resolve("failure", "candidate").version == 1
    with pytest.raises(NotFoundError, match="is production yet"):
        registry.resolve("failure", "production")
    with pytest.raises(NotFoundError, match="neither a version number nor an alias"):
        registry.resolve("failure", "latest-good")
    with pytest.raises(NotFoundError, match=r"no model version 9 \(it has version 1\)"):
        registry.resolve("failure", 9)


# -- moving ------------------------------------------------------------------------------------
def test_promote_archives_the_old_version_and_sets_the_aliases(store, with_data) -> None:
    registry = with_data
    register(registry, n=1)
    register(registry, n=2)
    first = registry.promote("failure", 1, actor="ana", role="approver", reason="first model")
    assert (first.from_state, first.to_state, first.previous_version) == (
        "candidate", "production", None)
    assert registry.aliases("failure") == {"production": 1, "candidate": 2}
    second = registry.promote("failure", 2, actor="ana", role="approver", reason="better")
    assert second.previous_version == 1
    assert registry.aliases("failure") == {"production": 2, "previous": 1}
    assert [m.state for m in registry.list_models("failure")] == ["archived", "production"]
    assert registry.resolve("failure", "production").aliases == ("production",)
    moves = [(t.version, t.action, t.from_state, t.to_state)
             for t in registry.list_transitions("failure")]
    assert moves[-3:] == [(1, "promote", "candidate", "production"),
                          (2, "promote", "candidate", "production"),
                          (1, "archive", "production", "archived")]
    events = AuditLog(store).events(limit=None)
    assert [(e.action, e.subject) for e in events] == [
        ("promote", "usecase/failure/model/1"), ("promote", "usecase/failure/model/2"),
        ("archive", "usecase/failure/model/1")]
    assert events[1].payload["reason"] == "better" and events[1].payload["replaced"] == 1
    assert events[1].payload["transition"] == second.id
    assert AuditLog(store).verify().ok
    assert ULID.from_str(second.id) and second.at.tzinfo == UTC


def test_only_one_version_is_ever_in_production(with_data) -> None:
    registry = with_data
    for n in range(4):
        register(registry, n=n)
        registry.promote("failure", n + 1, actor="ana", role="approver", reason="next")
    states = [m.state for m in registry.list_models("failure")]
    assert states.count("production") == 1 and states[-1] == "production"


def test_rollback_walks_back_through_production_history(with_data) -> None:
    registry = with_data
    for n in range(3):
        register(registry, n=n)
        registry.promote("failure", n + 1, actor="ana", role="approver", reason=f"v{n + 1}")
    assert registry.aliases("failure") == {"production": 3, "previous": 2}

    back = registry.rollback("failure", actor="ana", role="approver", reason="v3 misses")
    assert (back.version, back.action, back.previous_version) == (2, "rollback", 1)
    assert registry.aliases("failure") == {"production": 2, "previous": 1}
    assert registry.get_model("failure", 3).state == "archived"

    again = registry.rollback("failure", actor="ana", role="approver", reason="v2 too")
    assert (again.version, again.previous_version) == (1, None)
    assert registry.aliases("failure") == {"production": 1}

    with pytest.raises(StateError, match="no earlier production version"):
        registry.rollback("failure", actor="ana", role="approver", reason="once more")
    assert registry.aliases("failure") == {"production": 1}  # nothing changed

    # Going forward again is a rollback to a number; it restores that version's history.
    forward = registry.move("failure", 3, "production", action="rollback", actor="ana",
                            role="approver", reason="v3 was fine after all")
    assert (forward.version, forward.previous_version) == (3, 2)
    assert registry.aliases("failure") == {"production": 3, "previous": 2}


def test_rollback_after_a_rollback_and_a_promotion_does_not_return_the_bad_version(
        with_data) -> None:
    registry = with_data
    for n in range(3):
        register(registry, n=n)
    registry.promote("failure", 1, actor="ana", role="approver", reason="v1")
    registry.promote("failure", 2, actor="ana", role="approver", reason="v2")
    registry.rollback("failure", actor="ana", role="approver", reason="v2 is bad")
    registry.promote("failure", 3, actor="ana", role="approver", reason="v3")
    assert registry.aliases("failure") == {"production": 3, "previous": 1}
    registry.rollback("failure", actor="ana", role="approver", reason="v3 is bad")
    assert registry.aliases("failure") == {"production": 1}  # not v2, rolled back before


def test_rollback_without_production_says_what_to_do(with_data) -> None:
    with pytest.raises(StateError, match="no production version") as info:
        with_data.rollback("failure", actor="ana", role="approver", reason="x")
    assert "planta promote failure" in (info.value.hint or "")


def test_a_rejected_version_goes_to_production_only_as_an_exception(store, with_data) -> None:
    registry = with_data
    register(registry, FAIL)
    with pytest.raises(StateError, match=r"rejected by the objective gate \(recall 0.71 < 0.80"):
        registry.promote("failure", 1, actor="ana", role="approver", reason="need it")
    moved = registry.promote("failure", 1, actor="ana", role="approver",
                             reason="line stop without it", exception=True)
    assert moved.exception is True
    assert AuditLog(store).events()[-1].payload["exception"] is True


def test_refused_moves_change_nothing(store, with_data) -> None:
    registry = with_data
    register(registry)
    before = (registry.list_models("failure"), registry.list_transitions("failure"),
              AuditLog(store).count())
    with pytest.raises(AccessError, match="operator role"):
        registry.promote("failure", 1, actor="olga", role="operator", reason="x")
    with pytest.raises(AccessError, match="four-eyes"):
        registry.promote("failure", 1, actor="luis", role="admin", reason="mine",
                         four_eyes=True)
    with pytest.raises(InputError, match="No reason"):
        registry.promote("failure", 1, actor="ana", role="approver", reason=" ")
    with pytest.raises(NotFoundError):
        registry.promote("failure", 5, actor="ana", role="approver", reason="x")
    after = (registry.list_models("failure"), registry.list_transitions("failure"),
             AuditLog(store).count())
    assert after == before


def test_a_failing_audit_write_rolls_the_move_back(store, with_data, monkeypatch) -> None:
    registry = with_data
    register(registry)

    def broken(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(AuditLog, "_append", staticmethod(broken))
    with pytest.raises(StoreError, match="disk full"):
        registry.promote("failure", 1, actor="ana", role="approver", reason="ok")
    monkeypatch.undo()
    assert registry.get_model("failure", 1).state == "candidate"
    assert registry.aliases("failure") == {"candidate": 1}
    with store.read() as conn:
        assert conn.scalar(select(transitions.c.id).where(
            transitions.c.action == "promote")) is None


def test_decline_canary_shadow_and_stop(with_data) -> None:
    registry = with_data
    for n in range(3):
        register(registry, n=n)
    assert registry.aliases("failure") == {"candidate": 3}
    registry.decline("failure", 3, actor="ana", role="approver", reason="drifted data")
    assert registry.aliases("failure") == {"candidate": 2}
    registry.move("failure", 2, "canary", action="canary", actor="ana", role="approver",
                  reason="try on line 2")
    registry.move("failure", 1, "shadow", action="shadow", actor="ana", role="approver",
                  reason="watch it")
    assert "candidate" not in registry.aliases("failure")
    registry.move("failure", 1, "candidate", action="stop", actor="ana", role="approver",
                  reason="enough")
    assert registry.aliases("failure") == {"candidate": 1, "canary": 2}
    registry.promote("failure", 2, actor="ana", role="approver", reason="canary went well")
    assert [m.state for m in registry.list_models("failure")] == [
        "candidate", "production", "rejected"]
    with pytest.raises(StateError):
        registry.move("failure", 3, "canary", action="canary", actor="ana", role="approver",
                      reason="x")


def test_list_transitions_of_one_version(with_data) -> None:
    registry = with_data
    register(registry, n=1)
    register(registry, n=2)
    registry.promote("failure", 2, actor="ana", role="approver", reason="ok")
    assert [t.action for t in registry.list_transitions("failure", 2)] == ["register", "promote"]


# -- batches -----------------------------------------------------------------------------------
def test_batches_are_recorded_newest_first(with_data) -> None:
    registry = with_data
    register(registry)
    first = registry.add_batch("failure", 1, "may.csv", digest(7), 1000, 990, 10,
                               actor="olga", duration_s=1.2, output="/srv/out/may.csv")
    second = registry.add_batch("failure", 1, "june.csv", None, 10, 10, 0, actor="olga",
                                duration_s=0.1, output_digest=digest(8))
    assert registry.list_batches("failure") == [second, first]
    assert registry.list_batches(limit=1) == [second]
    assert registry.list_batches("scrap") == []
    assert first.created_at.tzinfo == UTC and ULID.from_str(first.id)
    json.dumps(first.to_dict())
    with pytest.raises(NotFoundError):
        registry.add_batch("failure", 9, "x.csv", None, 1, 1, 0, actor="olga", duration_s=0)


def test_stored_times_are_utc_on_every_engine(store, with_data) -> None:
    model = register(with_data)
    with store.read() as conn:
        raw = conn.scalar(select(model_versions.c.created_at))
    assert raw.tzinfo is not None and raw.utcoffset().total_seconds() == 0
    assert model.created_at == raw


def test_the_database_file_stays_private(tmp_path) -> None:
    path = tmp_path / "planta.db"
    old = os.umask(0o022)
    try:
        with open_store(f"sqlite:///{path}") as store:
            Registry(store)
            add_data(Registry(store))
            wal = Path(str(path) + "-wal")
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            if wal.exists():
                assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        os.umask(old)
