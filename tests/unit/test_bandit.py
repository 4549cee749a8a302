"""Static security checks on planta's own code: bandit finds nothing in src/ and edge/src/.

bandit is configured in pyproject.toml ([tool.bandit]). Its one skipped check, B101 (assert),
is replaced by a stricter one here: an assert may only narrow a type for mypy. Every kept
finding carries `# nosec BXXX` with a reason, which is checked here too.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "src", ROOT / "edge" / "src"]
NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)$")
NOSEC_WITH_ID = re.compile(r"^\s+B\d{3}(,\s*B\d{3})*(?P<reason>.*)$")


def _sources() -> list[Path]:
    if not all(folder.is_dir() for folder in SOURCES):
        pytest.skip("src/ and edge/src/ are not beside the tests (installed without the "
                    "repository)")
    return sorted(p for folder in SOURCES for p in folder.rglob("*.py"))


def test_bandit_finds_nothing() -> None:
    pytest.importorskip("bandit", reason="bandit is not installed; pip install -e '.[test]'")
    _sources()
    out = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-c", str(ROOT / "pyproject.toml"), "-f", "json",
         "-r", *[str(s) for s in SOURCES]],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert out.stdout.strip(), f"bandit printed nothing (exit {out.returncode}):\n{out.stderr}"
    report = json.loads(out.stdout)
    findings = [f"{Path(r['filename']).relative_to(ROOT)}:{r['line_number']} {r['test_id']} "
                f"({r['issue_severity']}) {r['issue_text']}" for r in report["results"]]
    assert not findings, ("bandit found (fix it, or justify it with `# nosec BXXX - why`):\n"
                          + "\n".join(findings))
    assert not report["errors"], report["errors"]
    assert report["metrics"]["_totals"]["loc"] > 1000, "bandit scanned almost nothing"


def _is_narrowing(test: ast.expr) -> bool:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return all(_is_narrowing(v) for v in test.values)
    if isinstance(test, ast.Compare):
        return (len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot)
                and isinstance(test.comparators[0], ast.Constant)
                and test.comparators[0].value is None)
    return (isinstance(test, ast.Call) and isinstance(test.func, ast.Name)
            and test.func.id == "isinstance")


def test_asserts_only_narrow_types() -> None:
    """`python -O` drops asserts, so none may guard input, a role or a hash (bandit B101)."""
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert) and not _is_narrowing(node.test):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                 f"assert {ast.unparse(node.test)}")
    assert not offenders, ("an assert that checks more than a type; raise a PlantaError "
                           "instead:\n" + "\n".join(offenders))


def test_every_nosec_names_its_check_and_says_why() -> None:
    bare = []
    for path in _sources():
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = NOSEC.search(line)
            if not match:
                continue
            ids = NOSEC_WITH_ID.match(match.group("rest"))
            reason_here = ids is not None and len(ids.group("reason").strip(" -:")) >= 10
            reason_above = i > 0 and lines[i - 1].strip().startswith("#")
            if ids is None or not (reason_here or reason_above):
                bare.append(f"{path.relative_to(ROOT)}:{i + 1}: {line.strip()}")
    assert not bare, ("write `# nosec BXXX - reason` (or the reason in a comment on the line "
                      "above):\n" + "\n".join(bare))
