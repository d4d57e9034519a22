"""``labeldesk add``: bring image files into a project as a new version.

The import is all or nothing. Files are probed (fully decoded) first; new objects are written
and journaled in ``pending_object`` so that a killed import can be cleaned up; the rows and the
version are committed in one final transaction after one flush of the object store. Any error
or cancel before that removes the objects this import created, so the project is exactly as it
was. The user's files are only ever read.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .boxes import EMPTY_SET_HASH, EMPTY_SET_JSON
from .errors import Problem
from .images import BadImageError, ImageInfo, probe
from .manifest import Entry, ManifestStore
from .progress import CancelFn, ProgressFn, check_cancel
from .project import Project, now_iso
from .versions import Version, get_version, head, write_version

#: Files probed and journaled per step; bounds memory (file bytes in flight) and journal writes.
CHUNK = 64


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


def display_path(path: Path | str) -> str:
    """A path as text we can store: undecodable bytes in names become escapes, not errors."""
    s = os.fspath(path)
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def collect_files(paths: Sequence[Path | str]) -> tuple[list[Path], list[Problem]]:
    """Expand files and folders (recursively) into a sorted list of files to look at.

    Symlinks given on the command line are followed. Inside a folder, a symlink is followed only
    if it stays inside that folder: a link out of it is reported, never silently imported.
    """
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def take(p: Path) -> None:
        if p not in seen:
            seen.add(p)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            problems.append(Problem(display_path(p), "no such file or folder"))
        elif p.is_dir():
            root = p.resolve()
            for dirpath, dirnames, filenames in os.walk(p, followlinks=False):
                dirnames.sort()
                for d in list(dirnames):
                    full = Path(dirpath) / d
                    if full.is_symlink():
                        problems.append(
                            Problem(display_path(full), "symlinked folder not followed")
                        )
                for name in sorted(filenames):
                    f = Path(dirpath) / name
                    if f.is_symlink():
                        target = f.resolve()
                        if not target.is_relative_to(root):
                            problems.append(
                                Problem(
                                    display_path(f),
                                    f"symlink points outside {display_path(p)} "
                                    f"(to {display_path(target)}); not followed",
                                )
                            )
                            continue
                        if not target.is_file():
                            problems.append(Problem(display_path(f), "broken symlink"))
                            continue
                    take(f)
        elif p.is_file():
            take(p)
        else:
            problems.append(Problem(display_path(p), "not a regular file"))
    return files, problems


def _read_and_probe(path: Path) -> tuple[Path, str | None, bytes | None, ImageInfo | str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        return path, None, None, f"cannot read: {e.strerror or e}"
    try:
        info = probe(data)
    except BadImageError as e:
        return path, None, None, str(e)
    return path, hashlib.sha256(data).hexdigest(), data, info


def _probed(files: list[Path], workers: int) -> Iterator[list[tuple]]:
    """Probe files on a few threads (decoding and hashing release the GIL), chunk by chunk."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i in range(0, len(files), CHUNK):
            yield list(pool.map(_read_and_probe, files[i : i + CHUNK]))


def add_images(
    project: Project,
    paths: Sequence[Path | str],
    *,
    message: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    workers: int | None = None,
) -> AddReport:
    """Import image files and folders and commit them as one version of kind ``import``."""
    db = project.db
    files, problems = collect_files(paths)
    report = AddReport(skipped=list(problems))
    total = len(files)
    workers = workers or min(4, os.cpu_count() or 1)
    op = uuid.uuid4().hex
    host = socket.gethostname()
    created: list[str] = []  # objects this import wrote: removed again if it fails
    batch_first: dict[str, str] = {}  # sha -> first path in this import
    new_images: dict[str, ImageInfo] = {}
    sources: list[tuple[str, str]] = []
    known = {r[0] for r in db.execute("SELECT sha256 FROM image")}
    done = 0
    try:
        for chunk in _probed(files, workers):
            check_cancel(cancel)
            fresh = [
                (p, sha, data, info)
                for p, sha, data, info in chunk
                if sha is not None
                and sha not in known
                and sha not in batch_first
                and not project.objects.exists(sha)
            ]
            if fresh:
                # Journal before writing: a kill between the two leaves a known leftover,
                # never an orphan nobody can account for.
                with project.transaction():
                    db.conn.executemany(
                        "INSERT OR IGNORE INTO pending_object (sha256, op, pid, host, started) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(sha, op, os.getpid(), host, now_iso()) for _, sha, _, _ in fresh],
                    )
            for path, sha, data, info in chunk:
                shown = display_path(path)
                done += 1
                if sha is None:
                    report.skipped.append(Problem(shown, str(info)))
                    continue
                assert isinstance(info, ImageInfo) and data is not None
                sources.append((sha, display_path(path.absolute())))
                if sha in batch_first:
                    report.duplicates.append(Duplicate(shown, sha, batch_first[sha]))
                    continue
                batch_first[sha] = shown
                if sha in known:
                    report.duplicates.append(Duplicate(shown, sha, "the project"))
                    new_images[sha] = info  # may still be missing from main's manifest
                    continue
                if project.objects.put_bytes(data, sha, durable=False):
                    created.append(sha)
                new_images[sha] = info
                report.added.append(Added(shown, sha, info))
            if progress:
                progress(done, total, "importing images")
        check_cancel(cancel)
        project.objects.sync()
        report.version = _commit(project, new_images, sources, paths, op, message, report)
    except BaseException:
        for sha in created:
            project.objects.remove(sha)
        with project.transaction():
            db.execute("DELETE FROM pending_object WHERE op = ?", [op])
        raise
    return report


def _commit(
    project: Project,
    infos: dict[str, ImageInfo],
    sources: list[tuple[str, str]],
    paths: Sequence[Path | str],
    op: str,
    message: str | None,
    report: AddReport,
) -> Version | None:
    db = project.db
    with project.transaction():
        now = now_iso()
        db.conn.executemany(
            "INSERT OR IGNORE INTO image (sha256, format, width, height, orientation, raw_width, "
            "raw_height, mode, byte_size, added_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    project.objects.path(sha).stat().st_size,
                    now,
                )
                for sha, i in infos.items()
            ],
        )
        db.conn.executemany(
            "INSERT OR IGNORE INTO image_source (sha256, path, imported_at) VALUES (?, ?, ?)",
            [(sha, path, now) for sha, path in sources],
        )
        db.execute("DELETE FROM pending_object WHERE op = ?", [op])
        db.execute(
            "INSERT OR IGNORE INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, 0)",
            [EMPTY_SET_HASH, EMPTY_SET_JSON],
        )
        store = ManifestStore(db)
        current = head(db)
        main = get_version(db, current) if current else None
        tree = store.tree(main.tree) if main else None
        changes = {
            sha: Entry(EMPTY_SET_HASH)
            for sha in infos
            if tree is None or store.entry(tree, sha) is None
        }
        # Images that were in the project but not in main's manifest count as added back.
        back = {d.sha256 for d in report.duplicates if d.of == "the project"} & changes.keys()
        report.duplicates = [d for d in report.duplicates if d.sha256 not in back]
        report.added.extend(Added(d, s, infos[s]) for s, d in _first_paths(sources, back))
        if not changes:
            return None
        new_tree = store.apply(tree, changes)
        n = len(changes)
        return write_version(
            project,
            tree=new_tree,
            classes=main.classes if main else [],
            parents=[main.id] if main else [],
            kind="import",
            message=message or f"Add {n} image{'s' if n != 1 else ''}",
            provenance={
                "method": None,
                "sources": [display_path(Path(p).absolute()) for p in paths],
                "format": "images",
                "preprocessing": [],
                "model": None,
            },
            move_main_from=main.id if main else None,
        )


def _first_paths(sources: Iterable[tuple[str, str]], shas: set[str]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for sha, path in sources:
        if sha in shas and sha not in seen:
            seen[sha] = path
    return sorted(seen.items())
