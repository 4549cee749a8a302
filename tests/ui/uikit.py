"""Helpers for the browser tests: where the README's screenshots go and how they are taken.

Test files import them by name (``from uikit import SHOTS, shoot``); the ``browser`` fixture
lives in this folder's conftest.py.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

# The README's screenshots, taken by the browser tests so that they stay current: every run
# writes docs/img/ui-<name>.png (only when the picture changed), unless PLANTA_SCREENSHOTS=off,
# which still takes them but into a temporary folder (a read-only checkout, a clean CI tree).
IMG_DIR = Path(__file__).resolve().parents[2] / "docs" / "img"
VIEWPORT = {"width": 1200, "height": 800}
SHOTS = {  # name → what it shows (test_readme_shows_every_screenshot keeps README in step)
    "home": "use cases and their live versions",
    "wizard": "the wizard: a file previewed, target suggested, objective in plain words",
    "report": "the wizard's data-quality and leakage report",
    "training": "training progress, trials as they finish",
    "model": "the model page: metrics in words, threshold slider, importances",
    "version": "a candidate beside production, with the approval moves",
    "score": "score a record, its reasons, and what-if",
    "batch": "score a file as a job",
    "feedback": "upload what really happened",
    "audit": "the audit trail and its verification",
    "tokens": "tokens and roles (admin)",
}


def shoot(page: Any, name: str, tmp_dir: Path | None = None) -> Path:
    """Save what ``page`` shows (the 1200×800 viewport) as ``ui-<name>.png``, optimised."""
    assert name in SHOTS, f"add {name!r} to SHOTS (and to the README)"
    image = pytest.importorskip("PIL.Image", reason="pip install 'planta[test]' (pillow)")
    folder = IMG_DIR
    if os.environ.get("PLANTA_SCREENSHOTS", "").lower() in ("off", "0", "no"):
        folder = tmp_dir or Path(tempfile.mkdtemp(prefix="planta-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    raw = image.open(io.BytesIO(page.screenshot(animations="disabled", caret="hide")))
    # UI screenshots are flat colour: 64 colours, no dithering, keep them ~20-60 KB each.
    small = raw.convert("RGB").quantize(colors=64, method=image.Quantize.FASTOCTREE,
                                        dither=image.Dither.NONE)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    target = folder / f"ui-{name}.png"
    if not target.exists() or target.read_bytes() != buffer.getvalue():
        target.write_bytes(buffer.getvalue())
    return target
