"""Read and verify a model bundle: one zip file with a sha256 manifest.

A bundle (format ``planta.bundle/1``) holds ``manifest.json`` and the members it lists
(contract, feature steps, model in its library's own text/JSON format, reference profile,
metrics, lineage). Reading never executes code from the file: members are JSON or the model
libraries' own text formats, and every member is hashed and compared with the manifest before
anything uses it. A bundle altered by one byte is refused with :class:`IntegrityError`.

A signed bundle also holds ``signature.json`` (see :mod:`planta_edge.signing`), the one member
the manifest does not list: an Ed25519 signature of the manifest's bytes. Given
``trusted_keys``, :func:`read_bundle` checks it before it even parses the manifest.

Standard library only: the edge runtime reads bundles with this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planta_edge.errors import IntegrityError
from planta_edge.signing import SIGNATURE, PublicKey, parse_signature, trusted_set, verify_manifest

FORMAT = "planta.bundle/1"
MANIFEST = "manifest.json"
# A member name is a relative path of plain segments: no "..", no absolute paths, no backslashes.
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
# Decompression-bomb guard: no member and no bundle may expand beyond these sizes.
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
# The zip comment holds the hex sha256 of every byte before it (the seal), so that a flip in any
# byte, including zip header fields that readers ignore, is caught without the registry.
SEAL_BYTES = 64
# Checks a signature: (manifest bytes, signature block, trusted keys, where) -> key id, raising
# IntegrityError when it does not verify. In this process by default; a device passes
# planta_edge.verify.verify_in_child to keep `cryptography` out of its long-running process.
Verifier = Callable[[bytes, Mapping[str, Any], Mapping[str, PublicKey], str], str]


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes.

    >>> sha256_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def canonical_json(data: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same data always gives the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def seal(data: bytes) -> bytes:
    """Stamp a zip archive written with a 64-byte placeholder comment with its seal."""
    return data[:-SEAL_BYTES] + sha256_bytes(data[:-SEAL_BYTES]).encode("ascii")


def is_sealed(data: bytes) -> bool:
    """Whether the archive's last 64 bytes are the sha256 of everything before them."""
    return (len(data) > SEAL_BYTES
            and data[-SEAL_BYTES:] == sha256_bytes(data[:-SEAL_BYTES]).encode("ascii"))


def is_member_name(name: str) -> bool:
    """Whether a member name is a safe relative path.

    >>> is_member_name("model/lightgbm.txt"), is_member_name("../etc/passwd")
    (True, False)
    """
    return bool(_MEMBER_NAME.match(name)) and ".." not in name.split("/")


@dataclass(frozen=True)
class Bundle:
    """A verified bundle in memory: its manifest and the bytes of every member."""

    manifest: dict[str, Any]
    members: Mapping[str, bytes]
    digest: str
    # The manifest exactly as stored (what a signature covers), the signature block if the
    # bundle is signed, and the id of the trusted key that was checked against it.
    manifest_bytes: bytes = b""
    signature: Mapping[str, Any] | None = None
    signed_by: str | None = None

    @property
    def usecase(self) -> str:
        return str(self.manifest.get("usecase", ""))

    @property
    def version(self) -> int | None:
        v = self.manifest.get("version")
        return int(v) if v is not None else None

    def json(self, name: str) -> Any:
        """A JSON member, parsed."""
        if name not in self.members:
            raise IntegrityError(f"The bundle has no member {name!r}.",
                                 hint="Rebuild the bundle with this version of planta.")
        try:
            return json.loads(self.members[name])
        except ValueError as exc:
            raise IntegrityError(f"Bundle member {name!r} is not valid JSON: {exc}.") from exc


def read_bundle(source: str | Path | bytes, *, expected_digest: str | None = None,
                trusted_keys: Iterable[Any] | None = None,
                verifier: Verifier = verify_manifest) -> Bundle:
    """Open a bundle file (or its bytes), verify every hash, and return it.

    ``expected_digest`` is the sha256 of the whole file as the registry recorded it; when given,
    a bundle whose file differs is refused before it is even opened. ``trusted_keys`` (public
    keys, see :class:`planta_edge.signing.PublicKey`): when given, the bundle must carry a
    signature by one of them, checked before the manifest is parsed (what a device does), by
    ``verifier`` (in this process unless told otherwise).

    Raises :class:`IntegrityError` with the member at fault when anything does not match.
    """
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        where = "the bundle"
    else:
        path = Path(source)
        where = f"bundle {path.name!r}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"Cannot find {where} at {path}.") from None
        except OSError as exc:
            raise IntegrityError(f"Cannot read {where}: {exc.strerror}.") from exc
    digest = sha256_bytes(data)
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityError(
            f"{where.capitalize()} has changed since it was registered (sha256 {digest[:12]}… "
            f"instead of {expected_digest[:12]}…).",
            hint="Do not use it: restore the file from a backup or retrain the version.")
    if not is_sealed(data):
        raise IntegrityError(f"{where.capitalize()} was altered or damaged: its seal (the sha256 "
                             "at the end of the file) does not match its content.",
                             hint="Do not use it: copy or download it again from the registry.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise IntegrityError(f"{where.capitalize()} is not a readable bundle (damaged or "
                             f"truncated file: {exc}).",
                             hint="Download or copy it again.") from exc
    with archive:
        infos = archive.infolist()
        total = 0
        for info in infos:
            if not is_member_name(info.filename):
                raise IntegrityError(f"{where.capitalize()} contains an unsafe member name "
                                     f"{info.filename!r}.", hint="Do not use this file.")
            if info.file_size > MAX_MEMBER_BYTES:
                raise IntegrityError(f"{where.capitalize()}: member {info.filename!r} would "
                                     f"expand to {info.file_size} bytes, over the limit.")
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise IntegrityError(f"{where.capitalize()} would expand to {total} bytes, over the "
                                 "limit.")
        names = [i.filename for i in infos]
        if len(names) != len(set(names)):
            raise IntegrityError(f"{where.capitalize()} lists a member twice.",
                                 hint="Do not use this file.")
        if MANIFEST not in names:
            raise IntegrityError(f"{where.capitalize()} has no manifest.json.",
                                 hint="It was not made by planta, or it is damaged.")
        try:
            raw = {name: archive.read(name) for name in names}
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise IntegrityError(f"{where.capitalize()} is damaged: {exc}.",
                                 hint="Download or copy it again.") from exc
    block = None
    signed_by = None
    if SIGNATURE in raw:
        block = parse_signature(raw[SIGNATURE], where.capitalize())
    if trusted_keys is not None:
        trusted = trusted_set(trusted_keys)
        block = parse_signature(raw.get(SIGNATURE), where.capitalize())
        signed_by = verifier(raw[MANIFEST], block, trusted, where.capitalize())
    try:
        manifest = json.loads(raw[MANIFEST])
    except ValueError as exc:
        raise IntegrityError(f"The manifest of {where} is not valid JSON.",
                             hint="The file was altered; do not use it.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IntegrityError(f"{where.capitalize()} is not a {FORMAT} bundle.")
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise IntegrityError(f"The manifest of {where} has no member list.")
    present = set(raw) - {MANIFEST, SIGNATURE}
    if present != set(listed):
        extra = sorted(present - set(listed))
        gone = sorted(set(listed) - present)
        raise IntegrityError(f"{where.capitalize()} does not match its manifest "
                             f"(unlisted: {extra}, missing: {gone}).",
                             hint="The file was altered; do not use it.")
    for name in sorted(listed):
        entry = listed[name]
        if not isinstance(entry, dict) or sha256_bytes(raw[name]) != entry.get("sha256"):
            raise IntegrityError(f"Member {name!r} of {where} does not match its recorded "
                                 "sha256: the file was altered.",
                                 hint="Do not use it: restore it from the registry or a backup.")
    members = {name: raw[name] for name in listed}
    return Bundle(manifest=manifest, members=members, digest=digest,
                  manifest_bytes=raw[MANIFEST], signature=block, signed_by=signed_by)


__all__ = ["Bundle", "FORMAT", "MANIFEST", "SIGNATURE", "Verifier", "canonical_json",
           "is_member_name", "is_sealed", "read_bundle", "seal", "sha256_bytes"]
