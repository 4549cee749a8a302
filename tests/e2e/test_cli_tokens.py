"""`planta token …` as an administrator would type it, with --json for scripts."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import PLANTA, planta, planta_json

from planta.cli.tokens import ONCE_WARNING
from planta.store import AuditLog, open_store
from planta.store.tokens import TokenStore


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "plant"
    planta("init", str(root))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(cwd)


def tokens_of(root: Path) -> TokenStore:
    store = open_store(f"sqlite:///{root / '.planta' / 'planta.db'}")
    return TokenStore(store, AuditLog(store))


def test_create_prints_the_secret_once_and_it_verifies(project: Path) -> None:
    out = planta_json("token", "create", "--role", "operator", "--name", "mes-line-3",
                      env={"PLANTA_USER": "ana"})
    assert out["ok"] is True and out["warning"] == ONCE_WARNING
    secret = out["secret"]
    assert secret.startswith("planta_")
    assert out["token"]["name"] == "mes-line-3" and out["token"]["role"] == "operator"
    assert out["token"]["created_by"] == "ana" and out["token"]["active"] is True
    assert secret not in json.dumps(out["token"])
    store = tokens_of(project)
    try:
        assert store.verify(secret).name == "mes-line-3"
    finally:
        store.store.close()
    # The secret is never shown again: not by list, not by the audit log.
    listing = planta("token", "list", "--all", "--json")
    audit = planta("audit", "log", "--json")
    assert secret not in listing and secret not in audit
    assert secret[len("planta_"):] not in listing + audit


def test_create_for_people_warns_in_plain_words(project: Path) -> None:
    out = planta("token", "create", "--role", "approver", "--name", "ana.garcia")
    assert "planta_" in out
    flat = " ".join(out.split())
    assert "will not be shown again" in flat and "their own token" in flat


def test_list_shows_roles_and_hides_revoked_unless_asked(project: Path) -> None:
    assert planta_json("token", "list") == []
    assert "No tokens yet" in planta("token", "list")
    planta_json("token", "create", "--role", "viewer", "--name", "dashboard")
    planta_json("token", "create", "--role", "admin", "--name", "ana")
    names = [(t["name"], t["role"]) for t in planta_json("token", "list")]
    assert names == [("dashboard", "viewer"), ("ana", "admin")]
    planta_json("token", "revoke", "dashboard")
    assert [t["name"] for t in planta_json("token", "list")] == ["ana"]
    everything = planta_json("token", "list", "--all")
    assert [(t["name"], t["active"]) for t in everything] == [("dashboard", False),
                                                             ("ana", True)]
    assert "dashboard" in planta("token", "list", "--all")


def test_revoke_by_name_then_by_id_and_again(project: Path) -> None:
    made = planta_json("token", "create", "--role", "operator", "--name", "mes",
                       env={"PLANTA_USER": "ana"})
    out = planta_json("token", "revoke", "mes", env={"PLANTA_USER": "luis"})
    assert out == {"ok": True, "name_or_id": "mes", "revoked": 1}
    assert planta_json("token", "revoke", made["token"]["id"])["revoked"] == 0
    assert "already revoked" in planta("token", "revoke", "mes")
    store = tokens_of(project)
    try:
        assert store.verify(made["secret"]) is None
    finally:
        store.store.close()
    events = [e for e in planta_json("audit", "log") if e["action"].startswith("token_")]
    assert [(e["action"], e["actor"]) for e in events] == [("token_create", "ana"),
                                                            ("token_revoke", "luis")]


def test_mistakes_exit_1_with_one_line_and_usage_errors_exit_2(project: Path) -> None:
    out = planta_json("token", "revoke", "nobody", code=1)
    assert out["ok"] is False and out["error"] == "NotFoundError"
    out = planta_json("token", "create", "--role", "superuser", "--name", "x", code=1)
    assert out["error"] == "InputError" and "viewer" in out["hint"]
    planta_json("token", "create", "--role", "viewer", "--name", "x")
    out = planta_json("token", "create", "--role", "viewer", "--name", "x", code=1)
    assert "already named" in out["message"]
    planta("token", "create", "--name", "x", code=2)           # --role is required
    planta("token", "create", "--role", "viewer", code=2)       # --name is required
    assert "Error" in planta("token", "revoke", "nobody", code=1)


def test_outside_a_project_it_says_where_to_start(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        out = planta_json("token", "list", code=1)
    finally:
        os.chdir(cwd)
    assert out["ok"] is False and out["error"] == "NotFoundError"


def test_the_installed_command_creates_and_revokes(project: Path) -> None:
    env = dict(os.environ, PLANTA_USER="ana")
    made = subprocess.run([PLANTA, "token", "create", "--role", "operator", "--name", "mes",
                           "--json"], capture_output=True, text=True, timeout=120, env=env,
                          cwd=project, check=False)
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)["secret"]
    gone = subprocess.run([PLANTA, "token", "revoke", "mes"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=project, check=False)
    assert gone.returncode == 0 and "Revoked" in gone.stdout
    store = tokens_of(project)
    try:
        assert store.verify(secret) is None
    finally:
        store.store.close()
