"""Writing an export: the output folder, all or nothing, and the image files in it.

The folder is built under a hidden sibling name and renamed into place at the end, so a failed or
cancelled export leaves nothing behind and a finished one never mixes with an older one. The
name carries the host and pid of the exporting process (``.OUT.labeldesk-HOST-PID-RANDOM``): an
export that was killed cannot clean up after itself, so the next export into the same parent
folder removes every such folder of this host whose process is gone, and says so.

Integrity. Every image's bytes are hashed as they are copied (or read, before a hard link or a
re-encode) and checked against the object's name; damage is listed and the export refused at
its end, with the temporary folder removed (see :func:`labeldesk.core.store.objects.copy_verified`).

EXIF orientation. Boxes live in the upright frame. Readers disagree about EXIF: Ultralytics
(``imread`` via OpenCV, ``exif_size``) and Detectron2 rotate JPEGs upright, but plain
``PIL.Image.open`` (torchvision's ``CocoDetection`` and many hand-written COCO loaders) and
OpenCV for some other formats return the stored pixels. The only file every reader sees the same
way is one whose pixels are already upright and that carries no orientation tag, so an image
with an EXIF orientation other than 1 is written re-encoded upright by default (deterministic
encoder settings, so exports stay byte-identical); every other image is copied (or hard-linked)
byte for byte. ``upright=False`` keeps the original bytes for pipelines known to apply EXIF.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from PIL import Image, ImageOps

from ..errors import LabelDeskError, Problem, storage_error
from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.objects import ObjectDamagedError, copy_verified, read_verified, verify_file
from ..store.project import Project, _pid_alive

_CHUNK = 256
_BATCH = 16  # jobs per task: fewer futures, fewer lock hand-overs
_WORKERS = 4
JPEG_QUALITY = 95  # re-encoding loses a little; 95 with 4:4:4 chroma keeps it invisible


#: ``.OUT.labeldesk-HOST-PID-RANDOM``; releases before the host was recorded wrote
#: ``.OUT.labeldesk-PID-RANDOM``, taken to be from this host.
_TEMP_RE = re.compile(r"^\.(?P<out>.+)\.labeldesk-(?:(?P<host>.+)-)?(?P<pid>\d+)-[0-9a-f]{8}$")


def _host() -> str:
    """This machine's name as it goes into a temporary folder's name (no path separators)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


@dataclass(frozen=True)
class StaleTemp:
    """A temporary export folder that a killed export left, removed by a later export."""

    path: Path
    pid: int


def remove_stale_temps(parent: Path) -> list[StaleTemp]:
    """Remove the temporary folders of exports into ``parent`` whose process is gone.

    Only folders named by this host are judged (a pid means nothing on another machine that
    shares the folder), and only when that pid is no longer running; a live one may be an
    export in progress. Returns what was removed.
    """
    removed: list[StaleTemp] = []
    host = _host()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(m["pid"])
        if m["host"] not in (None, host) or pid == os.getpid() or _pid_alive(pid):
            continue
        path = Path(entry.path)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(StaleTemp(path, pid))
    return removed


class OutputFolder:
    """Context manager: yields a temporary folder that becomes ``out`` if the block succeeds.

    ``out`` must not exist or be an empty folder: an export never overwrites or mixes with
    files that are already there. On entry, temporary folders that killed exports left in the
    same parent are removed (:func:`remove_stale_temps`); ``removed`` lists them.
    """

    def __init__(self, out: Path | str) -> None:
        self.out = Path(out).absolute()
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise LabelDeskError(
                f"{self.out} exists and is not an empty folder; export into a new or empty folder"
            )
        self.tmp = self.out.parent / (
            f".{self.out.name}.labeldesk-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        )
        self.removed: list[StaleTemp] = []

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.removed = remove_stale_temps(self.out.parent)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError):  # disk full, permissions: the user's to fix
                # the same one message (and exit 2) as elsewhere
                known = storage_error(exc, str(self.out))
                if known is not None:
                    raise type(known)(f"export failed, no output was left: {known}") from exc
                raise LabelDeskError(f"export failed, nothing was written: {exc}") from exc
            return
        try:
            if self.out.exists():
                self.out.rmdir()  # empty, checked above; fails (and we stop) if it filled up
            os.replace(self.tmp, self.out)
        except OSError as e:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise LabelDeskError(f"cannot move the export into {self.out}: {e}") from None


@dataclass(frozen=True, slots=True)
class ImageJob:
    """One image to place at ``dest``, and optionally a text file (its YOLO labels) beside it."""

    sha: str
    orientation: int
    format: str
    dest: str  # plain strings: a Path per file costs more than writing a small label
    label: str | None = None
    text: str = ""
    size: int | None = None  # the object's byte size per its image row (messages only)


@dataclass
class ImageCounts:
    reencoded: int = 0
    linked: int = 0
    copied: int = 0
    damaged: list[Problem] = field(default_factory=list)  # objects that failed their hash


def upright_bytes(data: bytes, fmt: str) -> bytes:
    """The image's pixels rotated upright, re-encoded in its own format, no orientation tag.

    Settings are fixed (no timestamps, no optimiser randomness) so the bytes are the same on
    every export with the same Pillow. The ICC profile is kept so colours do not shift.
    """
    with Image.open(io.BytesIO(data)) as im:
        icc = im.info.get("icc_profile")
        up = ImageOps.exif_transpose(im)
    extra = {"icc_profile": icc} if icc else {}
    buf = io.BytesIO()
    if fmt == "JPEG":
        up.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, **extra)
    elif fmt == "WEBP":
        if up.mode not in ("RGB", "RGBA"):
            up = up.convert("RGBA" if "A" in up.getbands() else "RGB")
        up.save(buf, "WEBP", lossless=True, **extra)
    elif fmt == "TIFF":
        up.save(buf, "TIFF", compression="tiff_lzw", **extra)
    else:
        up.save(buf, fmt, **extra)
    return buf.getvalue()


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _write_new(path: str, data: bytes) -> None:
    """Create ``path`` (it must not exist: names are unique) holding ``data``."""
    fd = os.open(path, _NEW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def copy_file(src: str, dest: str, sha: str | None = None, size: int | None = None) -> None:
    """Copy an object to ``dest``; with ``sha``, hash the bytes on the way and refuse damage.

    Unverified copies use ``sendfile`` with as few Python-level steps as possible: each one
    hands the GIL over, and with several writer threads those hand-overs, not the disk, end up
    setting the pace. A verified copy reads the bytes anyway, so it hashes what it reads.
    """
    if sha is not None:
        copy_verified(src, dest, sha, size)
        return
    if not hasattr(os, "sendfile"):
        shutil.copyfile(src, dest)
        return
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dest, _NEW, 0o644)
        try:
            size, offset = os.fstat(fd_in).st_size, 0
            while offset < size:
                sent = os.sendfile(fd_out, fd_in, offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        finally:
            os.close(fd_out)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise
        os.unlink(dest)  # sendfile not supported between these files: plain copy
        shutil.copyfile(src, dest)
    finally:
        os.close(fd_in)


def _place(base: str, job: ImageJob, link: bool, upright: bool, verify: bool) -> str:
    src = f"{base}/{job.sha[:2]}/{job.sha[2:]}"  # ObjectStore.path, without a Path per file
    if job.label is not None:
        _write_new(job.label, job.text.encode("utf-8"))
    if upright and job.orientation != 1:
        if verify:
            data = read_verified(src, job.sha, job.size)
        else:
            with open(src, "rb") as f:
                data = f.read()
        _write_new(job.dest, upright_bytes(data, job.format))
        return "reencoded"
    if link:
        if verify:
            verify_file(src, job.sha, job.size)  # a link copies no bytes: hash them first
        try:
            os.link(src, job.dest)
            return "linked"
        except OSError:
            pass  # another file system, or links not allowed: copy instead (counted)
    copy_file(src, job.dest, job.sha if verify else None, job.size)
    return "copied"


def _place_batch(
    base: str, jobs: Sequence[ImageJob], link: bool, upright: bool, verify: bool
) -> list[str | tuple[ImageJob, ObjectDamagedError]]:
    out: list[str | tuple[ImageJob, ObjectDamagedError]] = []
    for job in jobs:
        try:
            out.append(_place(base, job, link, upright, verify))
        except ObjectDamagedError as e:  # listed with the others at the end; go on checking
            out.append((job, e))
    return out


def write_files(
    project: Project,
    chunks: Iterable[Sequence[ImageJob]],
    total: int,
    *,
    link: bool = False,
    upright: bool = True,
    verify: bool = True,
    root: Path | str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    what: str = "writing images",
) -> ImageCounts:
    """Write every job's files on a few threads, one chunk in flight at a time.

    Creating a file costs far more than filling a small one (half a millisecond on a journaled
    disk), and creation runs in parallel, so files are written by a thread pool. ``chunks`` is
    consumed lazily: while the pool writes one chunk, the caller's generator computes the next
    (label text, JSON lines), so computing and writing overlap and memory stays bounded.

    With ``verify`` (the default) each image's bytes are checked against its hash; damaged
    objects are collected in ``counts.damaged`` (named relative to ``root``) for the caller to
    refuse the export with, and every other image is still checked so the list is complete.
    """
    counts = ImageCounts()
    made: set[str] = set()
    done = 0
    prefix = f"{root}/" if root is not None else ""

    base = str(project.objects.base)

    def collect(futures: list[Future[list[str | tuple[ImageJob, ObjectDamagedError]]]]) -> int:
        n = 0
        for fut in futures:
            for how in fut.result():
                if isinstance(how, str):
                    setattr(counts, how, getattr(counts, how) + 1)
                else:
                    job, e = how
                    name = job.dest.removeprefix(prefix)
                    counts.damaged.append(Problem(f"object {job.sha}", f"{e.reason} ({name})"))
                n += 1
        return n

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        pending: list[Future[list[str | tuple[ImageJob, ObjectDamagedError]]]] = []
        try:
            for chunk in chunks:
                check_cancel(cancel)
                project.objects.ensure(job.sha for job in chunk)  # a lazy clone fetches here
                for job in chunk:
                    for path in (job.dest, job.label):
                        folder = os.path.dirname(path) if path else None
                        if folder is not None and folder not in made:
                            os.makedirs(folder, exist_ok=True)
                            made.add(folder)
                submitted = [
                    pool.submit(_place_batch, base, chunk[k : k + _BATCH], link, upright, verify)
                    for k in range(0, len(chunk), _BATCH)
                ]
                done += collect(pending)
                pending = submitted
                if progress and done:
                    progress(done, total, what)
            done += collect(pending)
            pending = []
        finally:
            for fut in pending:
                fut.cancel()
    if progress:
        progress(done, total, what)
    return counts
