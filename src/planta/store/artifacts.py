"""The artifact store: immutable files (bundles, snapshots, profiles) named by their sha256.

    <root>/ab/cdef0123…   the file whose sha256 is "abcdef0123…" (2 + 62 hex characters)

The root is a local folder (a plain path or ``file://``) by default, or any fsspec URL
(``memory://`` in tests, ``s3://bucket/prefix`` when a plant outgrows one box). Writing the
same bytes twice stores them once. Digests are checked against ``[0-9a-f]{64}`` before they
touch a path, so no string from a user is ever joined into one.

Local writes go to a private temporary file (mode 0o600) in the same folder, are flushed to
disk, and renamed into place: a reader sees the whole file or none of it, even after a power
cut. Object stores (S3) make each upload atomic themselves.

>>> store = ArtifactStore("memory://planta-doc")
>>> digest = store.put_bytes(b"torque,speed\\n")
>>> digest[:12], store.get_bytes(digest)
('a62f4eb290ad', b'torque,speed\\n')
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from planta.errors import InputError, IntegrityError, NotFoundError, StoreError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20  # 1 MiB: streams a multi-GB snapshot in constant memory


def check_digest(digest: str) -> str:
    """``digest`` if it is a sha256 hex digest, else :class:`InputError`.

    >>> check_digest("../../etc/passwd")
    Traceback (most recent call last):
    ...
    planta_edge.errors.InputError: '../../etc/passwd' is not an artifact digest (64 lowercase hex characters).
    """
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InputError(f"{digest!r} is not an artifact digest (64 lowercase hex characters).")
    return digest


class ArtifactStore:
    """Content-addressed files behind a folder or an fsspec URL."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        text = os.fspath(url)
        self.url = text
        self.root: Path | None = None  # set for a local folder
        self._fs: Any = None
        self._prefix = ""
        if "://" not in text or text.startswith("file://"):
            self.root = Path(text.removeprefix("file://"))
            self.root = self.root.expanduser().absolute()
            with self._errors("create"):
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            import fsspec  # imported here: `import planta.store` stays light

            try:
                self._fs, self._prefix = fsspec.core.url_to_fs(text)
            except (ImportError, ValueError) as exc:
                raise StoreError(f"Cannot open the artifact store {text}: {exc}.",
                                 hint="Check [store] artifacts in planta.toml; an s3:// URL "
                                 "needs the s3fs package.") from exc
            self._prefix = self._prefix.rstrip("/")

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine."""
        return self.root is not None

    # -- writing ---------------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha256 digest (nothing is written if already there)."""
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        with self._errors("write"):
            if self.root is not None:
                final = self._local(digest)
                final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=final.parent)
                with _cleanup(tmp):
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
                        out.flush()
                        os.fsync(out.fileno())
                    _publish(tmp, final)
            else:
                self._fs.pipe_file(self._remote(digest), bytes(data))
        return digest

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path`` (streamed, any size); return its sha256 digest."""
        source = Path(path)
        with self._errors("write"):
            if self.root is None:
                digest = _hash_stream(source.open("rb"))
                if not self.exists(digest):
                    self._fs.put_file(str(source), self._remote(digest))
                return digest
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
            with _cleanup(tmp):
                sha = hashlib.sha256()
                with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        sha.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                digest = sha.hexdigest()
                if not self.exists(digest):
                    final = self._local(digest)
                    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    _publish(tmp, final)
            return digest

    # -- reading ---------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        """True when the artifact is stored."""
        check_digest(digest)
        with self._errors("read"):
            if self.root is not None:
                return self._local(digest).is_file()
            return bool(self._fs.exists(self._remote(digest)))

    def get_bytes(self, digest: str) -> bytes:
        """The artifact's bytes, checked against its digest.

        Raises:
            NotFoundError: no such artifact.
            IntegrityError: the stored bytes no longer match the digest (disk or tampering).
        """
        with self.open(digest) as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"Artifact {digest[:12]}… in {self.url} is damaged: its content "
                                 "no longer matches its sha256.",
                                 hint="Restore the artifact store from a backup "
                                 "(`planta restore`).")
        return data

    def open(self, digest: str) -> IO[bytes]:
        """Open the artifact for reading (binary; not re-hashed: use :meth:`verify`)."""
        self._require(digest)
        with self._errors("read"):
            if self.root is not None:
                return self._local(digest).open("rb")
            return self._fs.open(self._remote(digest), "rb")  # type: ignore[no-any-return]

    def local_path(self, digest: str) -> Path | None:
        """The artifact's file on this machine, or None when the store is not a local folder.

        Raises:
            NotFoundError: no such artifact.
        """
        self._require(digest)
        return self._local(digest) if self.root is not None else None

    def size(self, digest: str) -> int:
        """The artifact's size in bytes."""
        self._require(digest)
        with self._errors("read"):
            if self.root is not None:
                return self._local(digest).stat().st_size
            return int(self._fs.size(self._remote(digest)))

    def verify(self, digest: str) -> bool:
        """Re-hash the stored artifact: True when it still matches its digest."""
        with self.open(digest) as f:
            return _hash_stream(f) == digest

    def digests(self) -> Iterator[str]:
        """Every stored digest, sorted."""
        with self._errors("list"):
            if self.root is not None:
                found = [p.parent.name + p.name for p in self.root.glob("??/*")
                         if p.is_file() and not p.name.startswith(".")]
            else:
                found = []
                for name in self._fs.find(self._prefix):
                    parts = str(name).rstrip("/").split("/")
                    found.append("".join(parts[-2:]))
        yield from sorted(d for d in found if _DIGEST.match(d))

    # -- paths -----------------------------------------------------------------------------
    def _local(self, digest: str) -> Path:
        check_digest(digest)
        assert self.root is not None
        return self.root / digest[:2] / digest[2:]

    def _remote(self, digest: str) -> str:
        check_digest(digest)
        return f"{self._prefix}/{digest[:2]}/{digest[2:]}"

    def _require(self, digest: str) -> None:
        if not self.exists(digest):
            raise NotFoundError(f"Artifact {digest[:12]}… is not in the artifact store "
                                f"{self.url}.",
                                hint="The store may be incomplete: restore it from a backup "
                                "(`planta restore`), or check [store] artifacts in "
                                "planta.toml.")

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (InputError, NotFoundError, IntegrityError):
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc)
            hint = ("Free some disk space, then try again." if getattr(exc, "errno", None) == 28
                    else "Check [store] artifacts in planta.toml and the folder's permissions.")
            raise StoreError(f"Cannot {doing} the artifact store {self.url}: {reason}.",
                             hint=hint) from exc


def _hash_stream(f: IO[bytes]) -> str:
    sha = hashlib.sha256()
    with f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _publish(tmp: str, final: Path) -> None:
    """Rename a flushed temporary file into place and make the rename itself durable."""
    os.replace(tmp, final)
    try:
        fd = os.open(final.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def _cleanup(tmp: str) -> Iterator[None]:
    """Remove the temporary file if anything went wrong before it was renamed."""
    try:
        yield
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


__all__ = ["ArtifactStore", "check_digest"]
