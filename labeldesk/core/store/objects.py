"""The content-addressed image store: ``objects/sha256/ab/cdef…``.

Objects are the user's image bytes, unchanged, named by their SHA-256. They are written to a
temporary file in the destination folder, flushed to disk, made read-only and renamed into
place, so a reader never sees a half-written object and a crash leaves at most a temp file.
Adding an object that exists is a no-op: equal names mean equal bytes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LabelDeskError

if TYPE_CHECKING:
    import hashlib


def _sha256(data: bytes = b"") -> hashlib._Hash:
    """A new SHA-256. ``hashlib`` is imported here, on the first hash, not with the module:
    loading OpenSSL costs a read command (which opens a project but hashes nothing) about as
    much as all of its own work."""
    import hashlib

    return hashlib.sha256(data)


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
    import ctypes  # here, not at the top: ctypes.util costs read commands' start-up
    import ctypes.util

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
    h = _sha256()
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
        self._base_text = os.fspath(self.base)
        self._folders: set[str] = set()  # fan-out folders known to exist
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
            if _sha256(data).hexdigest() != sha:
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
        """Whether the object's bytes are here (never fetches). On a text path, not a Path: a
        fetch asks this of every image, and pathlib interns each name it parses."""
        return os.path.isfile(os.path.join(self._base_text, sha[:2], sha[2:]))

    def exists(self, sha: str) -> bool:
        return self.has_file(sha)

    def read_bytes(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()

    def put_bytes(self, data: bytes, sha: str | None = None, *, durable: bool = True) -> bool:
        """Store ``data``; return True if a new object was written, False if it existed.

        With ``durable=False`` the caller promises to call :meth:`sync` before it records the
        object in the database (batch imports do, to pay for one flush instead of thousands).
        Plain ``os`` calls on text paths, folders made once per store: an import writes
        thousands of small objects, and pathlib objects and repeated ``mkdir`` calls cost more
        than the write itself.
        """
        if sha is None:
            sha = _sha256(data).hexdigest()
        folder = os.path.join(self._base_text, sha[:2])
        dest = os.path.join(folder, sha[2:])
        if os.path.isfile(dest):
            return False
        tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            try:
                fd = os.open(tmp, flags, 0o644)
            except FileNotFoundError:  # the folder was removed since we made it
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, flags, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if durable:
                    os.fsync(fd)
                os.fchmod(fd, 0o444)  # read-only whatever the umask: objects never change
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if durable:
            _fsync_dir(Path(folder))
        return True

    def sync(self) -> None:
        """Make every object written with ``durable=False`` durable."""
        if not self.base.exists():
            return
        if not _syncfs(self.base):
            os.sync()

    def remove(self, sha: str) -> bool:
        """Delete an object; True if a file was deleted, False if there was none.

        Only :meth:`Project.drop_pending` (and a lazy clone's clean-up) call this, under the
        write lock, after checking that no row refers to the object and no other operation has
        journaled it: another process may be committing rows that point at these very bytes.
        Never fetches: a missing object of a lazy clone is simply not there to remove.
        """
        p = self._file(sha)
        try:
            p.unlink()  # on POSIX the file's own read-only mode does not matter, only the folder's
        except FileNotFoundError:
            return False
        except PermissionError:  # systems that refuse to unlink a read-only file
            os.chmod(p, 0o644)
            p.unlink()
        return True

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


# -- verified reads: export, evaluation and training never use bytes they have not checked ----

_O_BINARY = getattr(os, "O_BINARY", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY


class ObjectDamagedError(LabelDeskError):
    """An object file whose bytes are not the ones its name promises (or that cannot be read).

    ``reason`` is fsck's wording ("corrupt (content hashes to …)", "truncated (n of m bytes)",
    "object file is missing", "not a regular file"), so the two tools describe a damage alike.
    """

    def __init__(self, sha: str, reason: str) -> None:
        self.sha = sha
        self.reason = reason
        super().__init__(f"object {sha}: {reason}")


def _open_object(path: Path | str, sha: str) -> tuple[int, int]:
    """Open an object for reading: ``(fd, size)``. Only a regular file is ever read.

    ``O_NONBLOCK`` makes opening a FIFO that replaced an object return at once instead of
    waiting for a writer forever; the ``fstat`` then refuses it (and devices, folders).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_BINARY)
    except FileNotFoundError:
        raise ObjectDamagedError(sha, "object file is missing") from None
    except OSError as e:
        raise ObjectDamagedError(sha, f"unreadable ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ObjectDamagedError(sha, "not a regular file")
    return fd, st.st_size


def _check_digest(sha: str, digest: str, n: int, size: int | None) -> None:
    if digest == sha:
        return
    if size is not None and n < size:
        raise ObjectDamagedError(sha, f"truncated ({n} of {size} bytes)")
    raise ObjectDamagedError(sha, f"corrupt (content hashes to {digest})")


def _chunks_of(fd: int, st_size: int, sha: str) -> Iterator[bytes]:
    """The file's bytes in chunks of at most 1 MiB, as many as ``fstat`` said it holds.

    The size is known, so the usual small image takes one ``read`` and no second one to see
    the end (and no 1 MiB buffer for a 2 kB file). What is yielded is what gets hashed and
    used, so a file that changed size meanwhile cannot slip unchecked bytes through.
    """
    left = st_size
    while left > 0:
        try:
            chunk = os.read(fd, min(left, _READ_CHUNK))
        except OSError as e:  # an I/O error on the store's disk is damage too, named like fsck
            raise ObjectDamagedError(sha, f"unreadable ({e.strerror or e})") from None
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def read_verified(path: Path | str, sha: str, size: int | None = None) -> bytes:
    """The bytes of the object ``sha`` at ``path``, after checking they hash to ``sha``.

    ``size`` (the image row's byte count), when given, only makes the message say "truncated"
    for a short file. Raises :class:`ObjectDamagedError`; never returns unchecked bytes.
    """
    fd, st_size = _open_object(path, sha)
    try:
        parts = list(_chunks_of(fd, st_size, sha))
    finally:
        os.close(fd)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    _check_digest(sha, _sha256(data).hexdigest(), len(data), size)
    return data


def verify_file(path: Path | str, sha: str, size: int | None = None) -> None:
    """Check that the object file at ``path`` hashes to ``sha`` (before a hard link shares it:
    a link copies no bytes, so it would otherwise pass damage on unseen)."""
    fd, st_size = _open_object(path, sha)
    h = _sha256()
    n = 0
    try:
        for chunk in _chunks_of(fd, st_size, sha):
            h.update(chunk)
            n += len(chunk)
    finally:
        os.close(fd)
    _check_digest(sha, h.hexdigest(), n, size)


def copy_verified(src: Path | str, dest: Path | str, sha: str, size: int | None = None) -> None:
    """Copy the object ``sha`` at ``src`` to the new file ``dest``, hashing the bytes on the way.

    The bytes are read once, hashed and written (the hash costs what reading costs, not a second
    pass). If they do not hash to ``sha``, ``dest`` is removed and :class:`ObjectDamagedError`
    raised. Errors writing ``dest`` (disk full) are raised as the ``OSError`` they are.
    """
    fd_in, st_size = _open_object(src, sha)
    try:
        h = _sha256()
        n = 0
        fd_out = os.open(dest, _NEW_FILE, 0o644)
        try:
            for chunk in _chunks_of(fd_in, st_size, sha):
                h.update(chunk)
                n += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view) :]
        finally:
            os.close(fd_out)
        try:
            _check_digest(sha, h.hexdigest(), n, size)
        except ObjectDamagedError:
            os.unlink(dest)
            raise
    finally:
        os.close(fd_in)


def read_object(store: ObjectStore, sha: str, size: int | None = None) -> bytes:
    """:func:`read_verified` of ``sha`` in ``store``: the read for evaluation and training."""
    return read_verified(store.path(sha), sha, size)
