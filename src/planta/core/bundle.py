"""Write model bundles (reading and verifying is :mod:`planta_edge.bundle`).

The writer is deterministic: the same members and manifest give the same bytes (fixed zip
timestamps, sorted member order), so a bundle's sha256 identifies its content.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from planta.errors import IntegrityError
from planta_edge.bundle import (
    FORMAT,
    MANIFEST,
    SEAL_BYTES,
    canonical_json,
    is_member_name,
    seal,
    sha256_bytes,
)
from planta_edge.signing import SIGNATURE

if TYPE_CHECKING:
    from planta.core.signing import Signer

_EPOCH = (1980, 1, 1, 0, 0, 0)
# Members at least this big are deflated; small JSON stays stored so that readers are quick.
_DEFLATE_FROM = 64 * 1024


def build_manifest(members: Mapping[str, bytes], **fields: Any) -> dict[str, Any]:
    """The manifest for these members: format, the given fields and each member's hash."""
    for name in members:
        if not is_member_name(name) or name in (MANIFEST, SIGNATURE):
            raise IntegrityError(f"Bundle member name {name!r} is not allowed.")
    manifest: dict[str, Any] = {"format": FORMAT}
    manifest.update(fields)
    manifest["members"] = {name: {"sha256": sha256_bytes(data), "size": len(data)}
                           for name, data in sorted(members.items())}
    return manifest


def write_bundle(members: Mapping[str, bytes], *, signer: Signer | None = None,
                 **manifest_fields: Any) -> bytes:
    """Pack members and their manifest into bundle bytes; ``signer`` adds ``signature.json``.

    >>> from planta_edge.bundle import read_bundle
    >>> data = write_bundle({"contract.json": b"{}"}, usecase="failure", version=1)
    >>> read_bundle(data).version
    1
    """
    manifest = build_manifest(members, **manifest_fields)
    head = [(MANIFEST, canonical_json(manifest))]
    if signer is not None:
        head.append((SIGNATURE, canonical_json(signer.sign_manifest(head[0][1]))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.comment = b"0" * SEAL_BYTES
        for name, data in head + sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = (zipfile.ZIP_DEFLATED if len(data) >= _DEFLATE_FROM
                                  else zipfile.ZIP_STORED)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return seal(out.getvalue())


__all__ = ["build_manifest", "write_bundle"]
