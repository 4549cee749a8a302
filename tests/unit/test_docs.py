"""The documentation that is generated from code stays equal to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from planta.core.lifecycle import as_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_lifecycle_doc_shows_the_enforced_table() -> None:
    doc = ROOT / "docs" / "LIFECYCLE.md"
    if not doc.exists():
        pytest.skip("docs/ not present beside the tests (installed without the repository)")
    assert as_markdown().strip() in doc.read_text(encoding="utf-8")
