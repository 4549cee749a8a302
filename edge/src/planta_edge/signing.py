"""Check a bundle's Ed25519 signature with the public keys a device trusts.

The hub signs the exact bytes of a bundle's ``manifest.json`` (which holds the sha256 of every
other member), so one signature covers the whole bundle. The signature travels inside the zip
as ``signature.json``, the one member the manifest does not list:

    {"format": "planta.signature/1", "algorithm": "ed25519",
     "key_id": "3f2a9c0d1b7e4a66",            first 16 hex of sha256(raw public key)
     "manifest_sha256": "...",                 what was signed, for people reading it
     "signature": "<base64, 64 bytes>"}

The key id lets a device trust several keys at once (key rotation: the old and the new key
during the changeover) and say which key signed a bundle it refuses. Only public keys live
here; signing (the private key) is ``planta.core.signing`` on the hub.

A public key is written as ``ed25519:<base64 of the 32 raw bytes>`` (what ``planta keys
show`` prints); PEM (``-----BEGIN PUBLIC KEY-----``) and the 32 raw bytes are accepted too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from planta_edge.errors import ConfigError, IntegrityError

SIGNATURE = "signature.json"
SIGNATURE_FORMAT = "planta.signature/1"
ALGORITHM = "ed25519"
KEY_PREFIX = "ed25519:"
# Domain separation: these signatures can never be replayed as signatures of anything else.
_CONTEXT = b"planta.bundle.signature/1\n"
_RAW_KEY_BYTES = 32
_SIGNATURE_BYTES = 64


def key_id(raw: bytes) -> str:
    """The short id of a raw public key: the first 16 hex digits of its sha256.

    >>> key_id(bytes(32))
    '66687aadf862bd77'
    """
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key a device trusts: its 32 raw bytes and their id."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != _RAW_KEY_BYTES:
            raise ConfigError(f"An Ed25519 public key has {_RAW_KEY_BYTES} bytes, this one "
                              f"{len(self.raw)}.", hint="Copy the key again from `planta keys "
                                                        "show` on the hub.")

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    @property
    def text(self) -> str:
        """``ed25519:<base64>``, the form ``planta keys show`` prints."""
        return KEY_PREFIX + base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def parse(cls, key: PublicKey | bytes | str) -> PublicKey:
        """Read a key given as ``ed25519:<base64>``, PEM text or bytes, or 32 raw bytes.

        >>> k = PublicKey.parse("ed25519:" + "A" * 43 + "=")
        >>> k.raw == bytes(32), PublicKey.parse(k.text + "  # hub key") == k
        (True, True)
        """
        if isinstance(key, PublicKey):
            return key
        if isinstance(key, (bytes, bytearray)):
            data = bytes(key)
            if len(data) == _RAW_KEY_BYTES:
                return cls(data)
            try:
                key = data.decode("ascii")
            except UnicodeDecodeError:
                raise ConfigError("A trusted key is neither 32 raw bytes nor text.",
                                  hint="Use the `ed25519:...` line that `planta keys show` "
                                       "prints.") from None
        text = key.strip()
        if text.startswith(KEY_PREFIX):
            # A line copied from `planta keys show` may keep its "# key id" comment.
            encoded = text[len(KEY_PREFIX):].split("#", 1)[0].strip()
            try:
                return cls(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                raise ConfigError(f"Trusted key {text[:24]!r}… is not valid base64.",
                                  hint="Copy the whole `ed25519:...` line from `planta keys "
                                       "show`.") from None
        if text.startswith("-----BEGIN PUBLIC KEY-----"):
            return cls(_raw_from_pem(text))
        raise ConfigError(f"Trusted key {text[:24]!r}… is not an Ed25519 public key.",
                          hint="Use the `ed25519:...` line that `planta keys show` prints.")


# An Ed25519 public key in PEM is the DER of a SubjectPublicKeyInfo, which for Ed25519 is
# always these 12 bytes followed by the 32-byte key (RFC 8410, section 4 and the example in
# section 10.1; DER has one encoding). Read without `cryptography`, which a device keeps out
# of its long-running process (see planta_edge.verify).
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _raw_from_pem(text: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    body = "".join(lines[1:-1]) if lines[-1] == "-----END PUBLIC KEY-----" else ""
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if not body or not der:
        raise ConfigError("A trusted key in PEM form cannot be read.",
                          hint="Copy it again from `planta keys show --pem`.")
    if len(der) != len(_ED25519_SPKI_PREFIX) + _RAW_KEY_BYTES \
            or not der.startswith(_ED25519_SPKI_PREFIX):
        raise ConfigError("A trusted key in PEM form is not an Ed25519 key.",
                          hint="planta signs with Ed25519 only.")
    return der[len(_ED25519_SPKI_PREFIX):]


def signed_message(manifest_bytes: bytes) -> bytes:
    """The bytes an Ed25519 signature of a bundle covers: a fixed context, then the manifest."""
    return _CONTEXT + manifest_bytes


def trusted_set(keys: Iterable[PublicKey | bytes | str]) -> dict[str, PublicKey]:
    """Key id -> key, for the keys a device trusts."""
    out: dict[str, PublicKey] = {}
    for key in keys:
        parsed = PublicKey.parse(key)
        out[parsed.key_id] = parsed
    return out


def parse_signature(data: bytes | None, where: str = "The bundle") -> dict[str, Any]:
    """The signature block of a bundle, checked for shape (not yet verified)."""
    if data is None:
        raise IntegrityError(f"{where} is not signed, and this device accepts signed bundles "
                             "only.", hint="Export it again on the hub with `planta export "
                                           "<usecase> --onnx` (the hub signs what it exports).")
    try:
        block = json.loads(data)
    except ValueError:
        raise IntegrityError(f"{where}'s signature block is not valid JSON: the file was "
                             "altered.", hint="Do not use it.") from None
    if (not isinstance(block, dict) or block.get("format") != SIGNATURE_FORMAT
            or block.get("algorithm") != ALGORITHM or not isinstance(block.get("key_id"), str)
            or not isinstance(block.get("signature"), str)):
        raise IntegrityError(f"{where}'s signature block is not a {SIGNATURE_FORMAT} Ed25519 "
                             "signature.", hint="Do not use it.")
    return block


def ed25519_valid(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by this key, checked
    in this process with `cryptography` (a device uses :mod:`planta_edge.verify` instead)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def verify_manifest(manifest_bytes: bytes, block: Mapping[str, Any],
                    trusted: Mapping[str, PublicKey], where: str = "The bundle", *,
                    check: Callable[[bytes, bytes, bytes], bool] = ed25519_valid) -> str:
    """Check that a trusted key signed these manifest bytes; return the key id.

    ``check`` does the Ed25519 arithmetic (key, signature, message -> valid?); everything else
    (which keys are trusted, the block's shape, the message signed) is decided here.

    Raises :class:`IntegrityError` naming the key when it is not trusted or the signature
    does not match (the manifest, and so the bundle, was changed after signing).
    """
    if not trusted:
        raise ConfigError("This device trusts no signing key, so it cannot accept any bundle.",
                          hint="Add the hub's public key (`planta keys show` on the hub) to "
                               "the device's trusted keys.")
    kid = str(block["key_id"])
    key = trusted.get(kid)
    if key is None:
        raise IntegrityError(
            f"{where} is signed with key {kid}, which this device does not trust (it trusts "
            f"{', '.join(sorted(trusted))}).",
            hint="If the hub's key was rotated, add its new public key (`planta keys show`) to "
                 "the device; otherwise do not use this bundle.")
    try:
        signature = base64.b64decode(block["signature"], validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != _SIGNATURE_BYTES or not check(key.raw, signature,
                                                       signed_message(manifest_bytes)):
        raise IntegrityError(f"{where}'s signature by key {kid} does not match its manifest: "
                             "the bundle was changed after the hub signed it.",
                             hint="Do not use it: download it again from the hub.")
    return kid


__all__ = ["ALGORITHM", "KEY_PREFIX", "SIGNATURE", "SIGNATURE_FORMAT", "PublicKey",
           "ed25519_valid", "key_id", "parse_signature", "signed_message", "trusted_set",
           "verify_manifest"]
