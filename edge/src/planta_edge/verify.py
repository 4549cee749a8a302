"""Check a bundle's Ed25519 signature in a short-lived child process.

    device process                                   child: python -I -c _CHILD
      read_bundle: seal, zip, member names
      verify_manifest: trusted keys, key id,
        signature block, the message signed ──── stdin: key, signature, message (hex) ───►
                                                        cryptography's Ed25519 verify
                                             ◄─── stdout: "valid" (exit 0) or "invalid" ──
      manifest parsed, hashes checked, model loaded only after "valid"

Why a child: ``cryptography`` (its Rust library with its own OpenSSL) adds about 7 MB of
resident memory to the process that imports it, for good, and a device checks a signature
once at start and once per update. In a child that memory is returned as soon as the check is
done, which keeps the long-running runtime under its memory budget (bench/RESULTS.md §7).

The child does only the arithmetic (this key, this signature, this message: valid or not);
which keys are trusted, the signature block and the refusal messages stay in
:func:`planta_edge.signing.verify_manifest`, the same code as an in-process check. It imports
nothing but ``cryptography`` (about 30 ms), and runs this interpreter in isolated mode (``-I``:
no environment variables, no current folder on the import path).

The check fails closed: only the answer ``valid`` with exit status 0 accepts a signature. A
child that cannot start, crashes, times out or answers anything else refuses the bundle with
:class:`IntegrityError`, just like a bad signature.
"""

from __future__ import annotations

# Only to run this interpreter on the fixed _CHILD script (see _command).
import subprocess  # nosec B404
import sys
from collections.abc import Mapping
from typing import Any

from planta_edge.errors import IntegrityError
from planta_edge.signing import PublicKey, verify_manifest

# A check takes ~30 ms; a slow SD card and a busy CPU get ample room.
TIMEOUT_S = 60.0
_HINT = ("Check that the device's Python can import `cryptography` (`python -I -c 'import "
         "cryptography'`); until it can, the device refuses every bundle.")
# The child: Ed25519 verify of one message, nothing else.
_CHILD = """\
import sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
key, signature, message = (bytes.fromhex(part) for part in sys.stdin.read().split())
try:
    Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
except InvalidSignature:
    print("invalid")
    sys.exit(1)
print("valid")
"""


def _command() -> list[str]:
    return [sys.executable, "-I", "-c", _CHILD]


def ed25519_valid_in_child(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """:func:`planta_edge.signing.ed25519_valid`, computed in a child process.

    True only for the answer ``valid``; False for ``invalid``; :class:`IntegrityError` when
    the child gives no clear answer.
    """
    request = b" ".join(part.hex().encode("ascii") for part in (public_raw, signature, message))
    try:
        # This interpreter on the fixed script above; the bundle's bytes go in as hex on stdin.
        done = subprocess.run(_command(), input=request, capture_output=True,  # nosec B603
                              timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise IntegrityError(f"The bundle was refused: its signature could not be checked "
                             f"(the checking process did not run: {exc}).", hint=_HINT) from exc
    answer = done.stdout.strip()
    if answer == b"valid" and done.returncode == 0:
        return True
    if answer == b"invalid" and done.returncode == 1:
        return False
    detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no answer"]
    raise IntegrityError(f"The bundle was refused: its signature could not be checked (the "
                         f"checking process ended with code {done.returncode}: {detail[0]}).",
                         hint=_HINT)


def verify_in_child(manifest_bytes: bytes, block: Mapping[str, Any],
                    trusted: Mapping[str, PublicKey], where: str = "The bundle") -> str:
    """:func:`planta_edge.signing.verify_manifest` with the Ed25519 check in a child process
    (a :data:`planta_edge.bundle.Verifier`); returns the id of the key that signed."""
    return verify_manifest(manifest_bytes, block, trusted, where, check=ed25519_valid_in_child)


__all__ = ["TIMEOUT_S", "ed25519_valid_in_child", "verify_in_child"]
