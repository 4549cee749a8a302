"""Signed bundles: the hub's key ring, and a device refusing anything that does not verify."""

from __future__ import annotations

import json
import stat
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from planta.core.bundle import write_bundle
from planta.core.signing import Signer
from planta.errors import ConfigError, IntegrityError, NotFoundError, StateError
from planta.settings import Settings, load_settings
from planta.store.keys import KeyRing, public_keys
from planta_edge.bundle import MANIFEST, SIGNATURE, read_bundle, seal
from planta_edge.signing import PublicKey, key_id

MEMBERS = {"contract.json": b'{"fields": []}', "model.onnx": b"\x08\x07graph bytes" * 50}


def _signed(signer: Signer) -> bytes:
    return write_bundle(MEMBERS, signer=signer, usecase="failure", version=3, kind="edge")


def _rewrite(data: bytes, name: str, content: bytes) -> bytes:
    """The bundle with one member's bytes replaced, re-zipped and re-sealed: what someone who
    knows the format (but not the private key) could produce."""
    src = zipfile.ZipFile(BytesIO(data))
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        dst.comment = b"0" * 64
        for info in src.infolist():
            dst.writestr(info, content if info.filename == name else src.read(info.filename))
    return seal(out.getvalue())


# -- the key ring on the hub ---------------------------------------------------------------------

def test_key_ring_creates_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "signing")
    assert ring.signer() is None
    info = ring.create()
    pem = tmp_path / "signing" / f"{info.key_id}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "signing").stat().st_mode) == 0o700
    signer = ring.require_signer()
    assert signer.key_id == info.key_id == PublicKey.parse(info.public).key_id
    with pytest.raises(StateError, match="already exists"):
        ring.create()


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    info = ring.create()
    (tmp_path / f"{info.key_id}.pem").chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by other users"):
        ring.signer()


def test_no_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no signing key") as err:
        KeyRing(tmp_path / "none").require_signer()
    assert "planta keys create" in (err.value.hint or "")


def test_rotation_retires_the_old_key_and_deletes_its_private_part(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    first = ring.create()
    old_bundle = _signed(ring.require_signer())
    new, old = ring.rotate()
    assert old is not None and old.key_id == first.key_id and old.retired_at is not None
    assert not (tmp_path / f"{first.key_id}.pem").exists()
    assert ring.require_signer().key_id == new.key_id != first.key_id
    assert [k.key_id for k in ring.keys()] == [first.key_id, new.key_id]
    new_bundle = _signed(ring.require_signer())
    # During the changeover a device trusts both keys and accepts bundles from before and after.
    both = [k.text for k in public_keys(ring)]
    assert read_bundle(old_bundle, trusted_keys=both).signed_by == first.key_id
    assert read_bundle(new_bundle, trusted_keys=both).signed_by == new.key_id
    # A device that was not given the new key refuses the new bundles, naming the key.
    with pytest.raises(IntegrityError, match=f"key {new.key_id}, which this device does not"):
        read_bundle(new_bundle, trusted_keys=[PublicKey.parse(first.public)])


def test_signing_keys_inside_the_project_are_refused(tmp_path: Path) -> None:
    inside = Settings(root=tmp_path, signing_keys=str(tmp_path / ".planta" / "keys"))
    with pytest.raises(ConfigError, match="inside the project folder"):
        _ = inside.resolved_signing_keys
    env = {"PLANTA_SIGNING_KEYS": str(tmp_path.parent / "elsewhere")}
    assert load_settings(tmp_path, {}, env).resolved_signing_keys == \
        (tmp_path.parent / "elsewhere").resolve()
    toml = {"signing": {"keys": str(tmp_path.parent / "from-toml")}}
    assert load_settings(tmp_path, toml, {}).resolved_signing_keys.name == "from-toml"


# -- the device side ----------------------------------------------------------------------------

def test_a_signed_bundle_verifies_with_every_key_form() -> None:
    signer = Signer.generate()
    data = _signed(signer)
    pem = signer.public_pem()
    for key in (signer.public_key.text, pem, pem.decode(), signer.public_key.raw,
                signer.public_key):
        bundle = read_bundle(data, trusted_keys=[key])
        assert bundle.signed_by == signer.key_id
        assert bundle.members["model.onnx"] == MEMBERS["model.onnx"]
    block = json.loads(zipfile.ZipFile(BytesIO(data)).read(SIGNATURE))
    assert block["key_id"] == key_id(signer.public_key.raw)
    # The hub reads its own bundles without keys; the signature member is not a stray member.
    assert read_bundle(data).signature is not None


def test_one_altered_byte_anywhere_is_refused() -> None:
    signer = Signer.generate()
    data = _signed(signer)
    trusted = [signer.public_key.text]
    for pos in range(0, len(data), max(1, len(data) // 97)):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            read_bundle(bytes(bad), trusted_keys=trusted)


def test_an_altered_member_with_a_recomputed_seal_is_refused() -> None:
    signer = Signer.generate()
    data = _signed(signer)
    tampered = bytearray(MEMBERS["model.onnx"])
    tampered[5] ^= 0xFF
    bad = _rewrite(data, "model.onnx", bytes(tampered))
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        read_bundle(bad, trusted_keys=[signer.public_key.text])


def test_an_altered_manifest_fails_the_signature() -> None:
    signer = Signer.generate()
    data = _signed(signer)
    manifest = json.loads(zipfile.ZipFile(BytesIO(data)).read(MANIFEST))
    manifest["version"] = 4
    bad = _rewrite(data, MANIFEST, json.dumps(manifest, sort_keys=True,
                                              separators=(",", ":")).encode())
    with pytest.raises(IntegrityError, match="changed after the hub signed it"):
        read_bundle(bad, trusted_keys=[signer.public_key.text])
    # Without trusted keys (the hub's own reader) the hashes still hold: only the signature
    # catches a rewritten manifest.
    assert read_bundle(bad).version == 4


def test_a_bundle_signed_with_another_key_is_refused() -> None:
    ours, theirs = Signer.generate(), Signer.generate()
    with pytest.raises(IntegrityError, match=f"signed with key {theirs.key_id}") as err:
        read_bundle(_signed(theirs), trusted_keys=[ours.public_key.text])
    assert ours.key_id in err.value.message


def test_a_forged_signature_block_naming_our_key_is_refused() -> None:
    ours, theirs = Signer.generate(), Signer.generate()
    data = _signed(theirs)
    block = json.loads(zipfile.ZipFile(BytesIO(data)).read(SIGNATURE))
    block["key_id"] = ours.key_id
    bad = _rewrite(data, SIGNATURE, json.dumps(block).encode())
    with pytest.raises(IntegrityError, match=f"signature by key {ours.key_id} does not match"):
        read_bundle(bad, trusted_keys=[ours.public_key.text])


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_a_truncated_bundle_is_refused(keep: float) -> None:
    signer = Signer.generate()
    data = _signed(signer)
    with pytest.raises(IntegrityError, match="altered or damaged"):
        read_bundle(data[: int(len(data) * keep)], trusted_keys=[signer.public_key.text])


def test_an_unsigned_bundle_is_refused_on_a_device() -> None:
    data = write_bundle(MEMBERS, usecase="failure", version=3)
    with pytest.raises(IntegrityError, match="is not signed"):
        read_bundle(data, trusted_keys=[Signer.generate().public_key.text])


def test_a_device_that_trusts_no_key_says_so() -> None:
    with pytest.raises(ConfigError, match="trusts no signing key"):
        read_bundle(_signed(Signer.generate()), trusted_keys=[])


@pytest.mark.parametrize("key", ["ed25519:not-base64!", "ssh-ed25519 AAAA", b"\x00" * 31,
                                 "ed25519:" + "A" * 40])
def test_unreadable_trusted_keys_are_named(key: str | bytes) -> None:
    with pytest.raises(ConfigError):
        PublicKey.parse(key)


def test_a_member_cannot_be_named_like_the_signature() -> None:
    with pytest.raises(IntegrityError, match="not allowed"):
        write_bundle({SIGNATURE: b"{}"}, usecase="x")
