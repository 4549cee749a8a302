"""Private files under the project's state folder: folders 0o700, files 0o600, whatever the
umask, so caches beside the store leak nothing another user could read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0o700 (``mkdir(parents=True)`` would give
    the parents the umask's default mode)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def private_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a 0o600 temporary file, then a rename)."""
    private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


__all__ = ["private_dirs", "private_write_text"]
