"""Online backup and the restore drill, on a real SQLite file with writers running."""

from __future__ import annotations

import io
import json
import stat
import tarfile
import threading
import time
from pathlib import Path

import pytest

from planta.errors import IntegrityError, StoreError
from planta.store import ArtifactStore, AuditLog, Registry, open_store
from planta.store.backup import backup, restore

PASS = {"passed": True, "reasons": []}


def project(root: Path):
    (root / ".planta").mkdir(parents=True)
    store = open_store(f"sqlite:///{root / '.planta' / 'planta.db'}")
    return store, ArtifactStore(root / ".planta" / "artifacts")


def fill(store, artifacts, n_models: int = 3) -> None:
    registry = Registry(store)
    snapshot = artifacts.put_bytes(b"UDI,Torque [Nm]\n1,42.8\n")
    registry.add_dataset_version("failure", content_hash=snapshot, snapshot_digest=snapshot,
                                 source_name="history.csv", n_rows=1, n_accepted=1,
                                 n_rejected=0, created_by="ana", report={"rows": 1})
    for n in range(n_models):
        bundle = artifacts.put_bytes(f"bundle {n}".encode())
        registry.register_model("failure", 1, bundle, 8, {"recall": 0.8 + n / 100}, PASS,
                                "luis", {"estimator": "lightgbm"},
                                [{"estimator": "lightgbm", "params": {"n": n},
                                  "cv_scores": [0.8], "score": 0.8, "duration_s": 1.0}])
        registry.promote("failure", n + 1, actor="ana", role="approver", reason=f"v{n + 1}")
    if n_models > 1:
        registry.rollback("failure", actor="ana", role="approver", reason="back one")


def snapshot_of(store) -> dict:
    registry = Registry(store)
    return {
        "datasets": [d.to_dict() for d in registry.list_dataset_versions("failure")],
        "models": [m.to_dict() for m in registry.list_models("failure")],
        "aliases": registry.aliases("failure"),
        "transitions": [t.to_dict() for t in registry.list_transitions("failure")],
        "trials": [t.to_dict() for v in (1, 2, 3) for t in registry.list_trials("failure", v)],
        "audit": [e.to_dict() for e in AuditLog(store).events(limit=None)],
    }


def test_restore_drill_gives_back_the_same_registry(tmp_path) -> None:
    store, artifacts = project(tmp_path / "plant")
    fill(store, artifacts)
    before = snapshot_of(store)
    info = backup(store, artifacts, tmp_path / "plant.tar.gz")
    assert info.n_artifacts == 4 and info.audit_count == len(before["audit"])
    assert info.audit_head == AuditLog(store).head()
    assert stat.S_IMODE((tmp_path / "plant.tar.gz").stat().st_mode) == 0o600
    store.close()

    restored_info = restore(tmp_path / "plant.tar.gz", tmp_path / "fresh")
    assert restored_info.audit_ok and restored_info.audit_head == info.audit_head
    assert restored_info.n_artifacts == 4
    with open_store(f"sqlite:///{tmp_path / 'fresh' / '.planta' / 'planta.db'}") as again:
        assert snapshot_of(again) == before
        assert AuditLog(again).verify(known_head=info.audit_head).ok
        restored = ArtifactStore(tmp_path / "fresh" / ".planta" / "artifacts")
        for model in Registry(again).list_models("failure"):
            assert restored.verify(model.bundle_digest)
        # The restored store is a working store: it accepts new moves.
        Registry(again).rollback("failure", actor="ana", role="approver", reason="drill")
    json.dumps(restored_info.to_dict())


def test_backup_is_consistent_while_others_write(tmp_path) -> None:
    store, artifacts = project(tmp_path / "plant")
    fill(store, artifacts)
    url = f"sqlite:///{tmp_path / 'plant' / '.planta' / 'planta.db'}"
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with open_store(url) as own:
                log, registry = AuditLog(own), Registry(own)
                i = 0
                while not stop.is_set():
                    log.append("score", f"usecase/failure/batch/{i}", "olga", {"i": i})
                    registry.add_batch("failure", 1, f"b{i}.csv", None, 10, 10, 0,
                                       actor="olga", duration_s=0.01)
                    i += 1
                    written.append(i)
        except Exception as exc:  # noqa: BLE001 - pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(written) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    infos = [backup(store, artifacts, tmp_path / f"b{k}.tar.gz") for k in range(3)]
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and len(written) >= 20
    for k, info in enumerate(infos):
        result = restore(tmp_path / f"b{k}.tar.gz", tmp_path / f"r{k}")
        # Each copy is one real state of the store: its chain is whole up to its own head.
        assert result.audit_ok, result.audit_problems
        assert result.audit_head == info.audit_head and result.audit_count == info.audit_count
    assert AuditLog(store).verify().ok
    store.close()


def test_project_files_travel_with_the_backup_when_asked(tmp_path) -> None:
    root = tmp_path / "plant"
    store, artifacts = project(root)
    fill(store, artifacts, n_models=1)
    (root / "planta.toml").write_text("[project]\nname = 'plant'\n")
    (root / "contracts").mkdir()
    (root / "contracts" / "failure.toml").write_text("# contract\n")
    (root / "contracts" / "notes.txt").write_text("not a contract")
    (root / "secret.env").write_text("TOKEN=x")
    backup(store, artifacts, tmp_path / "b.tar.gz", project_dir=root)
    store.close()
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        names = {m.name for m in tar.getmembers()}
    assert {"project/planta.toml", "project/contracts/failure.toml"} <= names
    assert not any("notes" in n or "secret" in n for n in names)
    restore(tmp_path / "b.tar.gz", tmp_path / "fresh")
    assert (tmp_path / "fresh" / "planta.toml").read_text() == "[project]\nname = 'plant'\n"
    assert (tmp_path / "fresh" / "contracts" / "failure.toml").read_text() == "# contract\n"


def test_restore_refuses_a_store_that_holds_data_unless_forced(tmp_path) -> None:
    store, artifacts = project(tmp_path / "plant")
    fill(store, artifacts, n_models=1)
    backup(store, artifacts, tmp_path / "one.tar.gz")
    Registry(store).register_model("failure", 1, artifacts.put_bytes(b"later"), 5, {}, PASS,
                                   "luis")
    store.close()
    with pytest.raises(StoreError, match="already holds") as info:
        restore(tmp_path / "one.tar.gz", tmp_path / "plant")
    assert "--force" in (info.value.hint or "")
    result = restore(tmp_path / "one.tar.gz", tmp_path / "plant", force=True)
    assert result.audit_ok
    with open_store(f"sqlite:///{tmp_path / 'plant' / '.planta' / 'planta.db'}") as again:
        assert [m.version for m in Registry(again).list_models("failure")] == [1]


def test_restore_honours_explicit_store_and_artifact_locations(tmp_path) -> None:
    store, artifacts = project(tmp_path / "plant")
    fill(store, artifacts, n_models=1)
    backup(store, artifacts, tmp_path / "b.tar.gz")
    store.close()
    (tmp_path / "elsewhere").mkdir()
    db = tmp_path / "elsewhere" / "x.db"
    result = restore(tmp_path / "b.tar.gz", tmp_path / "unused", store_url=f"sqlite:///{db}",
                     artifacts_url=str(tmp_path / "elsewhere" / "art"))
    assert result.db_path == str(db) and db.exists()
    assert len(list(ArtifactStore(tmp_path / "elsewhere" / "art").digests())) == 2


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


@pytest.mark.parametrize("name", ["../evil.db", "artifacts/../../evil", "/etc/cron.d/planta",
                                  "project/contracts/../../../evil.toml",
                                  "C:/planta.db", "artifacts\\..\\x"])
def test_path_traversal_members_are_refused(tmp_path, name) -> None:
    archive = _archive(tmp_path / "evil.tar.gz", [(_file("manifest.json"), b"{}"),
                                                  (_file(name), b"boom")])
    with pytest.raises(IntegrityError, match="outside the project folder|never holds"):
        restore(archive, tmp_path / "target")
    assert not (tmp_path / "evil.db").exists() and not (tmp_path / "evil").exists()
    assert not any((tmp_path / "target").rglob("*.db"))


def test_links_and_unknown_members_are_refused(tmp_path) -> None:
    link = tarfile.TarInfo("planta.db")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = _archive(tmp_path / "link.tar.gz", [(link, b"")])
    with pytest.raises(IntegrityError, match="not a plain file"):
        restore(archive, tmp_path / "target")
    archive = _archive(tmp_path / "odd.tar.gz", [(_file("notes.txt"), b"hi")])
    with pytest.raises(IntegrityError, match="never holds"):
        restore(archive, tmp_path / "target")


def test_a_member_that_fails_the_manifest_is_refused(tmp_path) -> None:
    store, artifacts = project(tmp_path / "plant")
    fill(store, artifacts, n_models=1)
    backup(store, artifacts, tmp_path / "good.tar.gz")
    store.close()
    members = []
    with tarfile.open(tmp_path / "good.tar.gz", "r:gz") as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()
            if m.name.startswith("artifacts/"):
                data = data + b"!"  # tampered
            members.append((tarfile.TarInfo(m.name), data))
    archive = _archive(tmp_path / "bad.tar.gz", members)
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        restore(archive, tmp_path / "target")
    assert not (tmp_path / "target" / ".planta" / "planta.db").exists()


def test_not_a_backup_at_all(tmp_path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    with pytest.raises(IntegrityError, match="not a planta backup"):
        restore(junk, tmp_path / "target")
    archive = _archive(tmp_path / "empty.tar.gz", [(_file("planta.db"), b"x")])
    with pytest.raises(IntegrityError, match="no manifest.json"):
        restore(archive, tmp_path / "target")


def test_an_in_memory_store_can_be_backed_up(tmp_path) -> None:
    with open_store("sqlite://") as store:
        artifacts = ArtifactStore(tmp_path / "art")
        fill(store, artifacts, n_models=1)
        info = backup(store, artifacts, tmp_path / "mem.tar.gz")
    assert restore(tmp_path / "mem.tar.gz", tmp_path / "target").audit_head == info.audit_head


def test_postgresql_stores_point_to_pg_dump(postgres_url, tmp_path) -> None:
    with open_store(postgres_url) as store, pytest.raises(StoreError, match="postgresql") as info:
        backup(store, ArtifactStore(tmp_path / "art"), tmp_path / "pg.tar.gz")
    assert "pg_dump" in (info.value.hint or "")
    with pytest.raises(StoreError, match="pg_restore|SQLite"):
        restore(tmp_path / "whatever.tar.gz", tmp_path, store_url=postgres_url)


def test_a_truncated_backup_is_refused(tmp_path) -> None:
    store, artifacts = project(tmp_path / "plant")
    fill(store, artifacts, n_models=1)
    backup(store, artifacts, tmp_path / "good.tar.gz")
    store.close()
    data = (tmp_path / "good.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match="damaged|not a planta backup"):
        restore(tmp_path / "cut.tar.gz", tmp_path / "target")
    assert not (tmp_path / "target" / ".planta" / "planta.db").exists()
