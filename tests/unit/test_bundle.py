"""Bundle writing and reading: round trip, determinism, and refusal of anything altered."""

from __future__ import annotations

import io
import zipfile

import pytest

from planta.core.bundle import build_manifest, write_bundle
from planta.errors import IntegrityError
from planta_edge.bundle import FORMAT, SEAL_BYTES, read_bundle, seal

MEMBERS = {"contract.json": b'{"fields": []}', "model/lightgbm.txt": b"tree\n" * 100,
           "big.json": b"0" * 100_000}


def test_round_trip_keeps_members_and_manifest_fields() -> None:
    data = write_bundle(MEMBERS, usecase="failure", version=3)
    bundle = read_bundle(data)
    assert dict(bundle.members) == MEMBERS
    assert bundle.manifest["format"] == FORMAT
    assert (bundle.usecase, bundle.version) == ("failure", 3)
    assert bundle.json("contract.json") == {"fields": []}


def test_same_content_gives_same_bytes() -> None:
    assert write_bundle(MEMBERS, version=1) == write_bundle(dict(reversed(MEMBERS.items())),
                                                            version=1)


def test_file_on_disk_and_expected_digest(tmp_path) -> None:
    data = write_bundle(MEMBERS, version=1)
    path = tmp_path / "v1.planta"
    path.write_bytes(data)
    bundle = read_bundle(path)
    assert read_bundle(path, expected_digest=bundle.digest).digest == bundle.digest
    with pytest.raises(IntegrityError, match="changed since it was registered"):
        read_bundle(path, expected_digest="0" * 64)


def test_every_single_byte_flip_is_refused() -> None:
    data = write_bundle({"contract.json": b'{"a": 1}', "model/m.txt": b"abc"}, version=1)
    for i in range(len(data)):
        altered = bytearray(data)
        altered[i] ^= 0x01
        with pytest.raises(IntegrityError):
            read_bundle(bytes(altered))


def test_truncated_bundle_is_refused() -> None:
    data = write_bundle(MEMBERS, version=1)
    with pytest.raises(IntegrityError, match="altered or damaged"):
        read_bundle(data[: len(data) // 2])


def _rezip(entries: dict[str, bytes]) -> bytes:
    """A re-packed archive with a fresh seal: what a careless tool (or a person) would make."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.comment = b"0" * SEAL_BYTES
        for name, content in entries.items():
            archive.writestr(name, content)
    return seal(out.getvalue())


def test_member_swapped_with_consistent_zip_is_refused() -> None:
    data = write_bundle(MEMBERS, version=1)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    entries["model/lightgbm.txt"] = b"evil"
    with pytest.raises(IntegrityError, match="model/lightgbm.txt"):
        read_bundle(_rezip(entries))


def test_extra_member_and_traversal_names_are_refused() -> None:
    data = write_bundle(MEMBERS, version=1)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    with pytest.raises(IntegrityError, match="unlisted"):
        read_bundle(_rezip(entries | {"extra.json": b"{}"}))
    with pytest.raises(IntegrityError, match="unsafe member name"):
        read_bundle(_rezip(entries | {"../escape.txt": b"x"}))


def test_not_a_bundle() -> None:
    with pytest.raises(IntegrityError, match="no manifest"):
        read_bundle(_rezip({"a.txt": b"x"}))
    with pytest.raises(IntegrityError, match="seal"):
        read_bundle(b"just some text")
    unsealed = write_bundle(MEMBERS, version=1)[:-SEAL_BYTES] + b"0" * SEAL_BYTES
    with pytest.raises(IntegrityError, match="seal"):
        read_bundle(unsealed)


def test_writer_refuses_unsafe_names() -> None:
    with pytest.raises(IntegrityError):
        build_manifest({"/etc/passwd": b"x"})
    with pytest.raises(IntegrityError):
        build_manifest({"manifest.json": b"{}"})
