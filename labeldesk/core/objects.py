"""The content-addressed image store: ``objects/sha256/ab/cdef…``.

Objects are the user's image bytes, unchanged, named by their SHA-256. They are written to a
temporary file in the destination folder, flushed to disk, made read-only and renamed into
place, so a reader never sees a half-written object and a crash leaves at most a temp file.
Adding an object that exists is a no-op: equal names mean equal bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
_READ_CHUNK = 1 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: Path) -> bool:
    """Flush every dirty page of the file system holding ``path`` with one call (Linux).

    Batch imports write thousands of objects; one ``syncfs`` before the database commit gives
    the same ordering guarantee as an ``fsync`` per file at a fraction of the cost.
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return libc.syncfs(fd) == 0
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in chunks (never whole into memory)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / "sha256"
        #: In a lazy clone, a function that brings the bytes of an object this store does not
        #: hold yet (from the remote, verified by hash before it is stored); None otherwise.
        self.fetch_missing: Callable[[str], bytes] | None = None

    def _file(self, sha: str) -> Path:
        return self.base / sha[:2] / sha[2:]

    def path(self, sha: str) -> Path:
        """The object's file; in a lazy clone, fetched first if it is not here yet.

        Everything that reads image bytes (the window, export, training, pre-labelling) goes
        through here, so a lazy clone fetches an image exactly when it is first used.
        """
        p = self._file(sha)
        if self.fetch_missing is not None and not p.is_file():
            data = self.fetch_missing(sha)
            if hashlib.sha256(data).hexdigest() != sha:
                raise OSError(f"object {sha} arrived from the remote with other content")
            self.put_bytes(data, sha)
        return p

    def ensure(self, shas: Iterable[str]) -> None:
        """In a lazy clone, fetch those of ``shas`` not here yet; a no-op in any other project.

        For readers that build object paths themselves for speed (export's file writer).
        """
        if self.fetch_missing is None:
            return
        for sha in shas:
            if not self._file(sha).is_file():
                self.path(sha)

    def has_file(self, sha: str) -> bool:
        """Whether the object's bytes are here (never fetches)."""
        return self._file(sha).is_file()

    def exists(self, sha: str) -> bool:
        return self._file(sha).is_file()

    def read_bytes(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()

    def put_bytes(self, data: bytes, sha: str | None = None, *, durable: bool = True) -> bool:
        """Store ``data``; return True if a new object was written, False if it existed.

        With ``durable=False`` the caller promises to call :meth:`sync` before it records the
        object in the database (batch imports do, to pay for one flush instead of thousands).
        """
        if sha is None:
            sha = hashlib.sha256(data).hexdigest()
        dest = self._file(sha)
        if dest.is_file():
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            _fsync_dir(dest.parent)
        return True

    def sync(self) -> None:
        """Make every object written with ``durable=False`` durable."""
        if not self.base.exists():
            return
        if not _syncfs(self.base):
            os.sync()

    def remove(self, sha: str) -> None:
        """Delete an object; only for undoing objects written by an operation that failed."""
        p = self._file(sha)
        if p.exists():
            os.chmod(p, 0o644)
            p.unlink()

    def iter_objects(self) -> Iterator[tuple[str, Path]]:
        """Every object file as ``(name, path)``; the name is what the content should hash to."""
        if not self.base.is_dir():
            return
        for d in sorted(self.base.iterdir()):
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                if f.name.startswith(TMP_PREFIX):
                    continue
                yield d.name + f.name, f

    def iter_temp_files(self) -> Iterator[Path]:
        if not self.base.is_dir():
            return
        for d in self.base.iterdir():
            if d.is_dir():
                yield from d.glob(f"{TMP_PREFIX}*")
