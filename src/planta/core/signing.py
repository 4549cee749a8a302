"""Sign bundles with the hub's Ed25519 private key (checking is :mod:`planta_edge.signing`).

Pure: a :class:`Signer` holds a key in memory; where the key file lives, its mode and its
rotation are :mod:`planta.store.keys`.

>>> signer = Signer.generate()
>>> block = signer.sign_manifest(b'{"format":"planta.bundle/1"}')
>>> from planta_edge.signing import verify_manifest, trusted_set
>>> verify_manifest(b'{"format":"planta.bundle/1"}', block, trusted_set([signer.public_key]))\\
...     == signer.key_id
True
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from planta.errors import ConfigError
from planta_edge.bundle import sha256_bytes
from planta_edge.signing import ALGORITHM, SIGNATURE_FORMAT, PublicKey, signed_message


class Signer:
    """An Ed25519 private key that signs bundle manifests."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = PublicKey(private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    @classmethod
    def generate(cls) -> Signer:
        """A new random key (from the operating system's random source)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> Signer:
        """Load a private key written by :meth:`to_pem`."""
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigError("The signing key file cannot be read as a PEM private key.",
                              hint="Restore it from a backup, or make a new one with "
                                   "`planta keys rotate`.") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("The signing key file holds a key that is not Ed25519.",
                              hint="Make a new one with `planta keys rotate`.")
        return cls(key)

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (protected by the file's mode)."""
        return self._key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    def public_pem(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_manifest(self, manifest_bytes: bytes) -> dict[str, Any]:
        """The signature block (``signature.json``) for these exact manifest bytes."""
        signature = self._key.sign(signed_message(manifest_bytes))
        return {"format": SIGNATURE_FORMAT, "algorithm": ALGORITHM, "key_id": self.key_id,
                "manifest_sha256": sha256_bytes(manifest_bytes),
                "signature": base64.b64encode(signature).decode("ascii")}


__all__ = ["Signer"]
