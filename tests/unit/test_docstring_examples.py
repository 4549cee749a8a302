"""Every ``>>>`` example in planta's and planta-edge's module docstrings runs and prints what it
says: the examples are the first thing a reader copies, so a stale one is a bug."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "src", ROOT / "edge" / "src")


def _modules_with_examples() -> list[str]:
    names = []
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                names.append(".".join(path.relative_to(base).with_suffix("").parts))
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found() -> None:
    # Guards the collection itself: a broken path would make every example test vanish.
    assert len(MODULES) >= 40
    assert "planta.services.split" in MODULES and "planta_edge.contract" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             report=False)
    assert result.attempted > 0, f"{name} has '>>>' but doctest found no example in it"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
