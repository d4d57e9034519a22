"""``labeldesk add``: bring image files into a project as a new version.

The import is all or nothing. Files are probed (fully decoded) first; every image not yet in
the project is journaled in ``pending_object`` and then stored, so that a killed import can be
cleaned up; the rows and the version are committed in one final transaction after one flush of
the object store. Any error, cancel or Ctrl-C before that removes, under the write lock, the
objects this import journaled that no image row refers to and no other running import has
journaled, so the project is exactly as it was and nothing another process committed (or is
committing) is lost. The user's files are only ever read.
"""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..boxes import EMPTY_SET_HASH, Box, CanonicalSet, PackedSet
from ..errors import Problem
from ..images import BadImageError, ImageInfo, probe
from ..paths import display_path, walk_files
from ..progress import CancelFn, ProgressFn, check_cancel
from .manifest import Entry, ManifestStore
from .packed import label_set, pack_labels, put_label_copies
from .project import Project, now_iso
from .versions import Version, get_version, head, write_version

#: Files probed per chunk; the threads work one chunk ahead of the writer (see ``_probed``).
CHUNK = 64
#: A step journals, then stores, the images of whole chunks until it holds this many files or
#: this many bytes: one journal transaction (one fsync of the database) per step instead of one
#: per chunk. The bytes bound keeps what is held in memory small for large photos.
STEP_FILES = 1024
STEP_BYTES = 64 << 20


@dataclass(frozen=True)
class Added:
    path: str
    sha256: str
    info: ImageInfo


@dataclass(frozen=True)
class Duplicate:
    path: str
    sha256: str
    of: str  # "the project" or the earlier path in this import


@dataclass
class AddReport:
    added: list[Added] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    version: Version | None = None

    def to_json(self) -> dict:
        return {
            "version": self.version.id if self.version else None,
            "added": [{"path": a.path, "sha256": a.sha256} for a in self.added],
            "duplicates": [
                {"path": d.path, "sha256": d.sha256, "of": d.of} for d in self.duplicates
            ],
            "skipped": [{"path": p.where, "reason": p.reason} for p in self.skipped],
        }


def collect_files(
    paths: Sequence[Path | str], *, follow_links: bool = False
) -> tuple[list[Path], list[Problem]]:
    """Expand files and folders (recursively) into a sorted list of files to look at.

    Files named on the command line are read as named. Inside a folder, links follow the one
    rule of :mod:`.paths`: a link (to a file or a folder) that leads out of the folder is
    reported and not read unless ``follow_links``; nothing is skipped without a report.
    """
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def take(p: Path) -> None:
        if p not in seen:
            seen.add(p)
            files.append(p)

    def report(p: Path, reason: str) -> None:
        problems.append(Problem(display_path(p), reason))

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            report(p, "no such file or folder")
        elif p.is_dir():
            for f in walk_files(p, report, follow_links=follow_links):
                take(f)
        elif p.is_file():
            take(p)
        else:
            report(p, "not a regular file")
    return files, problems


def _read_whole(path: Path) -> bytes:
    """A file's bytes with plain ``os`` calls: open, fstat, one read, close (``open()`` adds a
    buffered reader and a tty check per file, more than reading a small image costs).

    Asking for one byte more than ``fstat`` said shows in the same read that the file ends
    there; a file that grew or shrank since, or one larger than a single read returns (2 GiB
    on Linux), is read on to its end."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) == size:
            return data
        parts = [data]
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _read_and_probe(path: Path) -> tuple[Path, str | None, bytes | None, ImageInfo | str]:
    """Read one file whole, hash it and decode it fully: ``(path, sha, data, info)``, or
    ``(path, None, None, reason)`` when it is not an image we take."""
    try:
        data = _read_whole(path)
    except OSError as e:
        return path, None, None, f"cannot read: {e.strerror or e}"
    try:
        info = probe(data)
    except BadImageError as e:
        return path, None, None, str(e)
    return path, hashlib.sha256(data).hexdigest(), data, info


def _probe_all(paths: list[Path]) -> list[tuple]:
    """:func:`_read_and_probe` of several files: one thread task for a few files, since a task
    per file cost more in scheduling (a future, a queue hand-over, a wake-up) than decoding a
    small image does."""
    return [_read_and_probe(p) for p in paths]


def _probed(files: list[Path], workers: int) -> Iterator[list[tuple]]:
    """Probe files on a few threads (reading, decoding and hashing release the GIL), chunk by
    chunk, ahead of the caller: while the caller journals and stores one step, the threads are
    already decoding the next, so neither the disk writes nor the decode waits on the other.

    How far ahead follows the bytes seen so far: one chunk at first (and for large photos),
    up to a step (``STEP_FILES``) of small images, so that what is in flight here stays near
    ``STEP_BYTES``: file sizes are only known once read, and a ``stat`` per file to learn them
    first would cost more than it saves."""
    most = max(1, STEP_FILES // CHUNK)
    # Two tasks a thread per chunk: few hand-overs, and a large photo still leaves the other
    # threads work to do.
    per_task = max(1, CHUNK // (2 * workers))
    pending: deque[list[Future]] = deque()
    seen_files = seen_bytes = 0
    start = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            while start < len(files) or pending:
                depth = 1
                if seen_bytes:
                    depth = int(STEP_BYTES * seen_files / (seen_bytes * CHUNK))
                    depth = max(1, min(most, depth))
                while start < len(files) and len(pending) <= depth:
                    chunk = files[start : start + CHUNK]
                    pending.append(
                        [
                            pool.submit(_probe_all, chunk[j : j + per_task])
                            for j in range(0, len(chunk), per_task)
                        ]
                    )
                    start += CHUNK
                results = [r for f in pending.popleft() for r in f.result()]
                seen_files += len(results)
                seen_bytes += sum(len(data) for _, _, data, _ in results if data is not None)
                yield results
        finally:
            # Given up (an error or a cancel in the caller): do not decode what nobody reads.
            for futures in pending:
                for f in futures:
                    f.cancel()


_frozen_lock = threading.Lock()
_frozen_by = 0  # stagings open in this process


def _freeze_heap() -> None:
    """Keep the garbage collector's full passes off the objects that exist when an import
    starts (the parsed dataset, the modules, a window's widgets) until it ends.

    An import makes tens of thousands of objects that live until its commit (one set of
    results per image); their number starts full collections, and each one walked the whole
    heap, the COCO file's parsed records included: a tenth of a 8,000-image import's CPU time.
    ``gc.freeze`` only moves the objects to a generation that is not walked; everything made
    from now on is still collected, and ``gc.unfreeze`` when the last staging ends hands the
    frozen ones back to the collector."""
    global _frozen_by
    with _frozen_lock:
        gc.freeze()
        _frozen_by += 1


def _unfreeze_heap() -> None:
    global _frozen_by
    with _frozen_lock:
        _frozen_by -= 1
        if _frozen_by == 0:
            gc.unfreeze()


class Staging:
    """Stage image files into the object store, then commit them with rows in one go.

    Use as a context manager: leaving the block by an exception (or a cancel) closes this
    staging's journal and removes the objects it journaled that nothing else needs, so the
    project is exactly as before (see :meth:`Project.drop_pending`). Labelled-dataset importers
    stage the files, build entries from what was measured, then call :meth:`commit`.

    Every image not yet in the project is journaled before its file is relied on, whether this
    staging writes the file or finds it already there (written by another import that is still
    running, and that may yet fail): the journal row is what stops that other import, or a
    recovery, from deleting the file before this staging commits rows that point at it.
    """

    def __init__(
        self,
        project: Project,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        workers: int | None = None,
    ) -> None:
        self.project = project
        self.progress = progress
        self.cancel = cancel
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.op = uuid.uuid4().hex
        self.infos: dict[str, ImageInfo] = {}
        self.sizes: dict[str, int] = {}  # byte size of each staged image (its object's size)
        self.sources: list[tuple[str, str]] = []
        self.known = {r[0] for r in project.db.execute("SELECT sha256 FROM image")}
        self.committed = False

    def __enter__(self) -> Staging:
        _freeze_heap()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.committed:
                self.abort()
        finally:
            _unfreeze_heap()

    def abort(self) -> None:
        """Undo this staging: under the write lock, delete each object it journaled that no
        image row refers to and no other import has journaled, and close its journal."""
        self.project.drop_pending([self.op])

    def stage_files(
        self, files: Sequence[Path], what: str = "importing images"
    ) -> list[tuple[Path, str | None, ImageInfo | str]]:
        """Probe and store ``files``; returns ``(path, sha or None, info or reason)`` each."""
        out: list[tuple[Path, str | None, ImageInfo | str]] = []
        step: list[tuple] = []
        step_bytes = 0
        total = len(files)
        for chunk in _probed(list(files), self.workers):
            check_cancel(self.cancel)
            step += chunk
            step_bytes += sum(len(data) for _, _, data, _ in chunk if data is not None)
            if len(step) >= STEP_FILES or step_bytes >= STEP_BYTES:
                self._store_step(step, out)
                step, step_bytes = [], 0
                if self.progress:
                    self.progress(len(out), total, what)
        if step:
            self._store_step(step, out)
            if self.progress:
                self.progress(len(out), total, what)
        return out

    def _store_step(
        self, step: list[tuple], out: list[tuple[Path, str | None, ImageInfo | str]]
    ) -> None:
        """Journal the new images of ``step``, then store them; append each file's outcome."""
        fresh = {
            sha
            for _, sha, _, _ in step
            if sha is not None and sha not in self.known and sha not in self.infos
        }
        if fresh:
            # Journal before writing or relying on the file: a kill between the two leaves a
            # known leftover, never an orphan nobody can account for, and another import that
            # fails meanwhile leaves these files alone (see the class docstring). The journal
            # transaction is durable (synchronous FULL) before the first file of the step is
            # written, so that holds after a power cut too; journalling a step of many files at
            # once keeps that order and pays one fsync per step, not one per chunk.
            started = now_iso()
            host, pid = socket.gethostname(), os.getpid()
            with self.project.transaction():
                self.project.db.conn.executemany(
                    "INSERT OR IGNORE INTO pending_object (sha256, op, pid, host, started) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(sha, self.op, pid, host, started) for sha in fresh],
                )
        put_bytes = self.project.objects.put_bytes
        cwd = os.getcwd()
        for path, sha, data, info in step:
            if sha is None:
                out.append((path, None, str(info)))
                continue
            assert isinstance(info, ImageInfo) and data is not None
            # os.path rather than Path.absolute(): same text, a fraction of the cost.
            shown = os.fspath(path)
            if not os.path.isabs(shown):
                shown = os.path.join(cwd, shown)
            self.sources.append((sha, display_path(shown)))
            if sha in fresh:
                put_bytes(data, sha, durable=False)
                fresh.discard(sha)  # the same bytes twice in one step: stored once
            self.infos[sha] = info
            self.sizes[sha] = len(data)
            out.append((path, sha, info))

    def commit(
        self,
        *,
        entries: dict[str, Entry],
        annsets: Mapping[str, Sequence[Box] | CanonicalSet],
        classes: list[dict] | None,
        message: str,
        provenance: dict,
        replace_all: bool = False,
    ) -> Version | None:
        """Record the staged images and commit a version of kind ``import`` on ``main``.

        ``entries`` maps image hash to its manifest entry; its ``annset`` field is ignored and
        filled from ``annsets`` (the boxes of that image, or their canonical set as
        :func:`~.boxes.imported_set` makes it; missing means no boxes). With
        ``replace_all`` the version holds exactly ``entries``; otherwise they are added to (or
        replace their images in) main's manifest. ``classes=None`` keeps main's classes.
        Returns None when main would not change.
        """
        check_cancel(self.cancel)
        self.project.objects.sync()
        project, db = self.project, self.project.db
        with project.transaction():
            now = now_iso()
            db.conn.executemany(
                "INSERT OR IGNORE INTO image (sha256, format, width, height, orientation, "
                "raw_width, raw_height, mode, byte_size, added_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        sha,
                        i.format,
                        i.width,
                        i.height,
                        i.orientation,
                        i.raw_width,
                        i.raw_height,
                        i.mode,
                        self.sizes[sha],
                        now,
                    )
                    for sha, i in self.infos.items()
                ],
            )
            db.conn.executemany(
                "INSERT OR IGNORE INTO image_source (sha256, path, imported_at) VALUES (?, ?, ?)",
                [(sha, path, now) for sha, path in self.sources],
            )
            db.execute("DELETE FROM pending_object WHERE op = ?", [self.op])
            store = ManifestStore(db)
            current = head(db)
            main = get_version(db, current) if current else None
            tree = store.tree(main.tree) if main else None
            # One statement for all annotation sets, not one per image: a labelled import of
            # 20,000 images otherwise spends a good part of its commit in statement overhead.
            rows: dict[str, tuple[str, str, int]] = {}
            copies: dict[str, bytes | None] = {}  # what the review queue reads (core.packed)
            changes: dict[str, Entry | None] = {}
            for sha, entry in entries.items():
                given = annsets.get(sha, ())
                if isinstance(given, CanonicalSet):
                    h, text, n = given
                    # an importer's set brings its copy; another's is derived from the text
                    copy = given.packed if isinstance(given, PackedSet) else pack_labels(text)
                else:
                    h, text, n, copy = label_set(given)
                rows.setdefault(h, (h, text, n))
                copies.setdefault(h, copy)
                changes[sha] = entry.with_annset(h)
            db.conn.executemany(
                "INSERT OR IGNORE INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, ?)",
                rows.values(),
            )
            put_label_copies(db, copies.items())
            counts = {h: n for h, _, n in rows.values()}
            if replace_all and tree is not None:
                for image, _ in store.entries(tree):
                    changes.setdefault(image, None)
            if tree is not None:
                changes = {k: v for k, v in changes.items() if store.entry(tree, k) != v}
            new_classes = main.classes if (classes is None and main) else (classes or [])
            if not changes and main is not None and new_classes == main.classes:
                self.committed = True
                return None
            version = write_version(
                project,
                tree=store.apply(tree, changes, counts),
                classes=new_classes,
                parents=[main.id] if main else [],
                kind="import",
                message=message,
                provenance=provenance,
                move_main_from=main.id if main else None,
            )
        self.committed = True
        return version


def add_images(
    project: Project,
    paths: Sequence[Path | str],
    *,
    message: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    workers: int | None = None,
    follow_links: bool = False,
) -> AddReport:
    """Import image files and folders and commit them as one version of kind ``import``.

    Images already in main keep their labels; new ones join with no boxes. A link out of a
    named folder is skipped and reported unless ``follow_links`` (see :mod:`.paths`).
    """
    db = project.db
    files, problems = collect_files(paths, follow_links=follow_links)
    report = AddReport(skipped=list(problems))
    current = head(db)
    store = ManifestStore(db)
    main_tree = store.tree(get_version(db, current).tree) if current else None
    with Staging(project, progress=progress, cancel=cancel, workers=workers) as staging:
        first: dict[str, str] = {}
        for path, sha, info in staging.stage_files(files):
            shown = display_path(path)
            if sha is None:
                report.skipped.append(Problem(shown, str(info)))
            elif sha in first:
                report.duplicates.append(Duplicate(shown, sha, first[sha]))
            elif main_tree is not None and store.entry(main_tree, sha) is not None:
                first[sha] = shown
                report.duplicates.append(Duplicate(shown, sha, "the project"))
            else:
                first[sha] = shown
                assert isinstance(info, ImageInfo)
                report.added.append(Added(shown, sha, info))
        n = len(report.added)
        report.version = staging.commit(
            entries={a.sha256: Entry(EMPTY_SET_HASH) for a in report.added},
            annsets={},
            classes=None,
            message=message or f"Add {n} image{'s' if n != 1 else ''}",
            provenance={
                "method": None,
                "sources": [display_path(Path(p).absolute()) for p in paths],
                "format": "images",
                "preprocessing": [],
                "model": None,
            },
        )
    return report
