"""docs/SECURITY.md stays true: dependency floors, the installed versions, the named tests."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "SECURITY.md"
PYPROJECTS = [ROOT / "pyproject.toml", ROOT / "edge" / "pyproject.toml"]
SECURITY_TESTS = ROOT / "tests" / "server" / "test_security.py"
_ROW = re.compile(r"^\|\s*([A-Za-z0-9_.-]+)\s*\|\s*([0-9][0-9A-Za-z.]*)\s*\|(.*)\|\s*$")


def _doc() -> str:
    if not DOC.exists():
        pytest.skip("docs/ not present beside the tests (installed without the repository)")
    return DOC.read_text(encoding="utf-8")


def floors() -> dict[str, tuple[Version, bool]]:
    """package -> (floor, build only) from the table between the floors markers."""
    text = _doc()
    block = text.split("<!-- floors:start -->", 1)[1].split("<!-- floors:end -->", 1)[0]
    out = {}
    for line in block.splitlines():
        match = _ROW.match(line.strip())
        if match:
            out[canonicalize_name(match.group(1))] = (Version(match.group(2)),
                                                      "build only" in match.group(3))
    assert len(out) >= 15, "the floors table was not found or not parsed"
    return out


def declared() -> list[tuple[str, Requirement]]:
    """Every requirement of both distributions: run time, extras and build."""
    out = []
    for path in PYPROJECTS:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        project = data.get("project", {})
        groups = {"dependencies": project.get("dependencies", []),
                  "build-system": data.get("build-system", {}).get("requires", [])}
        for extra, reqs in project.get("optional-dependencies", {}).items():
            groups[f"[{extra}]"] = reqs
        for group, reqs in groups.items():
            out.extend((f"{path.relative_to(ROOT)} {group}", Requirement(r)) for r in reqs)
    return out


def lower_bound(req: Requirement) -> Version | None:
    bounds = [Version(spec.version) for spec in req.specifier
              if spec.operator in (">=", ">", "==", "~=", "===")]
    return max(bounds, default=None)


def test_declared_dependencies_are_at_or_above_their_floors() -> None:
    table = floors()
    wrong = []
    for where, req in declared():
        name = canonicalize_name(req.name)
        if name not in table:
            continue
        floor, _ = table[name]
        low = lower_bound(req)
        if low is None or low < floor:
            wrong.append(f"{where}: {req} is below the security floor {req.name}>={floor}")
    assert not wrong, "\n".join(wrong)


def test_the_environment_has_no_version_below_a_floor() -> None:
    wrong = []
    for name, (floor, build_only) in floors().items():
        if build_only:
            continue  # setuptools: a fresh venv seeds an old one; builds fetch their own
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
        if installed < floor:
            wrong.append(f"{name} {installed} is installed; the floor is {floor}")
    assert not wrong, "upgrade: " + "; ".join(wrong)


def test_openpyxl_parses_xml_through_defusedxml() -> None:
    from openpyxl import xml

    assert xml.DEFUSEDXML, "defusedxml is not installed, so openpyxl expands XML entities"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_doc_names_exists() -> None:
    text = _doc()
    missing = []
    for rel in sorted(set(re.findall(r"`(tests/[\w/]+\.py)`", text))):
        if rel == str(SECURITY_TESTS.relative_to(ROOT)):
            continue
        if not (ROOT / rel).is_file():
            missing.append(rel)
    assert not missing, f"SECURITY.md names test files that do not exist: {missing}"
    named = set(re.findall(r"\|\s*`(test_[a-z0-9_]+)`\s*\|\s*$", text, flags=re.MULTILINE))
    assert len(named) >= 10, "the attack classes table was not found"
    if not SECURITY_TESTS.exists():
        pytest.skip(f"{SECURITY_TESTS.relative_to(ROOT)} is not written yet; it must hold "
                    f"{', '.join(sorted(named))}")
    absent = named - _test_names(SECURITY_TESTS)
    assert not absent, (f"SECURITY.md names tests that {SECURITY_TESTS.name} lacks: "
                        f"{sorted(absent)}")
