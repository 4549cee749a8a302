"""API tokens against real storage: create, verify, revoke, the cache, and hashed storage."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from planta.core.lifecycle import Role
from planta.errors import InputError, NotFoundError
from planta.store import AuditLog, open_store
from planta.store.metadata import tokens as tokens_table
from planta.store.tokens import (
    CACHE_TTL_S,
    SECRET_PREFIX,
    TOUCH_INTERVAL_S,
    TokenStore,
    secret_digest,
)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store_tokens(store, clock) -> TokenStore:
    return TokenStore(store, AuditLog(store), clock=clock)


def last_used(store, token_id: str):
    with store.read() as conn:
        return conn.scalar(select(tokens_table.c.last_used_at)
                           .where(tokens_table.c.id == token_id))


def test_a_created_token_verifies_with_its_role(store_tokens) -> None:
    token, secret = store_tokens.create("mes-line-3", "operator", actor="ana")
    assert secret.startswith(SECRET_PREFIX) and len(secret) == len(SECRET_PREFIX) + 43
    assert token.prefix == secret[len(SECRET_PREFIX):len(SECRET_PREFIX) + 8]
    assert token.shown == secret[:len(SECRET_PREFIX) + 8] + "…"
    found = store_tokens.verify(secret)
    assert found is not None
    assert (found.id, found.name, found.role, found.created_by) == (
        token.id, "mes-line-3", Role.OPERATOR, "ana")
    assert found.allows(Role.VIEWER) and found.allows("operator")
    assert not found.allows(Role.APPROVER)


def test_every_secret_is_new(store_tokens) -> None:
    secrets_seen = {store_tokens.create(f"person-{i}", "viewer", actor="ana")[1]
                    for i in range(20)}
    assert len(secrets_seen) == 20


@pytest.mark.parametrize("bad", ["", "planta_", "planta_wrong", "Bearer planta_x", "x" * 50,
                                 SECRET_PREFIX + "a" * 10_000, None, 42, b"planta_x"])
def test_a_wrong_or_malformed_secret_is_refused_without_an_error(store_tokens, bad) -> None:
    store_tokens.create("ana", "admin", actor="ana")
    assert store_tokens.verify(bad) is None


def test_a_revoked_token_is_refused_at_once_by_the_same_store(store_tokens) -> None:
    token, secret = store_tokens.create("ana", "approver", actor="root")
    assert store_tokens.verify(secret) is not None  # now cached
    assert store_tokens.revoke("ana", actor="root") == 1
    assert store_tokens.verify(secret) is None
    assert store_tokens.revoke("ana", actor="root") == 0  # already revoked: nothing changes
    assert store_tokens.revoke(token.id, actor="root") == 0


def test_revoke_by_id_leaves_other_tokens_alone(store_tokens) -> None:
    first, first_secret = store_tokens.create("ana", "operator", actor="root")
    _, second_secret = store_tokens.create("luis", "operator", actor="root")
    assert store_tokens.revoke(first.id.lower(), actor="root") == 1
    assert store_tokens.verify(first_secret) is None
    assert store_tokens.verify(second_secret) is not None


def test_revoking_an_unknown_token_says_so(store_tokens) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        store_tokens.revoke("nobody", actor="root")


def test_a_revoke_by_another_process_bites_within_the_cache_ttl(store, clock) -> None:
    server = TokenStore(store, AuditLog(store), clock=clock)
    cli = TokenStore(store, AuditLog(store), clock=clock)   # e.g. `planta token revoke`
    _, secret = cli.create("mes", "operator", actor="root")
    assert server.verify(secret) is not None
    cli.revoke("mes", actor="root")
    clock.advance(CACHE_TTL_S / 2)
    assert server.verify(secret) is not None, "within the TTL the cached answer stands"
    clock.advance(CACHE_TTL_S / 2 + 0.01)
    assert server.verify(secret) is None


def test_a_new_token_from_another_process_is_accepted_at_once(store, clock) -> None:
    server = TokenStore(store, AuditLog(store), clock=clock)
    assert server.verify(SECRET_PREFIX + "x" * 43) is None
    _, secret = TokenStore(store, AuditLog(store), clock=clock).create(
        "mes", "operator", actor="root")
    assert server.verify(secret) is not None


def test_last_used_is_written_at_most_once_a_minute(store_tokens, store, clock) -> None:
    token, secret = store_tokens.create("mes", "operator", actor="root")
    assert last_used(store, token.id) is None
    store_tokens.verify(secret)
    first = last_used(store, token.id)
    assert first is not None
    for _ in range(5):
        clock.advance(CACHE_TTL_S + 1)  # past the cache, so the store is read again
        store_tokens.verify(secret)
    assert last_used(store, token.id) == first
    clock.advance(TOUCH_INTERVAL_S)
    store_tokens.verify(secret)
    assert last_used(store, token.id) > first


def test_a_new_process_does_not_rewrite_a_fresh_last_used(store, clock) -> None:
    first_process = TokenStore(store, AuditLog(store), clock=clock)
    token, secret = first_process.create("mes", "operator", actor="root")
    first_process.verify(secret)
    stamp = last_used(store, token.id)
    TokenStore(store, AuditLog(store), clock=clock).verify(secret)
    assert last_used(store, token.id) == stamp


def test_names_are_unique_among_active_tokens(store_tokens) -> None:
    store_tokens.create("ana", "operator", actor="root")
    with pytest.raises(InputError, match="already named 'ana'") as info:
        store_tokens.create(" ana ", "admin", actor="root")
    assert "planta token revoke ana" in (info.value.hint or "")
    store_tokens.revoke("ana", actor="root")
    _, secret = store_tokens.create("ana", "admin", actor="root")
    assert store_tokens.verify(secret).role is Role.ADMIN


@pytest.mark.parametrize(("name", "role"), [("", "viewer"), ("   ", "viewer"),
                                            ("a" * 201, "viewer"), ("an\na", "viewer"),
                                            ("tab\there", "viewer"), ("ana", "system"),
                                            ("ana", "root"), ("ana", "")])
def test_bad_names_and_roles_are_refused(store_tokens, name, role) -> None:
    with pytest.raises(InputError):
        store_tokens.create(name, role, actor="root")
    assert store_tokens.list(include_revoked=True) == []


def test_list_and_any_active(store_tokens) -> None:
    assert store_tokens.list() == [] and not store_tokens.any_active()
    store_tokens.create("ana", "viewer", actor="root")
    store_tokens.create("luis", "admin", actor="root")
    assert store_tokens.any_active()
    store_tokens.revoke("ana", actor="root")
    assert [t.name for t in store_tokens.list()] == ["luis"]
    listed = store_tokens.list(include_revoked=True)
    assert [(t.name, t.is_active, t.revoked_by) for t in listed] == [
        ("ana", False, "root"), ("luis", True, None)]
    store_tokens.revoke("luis", actor="root")
    assert not store_tokens.any_active()


def test_create_and_revoke_are_audited_without_the_secret(store_tokens, store) -> None:
    token, secret = store_tokens.create("mes", "operator", actor="ana")
    store_tokens.revoke("mes", actor="luis")
    audit = AuditLog(store)
    events = [e for e in audit.events(limit=None) if e.action.startswith("token_")]
    assert [(e.action, e.actor, e.subject) for e in events] == [
        ("token_create", "ana", f"token/{token.id}"),
        ("token_revoke", "luis", f"token/{token.id}")]
    assert events[0].payload == {"name": "mes", "role": "operator"}
    dumped = json.dumps([e.to_dict() for e in audit.events(limit=None)])
    assert secret not in dumped and secret[len(SECRET_PREFIX):] not in dumped
    assert secret_digest(secret) not in dumped
    assert audit.verify().ok


def test_only_a_hash_of_the_secret_is_stored(store_tokens, store) -> None:
    _, secret = store_tokens.create("mes", "operator", actor="ana")
    with store.read() as conn:
        row = conn.execute(select(tokens_table)).one()
    assert row.hash == secret_digest(secret)
    assert secret not in json.dumps([str(v) for v in row])


def test_the_secret_is_nowhere_in_the_database_files(tmp_path: Path) -> None:
    db = tmp_path / "planta.db"
    store = open_store(f"sqlite:///{db}")
    try:
        audit = AuditLog(store)
        made = [TokenStore(store, audit).create(f"person-{i}", "operator", actor="ana")
                for i in range(3)]
        tokens = TokenStore(store, audit)
        for token, secret in made:
            assert tokens.verify(secret).id == token.id
        tokens.revoke("person-0", actor="ana")
        audit.export(tmp_path / "audit.jsonl")
        files = sorted(p for p in tmp_path.iterdir() if p.is_file())
        assert db in files
        blob = b"".join(p.read_bytes() for p in files)  # the db, its -wal/-shm, the export
    finally:
        store.close()
    blob += b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for _, secret in made:
        random_part = secret[len(SECRET_PREFIX):].encode()
        assert secret.encode() not in blob
        assert random_part not in blob
        assert random_part[8:24] not in blob  # not even a piece past the shown prefix
        assert secret_digest(secret).encode() in blob  # the digest is what is kept


def test_concurrent_verification_from_threads(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'planta.db'}")
    try:
        tokens = TokenStore(store, AuditLog(store), cache_ttl_s=0.0, touch_interval_s=0.0)
        made = [tokens.create(f"line-{i}", "operator", actor="ana") for i in range(4)]
        barrier = threading.Barrier(8)

        def hammer(i: int) -> list[str | None]:
            barrier.wait()
            _, secret = made[i % 4]
            return [getattr(tokens.verify(secret), "id", None) for _ in range(25)]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(hammer, range(8)))
        for i, ids in enumerate(results):
            assert ids == [made[i % 4][0].id] * 25
    finally:
        store.close()


def test_the_module_examples_run() -> None:
    import doctest

    import planta.store.tokens as module

    result = doctest.testmod(module)
    assert result.attempted >= 5 and result.failed == 0
