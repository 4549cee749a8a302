"""The e2e tests' way to call `planta`: in process through Typer's runner, checking the exit code
and that no traceback reached the user. A module of its own (not conftest) so that test files
can import it whichever folders pytest collects together."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from planta.cli.app import app

runner = CliRunner()
# The installed command, for the tests that run it as a user would.
PLANTA = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))


def planta(*args: str, code: int | None = 0, env: dict[str, str] | None = None) -> str:
    """Run `planta ARGS`; its output. ``code`` is the exit code expected (None: any)."""
    result = runner.invoke(app, list(args), env=env)
    if code is not None:
        assert result.exit_code == code, f"planta {' '.join(args)} -> {result.exit_code}:\n" \
                                         f"{result.output}"
    assert "Traceback" not in result.output
    return result.output


def planta_json(*args: str, code: int | None = 0, env: dict[str, str] | None = None) -> Any:
    """Run `planta ARGS --json`; the parsed document."""
    return json.loads(planta(*args, "--json", code=code, env=env))
