"""What an export holds, read once from the project, and the file names it uses.

Everything an exporter needs about an image (its entry, upright size, orientation, format and the
name it was imported under) is gathered here in a few batched queries, so writing 100,000 images
does not cost 100,000 round trips. Boxes are streamed later, in batches, by annotation-set hash.

File names are chosen deterministically: names a format gave us (``meta["file_name"]``) first,
in image-hash order, then names derived from the first source file, in name order. A name that is
taken gets the short image hash appended, so two source files with the same base name never
overwrite each other, and the same version always gets the same names.

Nothing is used unchecked: the version's id is recomputed from its content, and the manifest
tree, every bucket and every annotation set read is re-hashed against its key (the image bytes
are checked as they are copied, see :mod:`.files`). Damage is collected into one itemised
:class:`~labeldesk.core.errors.IntegrityError`, never written into an export or an evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import attrgetter
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from ..errors import IntegrityError, LabelDeskError, more_problems
from ..progress import CancelFn, check_cancel
from ..store.db import ProjectDatabase
from ..store.integrity import row_matches, version_id
from ..store.manifest import Entry
from ..store.project import Project
from ..store.versions import Version, resolve
from .common import (
    FORMAT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    Problems,
    check_relative_name,
    normalise_name,
)

_BATCH = 500


class PlannedImage(NamedTuple):
    """One image of an export. A NamedTuple, not a dataclass: every export and evaluation
    builds one per image, and a frozen dataclass's ``__init__`` cost 2 µs of them each."""

    sha: str
    entry: Entry
    width: int  # upright, as a person sees it
    height: int
    orientation: int
    format: str
    meta_name: str | None  # the file name a dataset gave it, if usable as a relative name
    derived_name: str  # a name for an image no dataset named: its first source's base name
    byte_size: int | None = None  # of the object file, from the image row (for messages)


def _meta_name(entry: Entry) -> str | None:
    if not entry.meta:  # most images: no dict to build
        return None
    name = entry.meta_dict.get("file_name")
    if name is None or check_relative_name(name) is not None:
        return None
    return normalise_name(name)


def _derived_name(source: str, sha: str, fmt: str) -> str:
    base = _base_name(source).replace("\\", "_") or sha[:16]
    if base.startswith("."):
        base = "_" + base
    if _suffix(base).lower() not in IMAGE_EXTENSIONS:
        base += FORMAT_EXTENSIONS.get(fmt, ".img")
    return base


# PurePosixPath(...).name and .suffix by string operations: every evaluation and export names
# each image of the version, and building two path objects per image cost 30 ms per 5,000.
def _base_name(path: str) -> str:
    """``PurePosixPath(path).name``."""
    tail = path.rpartition("/")[2]
    return tail if tail not in ("", ".") else PurePosixPath(path).name


def _suffix(name: str) -> str:
    """``PurePosixPath(name).suffix`` of a name without slashes."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


@dataclass(frozen=True)
class ExportPlan:
    version: Version
    images: list[PlannedImage]  # image-hash order

    @property
    def class_ids(self) -> list[int]:
        return sorted(c["id"] for c in self.version.classes)


def _chunks(items: list[str], n: int = _BATCH) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _read_whole(db: ProjectDatabase, table: str, wanted: int) -> bool:
    """Whether ``wanted`` rows of ``table`` are read faster in one pass over the table, the
    other rows skipped, than looked up by key: when they are a good part of it, as a version's
    images, sets and buckets are in a project of few versions (SQLite scans 5,000 rows in a
    third to a half of the time of 5,000 lookups). Rowids only grow, so the largest bounds the
    row count."""
    rows = db.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0
    return bool(wanted * 4 >= rows)


def version_matches(version: Version) -> bool:
    """Whether ``version.id`` is the hash of its content, as :func:`~..versions.write_version`
    computed it: a row rewritten behind LabelDesk's back (another tree, other classes) fails."""
    return (
        version_id(
            tree=version.tree,
            classes=version.classes,
            parents=version.parents,
            kind=version.kind,
            author=version.author,
            message=version.message,
            created=version.created,
            provenance=version.provenance,
        )
        == version.id
    )


def integrity_error(what: str, problems: Problems) -> IntegrityError:
    """One :class:`IntegrityError` listing what ``problems`` collected (capped, with a count)."""
    items = list(problems.items)
    if problems.count > len(items):
        items.append(more_problems(problems.count - len(items)))
    return IntegrityError(what, items, problems.count)


def refuse_damage(version: Version, damaged: Problems, counts: Any) -> None:
    """Raise the export's :class:`IntegrityError` if a set or an object failed its check.

    ``damaged`` holds the annotation sets :class:`BoxReader` found, ``counts`` the
    ``files.ImageCounts`` with the objects that did not hash to their names.
    """
    for p in counts.damaged:
        damaged.add(p.where, p.reason)
    if damaged:
        raise integrity_error(f"cannot export version {version.short}", damaged)


def _read_manifest(
    project: Project,
    version: Version,
    problems: Problems,
    cancel: CancelFn | None,
    verify: bool = True,
) -> list[tuple[str, Entry]]:
    """The entries of ``version``'s manifest in image-hash order, from verified rows only."""
    db = project.db
    where = f"manifest tree {version.tree}"
    row = db.execute("SELECT buckets FROM manifest_tree WHERE hash = ?", [version.tree]).fetchone()
    if row is None:
        problems.add(where, f"missing (it is the content of version {version.short})")
        return []
    if verify and not row_matches(version.tree, row[0]):
        problems.add(where, "content does not match its hash")
        return []
    buckets: dict[str, str] = json.loads(row[0])
    wanted = set(buckets.values())
    texts: dict[str, str] = {}
    if _read_whole(db, "manifest_bucket", len(wanted)):
        texts.update(
            row
            for row in db.execute("SELECT hash, entries FROM manifest_bucket")
            if row[0] in wanted
        )
    else:
        for chunk in _chunks(sorted(wanted)):
            check_cancel(cancel)
            marks = ",".join("?" * len(chunk))
            texts.update(
                db.execute(
                    f"SELECT hash, entries FROM manifest_bucket WHERE hash IN ({marks})", chunk
                ).fetchall()
            )
    entries: list[tuple[str, Entry]] = []
    verified: list[str] = []
    for prefix in sorted(buckets):
        bh = buckets[prefix]
        if bh not in texts:
            problems.add(f"manifest bucket {bh}", f"missing (images {prefix}… of {where})")
            continue
        text = texts[bh]
        if verify and not row_matches(bh, text):
            problems.add(f"manifest bucket {bh}", "content does not match its hash")
            continue
        verified.append(text)
    # one parse for all buckets (a JSON list of their objects, in prefix order), not one each
    for raw in json.loads(f"[{','.join(verified)}]"):
        entries.extend((image, Entry.from_json(raw[image])) for image in sorted(raw))
    return entries


def load_plan(
    project: Project, ref: str, cancel: CancelFn | None = None, *, verify: bool = True
) -> ExportPlan:
    """Everything an export of ``ref`` needs but the boxes, read and verified in a few queries.

    Raises :class:`IntegrityError` listing every damaged or missing row (the version, its tree,
    buckets, image rows) before anything is written. ``verify=False`` skips the hash checks
    (missing rows are still refused); it exists to measure what they cost.
    """
    db = project.db
    version = resolve(db, ref)
    problems = Problems()
    if verify and not version_matches(version):
        problems.add(
            f"version {version.id}",
            "its content (tree, classes, parents, message…) does not hash to its id: the row "
            "was changed after it was committed",
        )
    entries = _read_manifest(project, version, problems, cancel, verify)
    shas = [sha for sha, _ in entries]
    # image hash -> its image row, and -> the path of its first source (rows in id order,
    # reversed so that the first is the one kept)
    info: dict[str, tuple[str, int, int, int, str, int]] = {}
    sources: dict[str, str] = {}
    # both tables whole when that is faster (other images' rows are read, and never looked up)
    for chunk in [[]] if _read_whole(db, "image", len(shas)) else _chunks(shas):
        check_cancel(cancel)
        where = f"WHERE sha256 IN ({','.join('?' * len(chunk))})" if chunk else ""
        info.update(
            (row[0], row)
            for row in db.execute(
                f"SELECT sha256, width, height, orientation, format, byte_size FROM image {where}",
                chunk,
            )
        )
        sources.update(
            reversed(
                db.execute(
                    f"SELECT sha256, path FROM image_source {where} ORDER BY id", chunk
                ).fetchall()
            )
        )
    for sha in shas:
        if sha not in info:
            problems.add(f"image {sha}", "no image row (the version's manifest names it)")
    if problems:
        raise integrity_error(f"cannot read version {version.short}", problems)
    images = []
    for sha, entry in entries:
        _, w, h, o, fmt, size = info[sha]
        name = _derived_name(sources.get(sha, ""), sha, fmt)
        images.append(PlannedImage(sha, entry, w, h, o, fmt, _meta_name(entry), name, size))
    return ExportPlan(version, images)


def unique_names(
    images: Iterable[PlannedImage],
    *,
    key: Callable[[str], str],
    adjust: Callable[[str, PlannedImage], str] | None = None,
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Give each image a name unique under ``key``; returns names and renames.

    ``adjust`` lets a format fix a name up before it is claimed (YOLO needs an image extension).
    A rename is ``(sha, wanted, given)``; only names a dataset gave us are reported, since
    derived names were never promised to anyone.
    """
    images = list(images)
    named = sorted((im for im in images if im.meta_name), key=_by_sha)
    rest = sorted((im for im in images if not im.meta_name), key=_by_derived_name)
    taken: set[str] = set()
    names: dict[str, str] = {}
    renamed: list[tuple[str, str, str]] = []
    for im in named + rest:
        wanted = im.meta_name or im.derived_name
        if adjust is not None:
            wanted = adjust(wanted, im)
        claim = key(wanted)
        name = wanted
        if claim in taken:
            name = _suffixed(wanted, im.sha, key, taken)
            claim = key(name)
            if im.meta_name:
                renamed.append((im.sha, wanted, name))
        taken.add(claim)
        names[im.sha] = name
    return names, renamed


# named, as C-level key functions where one exists: every export and evaluation sorts all
# of a version's images by them
_by_sha = attrgetter("sha")


def _by_derived_name(im: PlannedImage) -> tuple[str, str, str]:
    return im.derived_name.casefold(), im.derived_name, im.sha


def _suffixed(name: str, sha: str, key: Callable[[str], str], taken: set[str]) -> str:
    p = PurePosixPath(name)
    for n in (8, 16, 64):
        candidate = str(p.with_name(f"{p.stem}_{sha[:n]}{p.suffix}"))
        if key(candidate) not in taken:
            return candidate
    raise AssertionError("a full image hash cannot be taken twice")  # pragma: no cover


# -- boxes ------------------------------------------------------------------------------------


class BoxReader:
    """Boxes of many images, read in batches by annotation-set hash; live boxes only.

    Boxes stay canonical dicts (``class``, ``x``, ``y``, ``w``, ``h``…): exports touch every box
    of the dataset once, and building a million objects would cost more than writing them.

    Every set is re-hashed against its key as it is read (``verify``). A missing or damaged set
    is added to ``problems`` and reads as no boxes, so an export can list all of them at the
    end; without ``problems`` it raises :class:`IntegrityError` at once.
    """

    def __init__(
        self, project: Project, problems: Problems | None = None, *, verify: bool = True
    ) -> None:
        self.db = project.db
        self.cache: dict[str, list[dict[str, Any]]] = {}
        self.problems = problems
        self.verify = verify
        self.reported: set[str] = set()  # a set shared by many images is listed once

    def prefetch(self, annsets: Iterable[str]) -> None:
        """Load the boxes of ``annsets``, forgetting earlier ones: exporters read chunk by
        chunk, so memory holds one chunk's boxes, never the dataset's."""
        wanted = set(annsets)
        self.cache = {h: v for h, v in self.cache.items() if h in wanted}
        missing = sorted(wanted - self.cache.keys())
        damaged: dict[str, str] = {}  # set hash -> what is wrong with it
        for chunk in _chunks(missing):
            if self.verify:
                self.cache.update(_parse_sets(self._read_verified(chunk, damaged)))
            else:
                self.cache.update(self._read_unverified(chunk))
        self._refuse(missing, self.cache, damaged)

    def text_batches(self, annsets: Iterable[str], size: int) -> Iterator[dict[str, str]]:
        """The canonical JSON text of each set in ``annsets`` (each once), verified against its
        hash, ``size`` sets at a time (for readers that parse them column-wise, holding one
        batch of texts at a time). Damage is handled as :meth:`prefetch` handles it once every
        set is read; with ``problems``, a damaged or missing set reads as ``[]`` (last batch).

        When the sets wanted are a good part of the table, as a version's sets usually are,
        the table is read in one pass and the other rows are skipped (:func:`_read_whole`).
        """
        wanted = set(annsets)
        if _read_whole(self.db, "annotation_set", len(wanted)):
            cursors: Iterable[Iterable[tuple[str, str]]] = [
                self.db.execute("SELECT hash, boxes FROM annotation_set")
            ]
        else:
            # rows, not one joined row: an evaluation runs no writer threads to stall behind
            # (see _read_unverified), and SQLite joining 500 texts cost more than handing them
            cursors = (
                self.db.execute(
                    "SELECT hash, boxes FROM annotation_set "
                    f"WHERE hash IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for chunk in _chunks(sorted(wanted))
            )
        damaged: dict[str, str] = {}
        found: set[str] = set()
        batch: dict[str, str] = {}
        for cursor in cursors:
            for h, t in cursor:
                if h not in wanted:
                    continue
                if not row_matches(h, t):
                    damaged[h] = "content does not match its hash"
                    continue
                found.add(h)
                batch[h] = t
                if len(batch) >= size:
                    yield batch
                    batch = {}
        ordered = sorted(wanted)
        self._refuse(ordered, found, dict(sorted(damaged.items())))
        batch.update((h, "[]") for h in ordered if h not in found)
        if batch:
            yield batch

    def _refuse(self, wanted: list[str], found: Container[str], damaged: dict[str, str]) -> None:
        """Record (or raise) the sets of ``wanted`` that are damaged or missing."""
        for h in wanted:
            if h not in found and h not in damaged:
                damaged[h] = "missing (a manifest entry refers to it)"
        if not damaged:
            return
        problems = self.problems if self.problems is not None else Problems()
        for h, reason in damaged.items():
            if h not in self.reported:
                problems.add(f"annotation set {h}", reason)
                self.reported.add(h)
            self.cache[h] = []  # reads as no boxes; the export is refused at its end
        if self.problems is None:
            raise integrity_error("cannot read the boxes", problems)

    def _read_unverified(self, chunk: list[str]) -> dict[str, list[dict[str, Any]]]:
        # One row holding the whole chunk as a JSON object: a row per set would hand the GIL
        # over once per image, which stalls behind the export's writer threads.
        marks = ",".join("?" * len(chunk))
        (text,) = self.db.execute(
            "SELECT json_group_object(hash, json(boxes)) FROM annotation_set "
            f"WHERE hash IN ({marks})",
            chunk,
        ).fetchone()
        text = text or "{}"
        sets: dict[str, list[dict[str, Any]]] = json.loads(text)
        if '"rejected"' in text:
            sets = {
                h: [d for d in boxes if d.get("state") != "rejected"] for h, boxes in sets.items()
            }
        return sets

    def _read_verified(self, chunk: list[str], damaged: dict[str, str]) -> dict[str, str]:
        """The chunk's sets as stored, each text checked against its hash (not parsed).

        Still one row for the chunk (see :meth:`_read_unverified`): key and text joined, sets
        separated by U+001E, which canonical JSON never holds unescaped. Text that breaks that
        framing (only a row edited by hand can) sends the chunk through a row-per-set query.
        """
        marks = ",".join("?" * len(chunk))
        n, text = self.db.execute(
            "SELECT count(*), group_concat(hash || boxes, char(30)) FROM annotation_set "
            f"WHERE hash IN ({marks})",
            chunk,
        ).fetchone()
        parts = text.split("\x1e") if text else []
        keys = set(chunk)
        rows: list[tuple[str, Any]] = [(p[:64], p[64:]) for p in parts]
        if len(rows) != n or not all(h in keys for h, _ in rows):
            rows = self.db.execute(
                f"SELECT hash, boxes FROM annotation_set WHERE hash IN ({marks})", chunk
            ).fetchall()
        texts: dict[str, str] = {}
        for h, t in rows:
            if not row_matches(h, t):
                damaged[h] = "content does not match its hash"
                continue
            texts[h] = t
        return texts

    def boxes(self, annset: str) -> list[dict[str, Any]]:
        if annset not in self.cache:
            self.prefetch([annset])
        return self.cache[annset]


def _parse_sets(texts: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Verified set texts as live box dicts (rejected pre-labels left out)."""
    sets: dict[str, list[dict[str, Any]]] = {}
    for h, t in texts.items():
        boxes = json.loads(t)
        if '"rejected"' in t:
            boxes = [d for d in boxes if d.get("state") != "rejected"]
        sets[h] = boxes
    return sets


def unknown_classes_error(version: Version, bad: dict[int, int]) -> LabelDeskError:
    """The error for boxes whose class is not in the version's class list (class -> count)."""
    listed = ", ".join(f"{c} ({n} boxes)" for c, n in sorted(bad.items()))
    return LabelDeskError(
        f"version {version.short} has boxes of classes missing from its class list: {listed}"
    )
