"""The hub's bundle-signing keys, in a folder outside the project (``Settings.signing_keys``).

    <folder>/                       mode 0700
      keys.json                     which key is current; every public key, with its dates
      <key_id>.pem                  the current private key, mode 0600 (PKCS#8, Ed25519)

Rotation (``planta keys rotate``) makes a new current key and deletes the old private key; the
old public key stays listed as retired, so ``planta keys show`` can still print it for devices
that must verify bundles signed before the rotation. Nothing here is ever in the project folder,
so copying or backing up a project never copies the private key.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from planta.core.signing import Signer
from planta.errors import ConfigError, NotFoundError, StateError
from planta_edge.signing import PublicKey

INDEX = "keys.json"
INDEX_FORMAT = "planta.keys/1"


@dataclass(frozen=True)
class KeyInfo:
    """One signing key as the hub lists it (never the private part)."""

    key_id: str
    public: str                 # ed25519:<base64>
    created_at: str
    retired_at: str | None = None

    @property
    def is_current(self) -> bool:
        return self.retired_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "public_key": self.public, "created_at": self.created_at,
                "retired_at": self.retired_at,
                "status": "current" if self.is_current else "retired"}


class KeyRing:
    """The signing-key folder: create, load, rotate, list."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    # -- reading ---------------------------------------------------------------------------
    def keys(self) -> list[KeyInfo]:
        """Every key ever made here, oldest first."""
        return [KeyInfo(**k) for k in self._index().get("keys", [])]

    def current(self) -> KeyInfo | None:
        return next((k for k in self.keys() if k.is_current), None)

    def signer(self) -> Signer | None:
        """The current key, ready to sign; None when no key was made yet."""
        info = self.current()
        if info is None:
            return None
        path = self.folder / f"{info.key_id}.pem"
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"The signing key {info.key_id} is listed in {self.folder} but "
                              f"its file {path.name} is missing.",
                              hint="Restore it from a backup, or make a new key with "
                                   "`planta keys rotate`.") from None
        except OSError as exc:
            raise ConfigError(f"Cannot read the signing key {path}: {exc.strerror}.") from exc
        if mode & 0o077:
            raise ConfigError(f"The signing key {path} can be read by other users (mode "
                              f"{mode:o}).", hint=f"Run `chmod 600 {path}` (and check who "
                                                  "could have copied it).")
        signer = Signer.from_pem(data)
        if signer.key_id != info.key_id:
            raise ConfigError(f"The signing key file {path.name} holds key {signer.key_id}, "
                              f"not {info.key_id}.", hint="Restore the folder from a backup.")
        return signer

    def require_signer(self) -> Signer:
        signer = self.signer()
        if signer is None:
            raise NotFoundError(f"There is no signing key yet (looked in {self.folder}).",
                                hint="Create one with `planta keys create`; devices then "
                                     "trust the public key it prints.")
        return signer

    # -- writing ---------------------------------------------------------------------------
    def create(self) -> KeyInfo:
        """Make the first key; refuses when there is one (use :meth:`rotate` to replace it)."""
        if self.current() is not None:
            raise StateError(f"A signing key already exists in {self.folder}.",
                             hint="Use `planta keys rotate` to replace it, `planta keys show` "
                                  "to see it.")
        return self._add(Signer.generate())

    def rotate(self) -> tuple[KeyInfo, KeyInfo | None]:
        """A new current key; the old one is retired (public part kept, private deleted)."""
        old = self.current()
        new = self._add(Signer.generate(), retire=old)
        if old is not None:
            (self.folder / f"{old.key_id}.pem").unlink(missing_ok=True)
            old = next(k for k in self.keys() if k.key_id == old.key_id)
        return new, old

    def _add(self, signer: Signer, retire: KeyInfo | None = None) -> KeyInfo:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        path = self.folder / f"{signer.key_id}.pem"
        # O_EXCL with mode 0600: the private key is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(signer.to_pem())
            fh.flush()
            os.fsync(fh.fileno())
        now = datetime.now(UTC).isoformat(timespec="seconds")
        index = self._index()
        keys = index.setdefault("keys", [])
        for k in keys:
            if retire is not None and k["key_id"] == retire.key_id:
                k["retired_at"] = now
        info = KeyInfo(signer.key_id, signer.public_key.text, now)
        keys.append({"key_id": info.key_id, "public": info.public,
                     "created_at": info.created_at, "retired_at": None})
        self._write_index(index)
        return info

    def _index(self) -> dict[str, Any]:
        path = self.folder / INDEX
        if not path.exists():
            return {"format": INDEX_FORMAT, "keys": []}
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"The key list {path} cannot be read: {exc}.",
                              hint="Restore the signing folder from a backup.") from exc
        if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
            raise ConfigError(f"{path} is not a planta key list.")
        return doc

    def _write_index(self, index: dict[str, Any]) -> None:
        path = self.folder / INDEX
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1) + "\n", "utf-8")
        os.replace(tmp, path)


def public_keys(ring: KeyRing) -> list[PublicKey]:
    """Every public key of the ring (current and retired): what a device may trust."""
    return [PublicKey.parse(k.public) for k in ring.keys()]


__all__ = ["INDEX", "KeyInfo", "KeyRing", "public_keys"]
