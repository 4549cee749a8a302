"""deploy/planta.service: a systemd unit that parses, restarts, hardens, and matches the docs."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "planta.service"
DOC = ROOT / "docs" / "OPERATIONS.md"


@pytest.fixture
def unit_text() -> str:
    if not UNIT.exists():
        pytest.skip("deploy/ not present beside the tests (installed without the repository)")
    return UNIT.read_text(encoding="utf-8")


def parse(text: str) -> configparser.ConfigParser:
    # systemd unit files are INI: keys are case-sensitive, % is systemd's, not interpolation.
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text, source=str(UNIT))
    return parser


def test_the_unit_parses_with_the_key_fields(unit_text: str) -> None:
    unit = parse(unit_text)
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    service = unit["Service"]
    assert service["Restart"] == "always"
    assert service["User"] == "planta" and service["Group"] == "planta"
    workdir = service["WorkingDirectory"]
    assert workdir.startswith("/")
    assert workdir in service["ReadWritePaths"].split()
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["UMask"] == "0077"
    assert service["CapabilityBoundingSet"] == ""
    command = service["ExecStart"].split()
    assert command[0].startswith("/") and command[0].endswith("/planta")
    assert command[1] == "serve"
    assert "--cert" in command and "--key" in command
    port = int(command[command.index("--port") + 1])
    assert port >= 1024, "a port below 1024 needs a capability the unit does not grant"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_docs_show_the_same_unit(unit_text: str) -> None:
    if not DOC.exists():
        pytest.skip("docs/ not present beside the tests")
    assert unit_text in DOC.read_text(encoding="utf-8"), \
        "docs/OPERATIONS.md must show deploy/planta.service as it is"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_accepts_the_unit(unit_text: str, tmp_path: Path) -> None:
    # The program is not installed here: point ExecStart at /bin/true, keep everything else.
    unit = parse(unit_text)
    program = unit["Service"]["ExecStart"].split()[0]
    copy = tmp_path / "planta.service"
    copy.write_text(unit_text.replace(f"ExecStart={program}", "ExecStart=/bin/true"),
                    encoding="utf-8")
    out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                         text=True, timeout=60, check=False)
    if "Failed to initialize" in out.stderr or "System has not been booted" in out.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {out.stderr.strip()[:200]}")
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
