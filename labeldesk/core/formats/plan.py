"""What an export holds, read once from the project, and the file names it uses.

Everything an exporter needs about an image (its entry, upright size, orientation, format and the
name it was imported under) is gathered here in a few batched queries, so writing 100,000 images
does not cost 100,000 round trips. Boxes are streamed later, in batches, by annotation-set hash.

File names are chosen deterministically: names a format gave us (``meta["file_name"]``) first,
in image-hash order, then names derived from the first source file, in name order. A name that is
taken gets the short image hash appended, so two source files with the same base name never
overwrite each other, and the same version always gets the same names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..errors import LabelDeskError
from ..manifest import Entry, ManifestStore
from ..progress import CancelFn, check_cancel
from ..project import Project
from ..versions import Version, resolve
from .common import FORMAT_EXTENSIONS, IMAGE_EXTENSIONS, check_relative_name, normalise_name

_BATCH = 500


@dataclass(frozen=True, slots=True)
class PlannedImage:
    sha: str
    entry: Entry
    width: int  # upright, as a person sees it
    height: int
    orientation: int
    format: str
    meta_name: str | None  # the file name a dataset gave it, if usable as a relative name
    derived_name: str  # a name for an image no dataset named: its first source's base name


def _meta_name(entry: Entry) -> str | None:
    name = entry.meta_dict.get("file_name")
    if name is None or check_relative_name(name) is not None:
        return None
    return normalise_name(name)


def _derived_name(source: str, sha: str, fmt: str) -> str:
    base = PurePosixPath(source).name.replace("\\", "_") or sha[:16]
    if base.startswith("."):
        base = "_" + base
    if PurePosixPath(base).suffix.lower() not in IMAGE_EXTENSIONS:
        base += FORMAT_EXTENSIONS.get(fmt, ".img")
    return base


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


def load_plan(project: Project, ref: str, cancel: CancelFn | None = None) -> ExportPlan:
    db = project.db
    version = resolve(db, ref)
    store = ManifestStore(db)
    entries = list(store.entries(store.tree(version.tree)))
    shas = [sha for sha, _ in entries]
    info: dict[str, tuple[int, int, int, str]] = {}
    sources: dict[str, str] = {}
    for chunk in _chunks(shas):
        check_cancel(cancel)
        marks = ",".join("?" * len(chunk))
        for sha, w, h, o, fmt in db.execute(
            f"SELECT sha256, width, height, orientation, format FROM image "
            f"WHERE sha256 IN ({marks})",
            chunk,
        ):
            info[sha] = (w, h, o, fmt)
        for sha, path in db.execute(
            f"SELECT sha256, path FROM image_source WHERE sha256 IN ({marks}) ORDER BY id",
            chunk,
        ):
            sources.setdefault(sha, path)
    missing = [sha for sha in shas if sha not in info]
    if missing:
        raise LabelDeskError(f"images missing from the database: {', '.join(missing[:3])}")
    images = [
        PlannedImage(
            sha,
            entry,
            *info[sha],
            _meta_name(entry),
            _derived_name(sources.get(sha, ""), sha, info[sha][3]),
        )
        for sha, entry in entries
    ]
    return ExportPlan(version, images)


def unique_names(
    images: Iterable[PlannedImage],
    *,
    key: Callable[[str], str],
    adjust: Callable[[str, PlannedImage], str] = lambda name, _: name,
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Give each image a name unique under ``key``; returns names and renames.

    ``adjust`` lets a format fix a name up before it is claimed (YOLO needs an image extension).
    A rename is ``(sha, wanted, given)``; only names a dataset gave us are reported, since
    derived names were never promised to anyone.
    """
    images = list(images)
    named = sorted((im for im in images if im.meta_name), key=lambda im: im.sha)
    rest = sorted(
        (im for im in images if not im.meta_name),
        key=lambda im: (im.derived_name.casefold(), im.derived_name, im.sha),
    )
    taken: set[str] = set()
    names: dict[str, str] = {}
    renamed: list[tuple[str, str, str]] = []
    for im in named + rest:
        wanted = adjust(im.meta_name or im.derived_name, im)
        name = wanted
        if key(name) in taken:
            name = _suffixed(wanted, im.sha, key, taken)
            if im.meta_name:
                renamed.append((im.sha, wanted, name))
        taken.add(key(name))
        names[im.sha] = name
    return names, renamed


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
    """

    def __init__(self, project: Project) -> None:
        self.db = project.db
        self.cache: dict[str, list[dict[str, Any]]] = {}

    def prefetch(self, annsets: Iterable[str]) -> None:
        """Load the boxes of ``annsets``, forgetting earlier ones: exporters read chunk by
        chunk, so memory holds one chunk's boxes, never the dataset's."""
        wanted = set(annsets)
        self.cache = {h: v for h, v in self.cache.items() if h in wanted}
        missing = sorted(wanted - self.cache.keys())
        for chunk in _chunks(missing):
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
                    h: [d for d in boxes if d.get("state") != "rejected"]
                    for h, boxes in sets.items()
                }
            self.cache.update(sets)
        lost = [h for h in missing if h not in self.cache]
        if lost:
            raise LabelDeskError(f"annotation sets missing: {', '.join(lost[:3])}")

    def boxes(self, annset: str) -> list[dict[str, Any]]:
        if annset not in self.cache:
            self.prefetch([annset])
        return self.cache[annset]


def unknown_classes_error(version: Version, bad: dict[int, int]) -> LabelDeskError:
    """The error for boxes whose class is not in the version's class list (class -> count)."""
    listed = ", ".join(f"{c} ({n} boxes)" for c, n in sorted(bad.items()))
    return LabelDeskError(
        f"version {version.short} has boxes of classes missing from its class list: {listed}"
    )
