"""Token authentication on a real `planta serve --require-auth`.

Tokens of each role are made with the command line (`planta token create --json`), as an
administrator would; the server then lets each role do what it may and refuses the rest: 401
without a valid token (with ``WWW-Authenticate``), 403 for too low a role. The health probes
answer without a token. A token revoked on the command line stops working within the cache's
lifetime, and no secret ever reaches the server's log.

Tests never bind anything but 127.0.0.1: the "listens beyond this machine" rule is checked by
calling the command in-process with its bind stubbed out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import GOOD_RECORD, PLANTA, Server, launch
from typer.testing import CliRunner

from planta.store.tokens import CACHE_TTL_S

ROLES = ("viewer", "operator", "approver", "admin")
ADMIN_USER = "it-admin"
PREDICT = "/v1/usecases/failure/predict"
OPEN_PATHS = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")


def planta(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PLANTA, *args], cwd=root, capture_output=True, text=True,
                          timeout=120, env=os.environ | {"PLANTA_USER": ADMIN_USER})


def create_token(root: Path, role: str, name: str) -> str:
    result = planta(root, "token", "create", "--role", role, "--name", name, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["token"]["role"] == role and doc["token"]["name"] == name
    secret: str = doc["secret"]
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def audit_events(root: Path, action: str) -> list[dict[str, Any]]:
    result = planta(root, "audit", "log", "--json", "--action", action, "--limit", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


# -- refusing to start -------------------------------------------------------------------------

def test_require_auth_without_any_token_refuses_to_start(project_copy: Path,
                                                          start_server: Any) -> None:
    srv: Server = start_server(project_copy, "--require-auth", timeout=60)
    assert srv.process.wait(timeout=30) != 0
    out = srv.log()
    assert "no token exists" in out and "planta token create" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.0.2.1", False),  # noqa: S104
    ("10.0.0.5", False), ("fe80::1", False), ("plant-server.local", False), ("", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    from planta.cli.serve import is_loopback

    assert is_loopback(host) is loopback


def test_non_loopback_host_without_a_token_fails_before_binding(
        project_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--host 192.0.2.1` turns tokens on by itself; with none made, the command stops with
    the way out before it builds the app or opens a socket."""
    import socket

    import uvicorn

    import planta.cli.serve as serve_cli
    import planta.server.app as server_app
    from planta.cli.app import app

    touched: list[str] = []

    def forbidden(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            touched.append(what)
            raise AssertionError(f"{what} was called")
        return call

    monkeypatch.setattr(uvicorn, "run", forbidden("uvicorn.run"))
    monkeypatch.setattr(server_app, "create_app", forbidden("create_app"))
    monkeypatch.setattr(socket.socket, "bind", forbidden("socket.bind"))
    monkeypatch.setattr(serve_cli, "configure_logging", lambda level="info": None)
    monkeypatch.chdir(project_copy)
    monkeypatch.setenv("PLANTA_USER", ADMIN_USER)
    result = CliRunner().invoke(app, ["serve", "--host", "192.0.2.1", "--port", "8000"])
    assert result.exit_code != 0
    assert not touched
    out = " ".join(result.output.split())
    assert "no token exists" in out and "planta token create" in out, out


# -- a server that asks for tokens ------------------------------------------------------------

@pytest.fixture(scope="module")
def auth(served_project: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with --require-auth on a copy of the project, and one token per role."""
    root = tmp_path_factory.mktemp("auth") / "plant"
    shutil.copytree(served_project, root)
    secrets = {role: create_token(root, role, f"{role}-token") for role in ROLES}
    srv = launch(root, "--require-auth", "--log-level", "debug")
    assert srv.process.poll() is None, srv.log()
    yield srv, secrets
    srv.stop()


def test_no_token_is_401_with_www_authenticate(auth: tuple[Server, dict[str, str]]) -> None:
    srv, _ = auth
    with srv.client() as c:
        for method, path in (("GET", "/v1/usecases"), ("POST", PREDICT), ("GET", "/v1/jobs"),
                             ("POST", "/v2/models/failure/infer"), ("GET", "/metrics"),
                             ("POST", "/v1/usecases/failure/rollback")):
            r = c.request(method, path, json={"records": [GOOD_RECORD]})
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["violations"][0]["rule"] == "token_missing"


@pytest.mark.parametrize("header", [
    "Bearer planta_thisIsNotAToken0000000000000000000000000000",
    "Bearer planta_",
    "Bearer not-even-planta",
    "Bearer " + "planta_" + "x" * 5000,
    "Basic dXNlcjpwYXNz",
    "bearer",
])
def test_bad_token_is_401(auth: tuple[Server, dict[str, str]], header: str) -> None:
    srv, _ = auth
    with srv.client() as c:
        r = c.get("/v1/usecases", headers={"Authorization": header})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["violations"][0]["rule"] in ("token_invalid", "token_missing")


def test_health_probes_answer_without_a_token(auth: tuple[Server, dict[str, str]]) -> None:
    srv, _ = auth
    with srv.client() as c:
        for path in OPEN_PATHS:
            assert c.get(path).status_code == 200, path
            # A wrong token on a probe is no reason to fail the probe.
            assert c.get(path, headers=bearer("planta_wrong")).status_code == 200, path


def test_viewer_reads_but_cannot_score(auth: tuple[Server, dict[str, str]]) -> None:
    srv, secrets = auth
    with srv.client(headers=bearer(secrets["viewer"])) as c:
        r = c.get("/v1/usecases")
        assert r.status_code == 200 and r.json()["usecases"][0]["name"] == "failure"
        assert c.get("/v1/usecases/failure/versions").status_code == 200
        assert c.get("/v1/jobs").status_code == 200
        for path, body in ((PREDICT, {"records": [GOOD_RECORD]}),
                           ("/v1/usecases/failure/feedback",
                            {"feedback": [{"prediction_id": "01J00000000000000000000000",
                                           "value": 1}]}),
                           ("/v1/usecases/failure/jobs", {"records": [GOOD_RECORD]})):
            r = c.post(path, json=body)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["kind"] == "AccessError"
            assert "viewer" in r.json()["error"]["message"]
        r = c.post("/v2/models/failure/infer", json={"inputs": [
            {"name": "type", "datatype": "BYTES", "shape": [1], "data": ["L"]}]})
        assert r.status_code == 403 and "error" in r.json()
    with srv.client(headers=bearer(secrets["operator"])) as c:
        assert c.get("/v1/jobs").json()["jobs"] == []  # the viewer's job was not queued


def test_operator_scores_and_sends_feedback_but_cannot_promote(
        auth: tuple[Server, dict[str, str]]) -> None:
    srv, secrets = auth
    with srv.client(headers=bearer(secrets["operator"])) as c:
        r = c.post(PREDICT, json={"records": [GOOD_RECORD]})
        assert r.status_code == 200, r.text
        pid = r.json()["predictions"][0]["prediction_id"]
        logged = c.get(f"/v1/predictions/{pid}")
        assert logged.status_code == 200 and logged.json()["caller"] == "operator-token"
        r = c.post("/v1/usecases/failure/feedback",
                   json={"feedback": [{"prediction_id": pid, "value": 0}]})
        assert r.status_code == 200 and r.json()["added"] == 1, r.text
        r = c.post("/v1/usecases/failure/jobs", json={"records": [GOOD_RECORD]})
        assert r.status_code == 202 and r.json()["caller"] == "operator-token", r.text
        for path in ("/v1/usecases/failure/versions/2/promote",
                     "/v1/usecases/failure/versions/2/canary",
                     "/v1/usecases/failure/rollback"):
            r = c.post(path, json={"reason": "operators may not", "exception": True}
                       if path.endswith("promote") else {"reason": "operators may not"})
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"]["kind"] == "AccessError"
        r = c.post("/v1/usecases/failure/bundles", content=b"PK\x03\x04",
                   headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 403, r.text
        assert c.get("/readyz").json()["models"] == {"failure": 1}  # nothing moved


def test_approver_promotes_and_rolls_back_on_the_record(
        auth: tuple[Server, dict[str, str]]) -> None:
    srv, secrets = auth
    with srv.client(headers=bearer(secrets["approver"])) as c:
        state = c.get("/v1/usecases/failure/versions/2").json()["state"]
        r = c.post("/v1/usecases/failure/versions/2/promote",
                   json={"reason": "better recall on line 3",
                         "exception": state == "rejected"})
        assert r.status_code == 200, r.text
        _wait_for_production(c, 2)
        r = c.post("/v1/usecases/failure/rollback", json={"reason": "operators prefer v1"})
        assert r.status_code == 200, r.text
        _wait_for_production(c, 1)
    promote = [e for e in audit_events(srv.root, "promote")
               if e["subject"] == "usecase/failure/model/2"]
    rollback = audit_events(srv.root, "rollback")
    assert promote and promote[-1]["actor"] == "approver-token", promote
    assert promote[-1]["payload"]["role"] == "approver"
    assert rollback and rollback[-1]["actor"] == "approver-token", rollback


def _wait_for_production(c: httpx.Client, version: int) -> None:
    deadline = time.monotonic() + 5
    while c.get("/readyz").json()["models"].get("failure") != version:
        assert time.monotonic() < deadline, f"version {version} did not go live"
        time.sleep(0.1)


def test_token_in_a_cookie_works_like_the_header(auth: tuple[Server, dict[str, str]]) -> None:
    srv, secrets = auth
    with srv.client(cookies={"planta_token": secrets["viewer"]}) as c:
        assert c.get("/v1/usecases").status_code == 200
        assert c.post(PREDICT, json={"records": [GOOD_RECORD]}).status_code == 403


def test_revoked_token_stops_working_within_the_cache_ttl(
        auth: tuple[Server, dict[str, str]]) -> None:
    srv, _ = auth
    secret = create_token(srv.root, "operator", "mes-line-3")
    with srv.client(headers=bearer(secret)) as c:
        assert c.post(PREDICT, json={"records": [GOOD_RECORD]}).status_code == 200
        result = planta(srv.root, "token", "revoke", "mes-line-3", "--json")
        assert result.returncode == 0 and json.loads(result.stdout)["revoked"] == 1
        revoked_at = time.monotonic()
        while True:
            status = c.post(PREDICT, json={"records": [GOOD_RECORD]}).status_code
            if status == 401:
                break
            assert status == 200
            assert time.monotonic() - revoked_at < CACHE_TTL_S + 3, "still accepted"
            time.sleep(0.2)
        r = c.get("/v1/usecases")
        assert r.status_code == 401 and r.json()["error"]["violations"][0]["rule"] == \
            "token_invalid"


def test_no_token_secret_is_in_the_server_log(auth: tuple[Server, dict[str, str]]) -> None:
    """Runs after the others in this module: every secret was sent many times by now."""
    srv, secrets = auth
    with srv.client(headers=bearer(secrets["admin"])) as c:
        assert c.get("/v1/usecases").status_code == 200
        assert c.get("/v1/nothing").status_code == 404
    log = srv.log()
    assert "request" in log or "models live" in log  # the log is being written
    for role, secret in secrets.items():
        assert secret not in log, role
        assert secret[len("planta_"):] not in log, role
    assert "planta_thisIsNotAToken" not in log
