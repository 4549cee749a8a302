"""Shared fixtures: a throwaway PostgreSQL server, a store URL for each engine, and (from
``mqtt_broker.py``) a real Mosquitto broker.

The server is started once per test session from the PostgreSQL server binaries
(``apt-get install postgresql``) in a private folder, on a free loopback port, and stopped at
the end. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` OS user.
Each test gets its own database, so tests never see each other's data.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_broker import free_port
from ulid import ULID

READY_TIMEOUT_S = 60.0

# The real Mosquitto broker (fixture ``mosquitto``) and the served project and `planta serve`
# processes (``served_project``, ``server``, ...): one definition for every folder.
pytest_plugins = ["mqtt_broker", "servers"]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    # The server refuses root; as an ordinary user it simply runs as that user.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server; yield the URL of its ``postgres`` database."""
    import psycopg

    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="planta-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL server binaries are installed but there is no 'postgres' "
                        "OS user to run them as")
        os.chown(folder, user.pw_uid, user.pw_gid)
    port = free_port()
    log = folder / "server.log"
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                     "--auth=trust", "--encoding=UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        # fsync off: a throwaway cluster needs no durability, and tests run much faster.
        options = (f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                                     "-o", options, "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(folder, ignore_errors=True)
        text = log.read_text() if log.exists() else ""
        pytest.fail(f"Could not start PostgreSQL: {exc}\n{output.decode(errors='replace')}\n"
                    f"{text}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                                 connect_timeout=2):
                break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not accept connections within "
                            f"{READY_TIMEOUT_S:.0f} s:\n{log.read_text()}")
            time.sleep(0.1)
    try:
        yield url
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                     "-w", "stop"]), capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    import psycopg

    name = "t_" + str(ULID()).lower()
    port = postgres_server.split(":")[-1].split("/")[0]
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty store: a real SQLite file, or a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'planta.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    """An opened store on each engine (see ``store_url``), closed after the test."""
    from planta.store.metadata import open_store

    s = open_store(store_url)
    yield s
    s.close()
