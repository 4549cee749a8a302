"""Online backup and restore of a project's store: one ``.tar.gz`` with a manifest of hashes.

    backup.tar.gz
      planta.db                 a consistent copy of the SQLite store, taken while planta runs
      artifacts/ab/cdef…        every artifact, by digest
      project/planta.toml       the project's settings and use cases   } only when backup()
      project/contracts/*.toml  the editable data contracts            } gets project_dir
      manifest.json             format, time, planta version, audit head and count,
                                sha256 and size of every other member

**Consistency.** The database is copied with SQLite's online backup API in one step: it reads
one snapshot (WAL mode lets writers go on meanwhile), so the copy is a state the store really
was in. Artifacts are copied after the database; they are immutable and are always written
before the registry row that names them, so every artifact the copied database refers to is
already there. Artifacts added during the backup may or may not be included; none is needed.

**PostgreSQL.** A PostgreSQL store is backed up with PostgreSQL's own tool, which is consistent
and online too::

    pg_dump --format=custom --file planta.dump "postgresql://user@host/db"
    pg_restore --clean --dbname "postgresql://user@host/db" planta.dump

and the artifact folder (or bucket) is copied beside it. :func:`backup` says so and stops.

**Restore** checks every member against the manifest before anything is put in place, refuses
members that are not plain files or whose names are absolute or contain ``..``, and refuses to
replace a store that holds anything unless ``force=True``. Stop planta (server, jobs) before
restoring over a store in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from planta.errors import IntegrityError, StoreError, keyed, phrase
from planta.store.artifacts import ArtifactStore
from planta.store.audit import GENESIS, AuditLog
from planta.store.metadata import Store, open_store, utc_now

FORMAT = "planta.backup/1"
DB_MEMBER = "planta.db"
MANIFEST = "manifest.json"
_ARTIFACT = re.compile(r"^artifacts/([0-9a-f]{2})/([0-9a-f]{62})$")
# The project files a backup may carry, and nothing else from the project folder.
_PROJECT = re.compile(r"^project/(planta\.toml|contracts/[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\.toml)$")
_CHUNK = 1 << 20
# Where a project keeps its store when no URL is given (as planta.project lays it out).
DEFAULT_DB = Path(".planta/planta.db")
DEFAULT_ARTIFACTS = Path(".planta/artifacts")


@dataclass(frozen=True)
class BackupInfo:
    """What :func:`backup` wrote."""

    file: str
    created_at: str
    audit_head: str
    audit_count: int
    n_artifacts: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "created_at": self.created_at, "audit_head": self.audit_head,
                "audit_count": self.audit_count, "n_artifacts": self.n_artifacts,
                "size_bytes": self.size_bytes}


@dataclass(frozen=True)
class RestoreInfo:
    """What :func:`restore` put back, and whether the restored audit trail checks out."""

    file: str
    db_path: str
    artifacts_url: str
    created_at: str
    n_artifacts: int
    audit_head: str
    audit_count: int
    audit_ok: bool
    audit_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "db_path": self.db_path, "artifacts_url": self.artifacts_url,
                "backup_created_at": self.created_at, "n_artifacts": self.n_artifacts,
                "audit_head": self.audit_head, "audit_count": self.audit_count,
                "audit_ok": self.audit_ok, "audit_problems": list(self.audit_problems)}


def backup(store: Store, artifacts: ArtifactStore, dest_file: str | os.PathLike[str], *,
           project_dir: str | os.PathLike[str] | None = None) -> BackupInfo:
    """Write a consistent backup of ``store`` and ``artifacts`` to ``dest_file`` (.tar.gz).

    Safe while planta keeps writing. The file appears only when complete (written beside it,
    then renamed) and is readable by its owner only. With ``project_dir``, the project's
    ``planta.toml`` and ``contracts/*.toml`` go in too, so a restore into an empty folder gives
    a whole project back.

    Raises:
        StoreError: the store is PostgreSQL (use pg_dump, see the module docs), or the copy
            failed.
        IntegrityError: an artifact no longer matches its digest.
    """
    if store.dialect != "sqlite":
        raise StoreError(f"planta backup copies SQLite stores; the store at {store.url} is "
                         f"{store.dialect}.",
                         hint="Back it up with `pg_dump --format=custom --file planta.dump "
                         "<database URL>` and copy the artifact store beside it.")
    dest = Path(dest_file)
    manifest: dict[str, Any] = {"format": FORMAT, "created_at": utc_now().isoformat(),
                                "planta_version": _planta_version(), "database": DB_MEMBER,
                                "files": {}}
    with tempfile.TemporaryDirectory(prefix="planta-backup-") as work:
        copy = Path(work) / DB_MEMBER
        _copy_sqlite(store, copy)
        head, count = _audit_head(copy)
        manifest["audit"] = {"head": head, "count": count}
        fd, tmp = tempfile.mkstemp(prefix=".backup-", suffix=".tar.gz", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                    with copy.open("rb") as f:
                        manifest["files"][DB_MEMBER] = _add(tar, DB_MEMBER, f,
                                                            copy.stat().st_size)
                    n_artifacts = 0
                    for digest in artifacts.digests():
                        name = f"artifacts/{digest[:2]}/{digest[2:]}"
                        with artifacts.open(digest) as f:
                            entry = _add(tar, name, f, artifacts.size(digest))
                        if entry["sha256"] != digest:
                            raise IntegrityError(f"Artifact {digest[:12]}… in {artifacts.url} "
                                                 "is damaged: its content no longer matches "
                                                 "its sha256, so the backup stopped.",
                                                 hint="Restore that artifact from an older "
                                                 "backup, then back up again.")
                        manifest["files"][name] = entry
                        n_artifacts += 1
                    for name, path in _project_files(project_dir):
                        with path.open("rb") as f:
                            manifest["files"][name] = _add(tar, name, f, path.stat().st_size)
                    data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
                    _add(tar, MANIFEST, _BytesReader(data), len(data))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return BackupInfo(file=str(dest), created_at=manifest["created_at"], audit_head=head,
                      audit_count=count, n_artifacts=n_artifacts,
                      size_bytes=dest.stat().st_size)


def _project_files(project_dir: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    if project_dir is None:
        return []
    root = Path(project_dir)
    found = [root / "planta.toml", *sorted((root / "contracts").glob("*.toml"))]
    out = []
    for path in found:
        name = "project/" + path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and _PROJECT.match(name):
            out.append((name, path))
    return out


def _planta_version() -> str:
    import planta

    return str(planta.__version__)


def _copy_sqlite(store: Store, target: Path) -> None:
    """Copy the live database into ``target`` with SQLite's online backup API."""
    with store.errors("back up"):
        raw = store.engine.raw_connection()
        try:
            source = raw.driver_connection
            assert isinstance(source, sqlite3.Connection)
            dest = sqlite3.connect(target)
            try:
                # pages=-1: the whole database in one step, from one read snapshot, so a
                # concurrent commit cannot make the copy restart or mix two states.
                source.backup(dest, pages=-1)
                # A single self-contained file; the restored store switches back to WAL.
                dest.execute("PRAGMA journal_mode=DELETE")
                check = dest.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                dest.close()
        finally:
            raw.close()
    if check != "ok":
        raise StoreError(f"The copy of the planta store at {store.url} fails SQLite's integrity "
                         f"check: {check}.",
                         hint="The store itself may be damaged; keep older backups and run "
                         "`planta audit verify`.")


def _audit_head(db: Path) -> tuple[str, int]:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
        count = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    finally:
        conn.close()
    return (row[0] if row else GENESIS), int(count)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk, self._pos = self._data[self._pos:end], min(end, len(self._data))
        return chunk


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        chunk: bytes = self.inner.read(n)
        self.sha.update(chunk)
        self.size += len(chunk)
        return chunk


def _add(tar: tarfile.TarFile, name: str, f: Any, size: int) -> dict[str, Any]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    reader = _Hashing(f)
    tar.addfile(info, reader)
    if reader.size != size:
        raise StoreError(f"{name} changed size while it was backed up ({size} → {reader.size} "
                         "bytes).", hint="Run the backup again.")
    return {"sha256": reader.sha.hexdigest(), "size": size}


# -- restore -----------------------------------------------------------------------------------
def restore(src_file: str | os.PathLike[str], project_dir: str | os.PathLike[str], *,
            force: bool = False, store_url: str | None = None,
            artifacts_url: str | None = None) -> RestoreInfo:
    """Restore a backup made by :func:`backup` into a project folder.

    Args:
        src_file: the ``.tar.gz`` backup.
        project_dir: the project folder; the store goes to ``.planta/planta.db`` and the
            artifacts to ``.planta/artifacts`` inside it unless ``store_url`` (a
            ``sqlite:///`` file URL) or ``artifacts_url`` say otherwise.
        force: replace a store that already holds data (its artifacts are kept: they are
            content-addressed, so extra ones do no harm), and the project's ``planta.toml``
            and contract files when the backup carries them. Without it, project files that
            already exist are left as they are.

    Returns:
        :class:`RestoreInfo`, including the check of the restored audit trail against the
        head hash recorded in the manifest.

    Raises:
        IntegrityError: the archive is not a planta backup, a member fails its hash, or a
            member's name is unsafe (absolute, ``..``, a link): nothing is restored then.
        StoreError: the target store holds data and ``force`` is False, or it is PostgreSQL.
    """
    src = Path(src_file)
    root = Path(project_dir)
    db_path = _target_db(root, store_url)
    artifacts = ArtifactStore(artifacts_url if artifacts_url else root / DEFAULT_ARTIFACTS)
    if not force:
        _refuse_if_not_empty(db_path, artifacts)
    try:
        manifest, n_artifacts = _unpack(src, db_path, artifacts, root, force=force)
    except OSError as exc:
        raise StoreError(f"Cannot restore {src} into {db_path.parent}: "
                         f"{exc.strerror or exc}.",
                         hint="Check free disk space and the folder's permissions.") from exc
    store = open_store(f"sqlite:///{db_path}")
    try:
        audit = manifest.get("audit") or {}
        check = AuditLog(store).verify(known_head=audit.get("head") or GENESIS)
    finally:
        store.close()
    return RestoreInfo(file=str(src), db_path=str(db_path), artifacts_url=artifacts.url,
                       created_at=str(manifest.get("created_at")), n_artifacts=n_artifacts,
                       audit_head=check.head, audit_count=check.count, audit_ok=check.ok,
                       audit_problems=list(check.problems))


def _unpack(src: Path, db_path: Path, artifacts: ArtifactStore, root: Path, *,
            force: bool) -> tuple[dict[str, Any], int]:
    """Check every member, then put artifacts and the database in place."""
    db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _open_tar(src) as tar, tempfile.TemporaryDirectory(
            prefix=".restore-", dir=db_path.parent) as work:
        members = [_checked_member(src, m) for m in tar.getmembers()]
        staged: dict[str, dict[str, Any]] = {}
        for member in members:
            staged[member.name] = _stage(tar, member, Path(work))
        manifest = _read_manifest(src, Path(work) / MANIFEST if MANIFEST in staged else None)
        _compare(src, manifest, staged)
        # Everything checked: put it in place. Artifacts first, then the database that
        # refers to them (the same order planta writes them in).
        n_artifacts = 0
        for name in staged:
            match = _ARTIFACT.match(name)
            if match:
                digest = artifacts.put_file(Path(work) / name)
                if digest != match.group(1) + match.group(2):  # pragma: no cover - checked
                    raise IntegrityError(f"{src}: {name} does not match its name.")
                n_artifacts += 1
            elif _PROJECT.match(name):
                # The name was checked against _PROJECT: planta.toml or contracts/<name>.toml.
                target = root / name.removeprefix("project/")
                if force or not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(Path(work) / name, target)
        for suffix in ("-wal", "-shm", "-journal"):
            # A log left from the replaced database would be replayed into the restored one.
            Path(str(db_path) + suffix).unlink(missing_ok=True)
        os.chmod(Path(work) / DB_MEMBER, 0o600)
        os.replace(Path(work) / DB_MEMBER, db_path)
    return manifest, n_artifacts


def _target_db(root: Path, store_url: str | None) -> Path:
    if not store_url:
        return root / DEFAULT_DB
    url = make_url(store_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise StoreError(f"planta restore writes SQLite stores; this project's store is "
                         f"{url.render_as_string(hide_password=True)}.",
                         hint="Restore a PostgreSQL store with `pg_restore --clean --dbname "
                         "<database URL> planta.dump`.")
    path = Path(url.database)
    return path if path.is_absolute() else root / path


def _refuse_if_not_empty(db_path: Path, artifacts: ArtifactStore) -> None:
    held: list[dict[str, Any]] = []
    if db_path.exists() and db_path.stat().st_size > 0:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            # Whole statements, not a table name pasted into SQL (bandit B608).
            for query, what in (("SELECT count(*) FROM model_versions", "models"),
                                ("SELECT count(*) FROM dataset_versions", "datasets"),
                                ("SELECT count(*) FROM audit_events", "events")):
                try:
                    n = conn.execute(query).fetchone()[0]
                except sqlite3.DatabaseError:
                    continue  # no such table (yet): nothing held there
                if n:
                    held.append(phrase(f"backup.held.{what}", n=n))
        finally:
            conn.close()
    n_artifacts = sum(1 for _ in artifacts.digests())
    if n_artifacts:
        held.append(phrase("backup.held.artifacts", n=n_artifacts))
    if held:
        raise keyed(StoreError, "backup.not_empty", path=db_path,
                    held={"items": held, "sep": ", "})


@contextmanager
def _open_tar(src: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(src, mode="r:gz")  # noqa: SIM115 - closed below, errors translated
    except (OSError, tarfile.TarError) as exc:
        raise keyed(IntegrityError, "backup.not_backup", src=src, problem=exc) from exc
    with tar:
        try:
            yield tar
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise keyed(IntegrityError, "backup.damaged", src=src, problem=exc) from exc


def _checked_member(src: Path, member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Refuse anything but a plain file with an expected, relative name."""
    name = member.name
    parts = PurePosixPath(name).parts
    unsafe = (name.startswith(("/", "\\")) or ".." in parts or "\\" in name or "\x00" in name
              or re.match(r"^[A-Za-z]:", name) is not None)
    if unsafe:
        raise IntegrityError(f"{src} contains {name!r}, a path outside the project folder: "
                             "refused, nothing was restored.",
                             hint="This is not a backup written by planta, or it was altered.")
    if not member.isreg():
        raise IntegrityError(f"{src} contains {name!r}, which is not a plain file (a link or "
                             "a device): refused, nothing was restored.",
                             hint="This is not a backup written by planta, or it was altered.")
    if name not in (MANIFEST, DB_MEMBER) and not _ARTIFACT.match(name) \
            and not _PROJECT.match(name):
        raise IntegrityError(f"{src} contains {name!r}, which a planta backup never holds: "
                             "refused, nothing was restored.",
                             hint="This is not a backup written by planta, or it was altered.")
    return member


def _stage(tar: tarfile.TarFile, member: tarfile.TarInfo, work: Path) -> dict[str, Any]:
    target = work / member.name  # the name was checked: relative, no "..", expected shape
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    source = tar.extractfile(member)
    assert source is not None
    sha, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            sha.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return {"sha256": sha.hexdigest(), "size": size}


def _read_manifest(src: Path, path: Path | None) -> dict[str, Any]:
    if path is None:
        raise keyed(IntegrityError, "backup.no_manifest", src=src, manifest=MANIFEST)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{src}: {MANIFEST} is not valid JSON ({exc}).",
                             hint="The backup is damaged; use an older one.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IntegrityError(f"{src}: {MANIFEST} is not a {FORMAT} manifest.",
                             hint="Restore it with the planta version that wrote it.")
    return manifest


def _compare(src: Path, manifest: dict[str, Any], staged: dict[str, dict[str, Any]]) -> None:
    listed = manifest.get("files") or {}
    present = {k: v for k, v in staged.items() if k != MANIFEST}
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    changed = sorted(k for k in set(listed) & set(present)
                     if listed[k].get("sha256") != present[k]["sha256"]
                     or listed[k].get("size") != present[k]["size"])
    problems = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
        ([f"not in the manifest: {', '.join(extra[:5])}"] if extra else []) + \
        ([f"hash mismatch: {', '.join(changed[:5])}"] if changed else [])
    if DB_MEMBER not in present:
        problems.append(f"no {DB_MEMBER}")
    if problems:
        raise keyed(IntegrityError, "backup.mismatch", src=src, problems="; ".join(problems))


__all__ = ["FORMAT", "BackupInfo", "RestoreInfo", "backup", "restore"]
