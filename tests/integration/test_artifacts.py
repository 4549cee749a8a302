"""The artifact store: one suite over a plain folder, a file:// URL and fsspec's memory://."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from ulid import ULID

from planta.errors import InputError, IntegrityError, NotFoundError, StoreError
from planta.store import ArtifactStore


@pytest.fixture(params=["path", "file-url", "memory"])
def artifacts(request, tmp_path) -> ArtifactStore:
    if request.param == "path":
        return ArtifactStore(tmp_path / "artifacts")
    if request.param == "file-url":
        return ArtifactStore(f"file://{tmp_path / 'artifacts'}")
    return ArtifactStore(f"memory://planta-{ULID()}")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def corrupt(store: ArtifactStore, digest: str, data: bytes) -> None:
    if store.is_local:
        path = store.local_path(digest)
        os.chmod(path, 0o600)
        path.write_bytes(data)
    else:
        store._fs.pipe_file(store._remote(digest), data)


def test_bytes_round_trip_by_digest(artifacts) -> None:
    data = b"UDI,Torque [Nm]\n1,42.8\n"
    digest = artifacts.put_bytes(data)
    assert digest == sha(data)
    assert artifacts.exists(digest) and artifacts.get_bytes(digest) == data
    with artifacts.open(digest) as f:
        assert f.read() == data
    assert artifacts.size(digest) == len(data) and artifacts.verify(digest)


def test_the_same_bytes_are_stored_once(artifacts) -> None:
    first = artifacts.put_bytes(b"same")
    second = artifacts.put_bytes(b"same")
    assert first == second and list(artifacts.digests()) == [first]


def test_empty_content_is_an_artifact_too(artifacts) -> None:
    digest = artifacts.put_bytes(b"")
    assert artifacts.get_bytes(digest) == b""


def test_files_are_streamed_in(artifacts, tmp_path) -> None:
    big = tmp_path / "snapshot.parquet"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    big.write_bytes(data)
    digest = artifacts.put_file(big)
    assert digest == sha(data) and artifacts.get_bytes(digest) == data
    assert artifacts.put_file(big) == digest
    assert list(artifacts.digests()) == [digest]


def test_layout_is_two_hex_then_the_rest(artifacts) -> None:
    digest = artifacts.put_bytes(b"layout")
    if artifacts.is_local:
        assert artifacts.local_path(digest) == artifacts.root / digest[:2] / digest[2:]
    else:
        assert artifacts.local_path(digest) is None
        assert artifacts._fs.exists(f"{artifacts._prefix}/{digest[:2]}/{digest[2:]}")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "ab", "A" * 64,
                                 "g" * 64, "a" * 63 + "/", "", "a" * 65])
def test_anything_but_a_digest_is_refused_before_it_becomes_a_path(artifacts, bad) -> None:
    for call in (artifacts.exists, artifacts.get_bytes, artifacts.open, artifacts.local_path,
                 artifacts.verify, artifacts.size):
        with pytest.raises(InputError, match="not an artifact digest"):
            call(bad)


def test_a_missing_artifact_is_not_found(artifacts) -> None:
    missing = sha(b"never stored")
    assert not artifacts.exists(missing)
    for call in (artifacts.get_bytes, artifacts.open, artifacts.local_path, artifacts.verify):
        with pytest.raises(NotFoundError, match="restore it from a backup"):
            call(missing)


def test_damage_is_detected(artifacts) -> None:
    digest = artifacts.put_bytes(b"model weights")
    corrupt(artifacts, digest, b"model weightz")
    assert artifacts.verify(digest) is False
    with pytest.raises(IntegrityError, match="damaged"):
        artifacts.get_bytes(digest)


def test_concurrent_writers_of_the_same_bytes_agree(artifacts) -> None:
    data = os.urandom(200_000)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(artifacts.put_bytes(data)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {sha(data)} and artifacts.get_bytes(sha(data)) == data


def test_local_files_and_folders_are_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        store = ArtifactStore(tmp_path / "artifacts")
        digest = store.put_bytes(b"private")
        source = tmp_path / "in.bin"
        source.write_bytes(b"also private")
        streamed = store.put_file(source)
    finally:
        os.umask(old)
    for d in (digest, streamed):
        path = store.local_path(d)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    store = ArtifactStore(tmp_path / "artifacts")

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StoreError, match="No space left") as info:
        store.put_bytes(b"too big")
    assert "disk space" in (info.value.hint or "")
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_digests_ignore_foreign_files(tmp_path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest = store.put_bytes(b"real")
    (store.root / "README").write_text("not an artifact")
    (store.root / "zz").mkdir()
    (store.root / "zz" / "nope").write_text("x")
    assert list(store.digests()) == [digest]


def test_an_unusable_folder_is_a_store_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="Cannot create the artifact store"):
        ArtifactStore(blocker / "artifacts")


def test_an_unknown_protocol_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="Cannot open the artifact store"):
        ArtifactStore("nosuchprotocol://bucket/x")


def test_a_relative_folder_is_made_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = ArtifactStore("rel/artifacts")
    assert store.root == Path(tmp_path / "rel" / "artifacts")
