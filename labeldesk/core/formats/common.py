"""What the COCO and YOLO converters share: options, reports, itemised problems, box checks and
class mapping.

Import is strict by default: every problem in the input is collected and reported at once, and
nothing is committed. The few repairs we know how to do (clipping a box to the image, taking a
polygon's extent, dropping a repeated row, keeping the first of two identical images) happen only
when asked for, and each one is reported, so nobody learns about them from a worse model.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..errors import MAX_PROBLEMS as _MAX_PROBLEMS
from ..errors import InputError, Problem, more_problems
from ..store.versions import Version, get_version, head

#: Tag of an image that came without labels (a YOLO image with no label file): it is not known
#: to be background, so exports do not claim it is (no YOLO label file is written for it).
UNLABELLED_TAG = "unlabelled"

#: Box edges this far outside the image (in pixels) are pulled onto the edge silently: it is
#: below the canonical precision of a coordinate (1e-4 px), so nothing observable changes.
PIXEL_SLACK = 5e-5

#: Smallest box side kept: coordinates are stored to 1e-4 px, so a thinner box would round to
#: nothing.
MIN_SIDE = 1e-4

#: At most this many problems are listed (the project-wide cap, re-exported here for the
#: readers that import it from this module).
MAX_PROBLEMS = _MAX_PROBLEMS

#: File name extensions that readers (Ultralytics among them) recognise as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


@dataclass(frozen=True)
class ImportOptions:
    """Explicit repairs an import may make; each one is reported. Defaults refuse bad input."""

    clip: bool = False  # clip boxes that stick out of the image instead of refusing them
    polygons: Literal["reject", "extent"] = "reject"  # YOLO segment rows
    skip_crowd: bool = False  # COCO iscrowd=1 regions are not objects; skip them if asked
    drop_duplicate_rows: bool = False  # keep one of several identical label rows
    duplicate_images: Literal["reject", "first"] = "reject"  # records with identical bytes
    follow_links: bool = False  # read links that lead outside the dataset (core.paths)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImportReport:
    format: str
    version: Version | None
    n_images: int
    n_boxes: int
    classes: list[dict[str, Any]]
    notes: list[Problem] = field(default_factory=list)
    #: Label files that no image claims, and the rows each holds: not imported (YOLO).
    labels_without_image: list[tuple[str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": self.version.id if self.version else None,
            "images": self.n_images,
            "boxes": self.n_boxes,
            "classes": self.classes,
            "notes": [{"where": n.where, "note": n.reason} for n in self.notes],
            "labels_without_image": [{"file": f, "boxes": n} for f, n in self.labels_without_image],
        }


@dataclass
class ExportReport:
    format: str
    out: Path
    version: Version
    n_images: int
    n_boxes: int
    files: list[str]  # annotation files written, relative to ``out``
    reencoded: int = 0  # EXIF-rotated images written as upright pixels
    linked: int = 0
    copied: int = 0
    notes: list[Problem] = field(default_factory=list)
    #: (path, pid) of temporary folders that killed exports had left beside ``out``, removed
    stale_removed: list[tuple[str, int]] = field(default_factory=list)

    def finish(self, counts: Any, notes: list[Problem], *, clipped: int, dropped: int) -> None:
        """Take the image counts of ``files.write_files`` and the notes, plus one note each
        for boxes clipped to or dropped outside their image (every format repairs them alike)."""
        if clipped:
            notes.append(Problem("boxes", f"{clipped} boxes reached outside their image; clipped"))
        if dropped:
            notes.append(Problem("boxes", f"{dropped} boxes lay outside their image; left out"))
        self.reencoded, self.linked, self.copied = counts.reencoded, counts.linked, counts.copied
        self.notes = notes

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "out": str(self.out),
            "version": self.version.id,
            "images": self.n_images,
            "boxes": self.n_boxes,
            "files": self.files,
            "reencoded_upright": self.reencoded,
            "linked": self.linked,
            "copied": self.copied,
            "notes": [{"where": n.where, "note": n.reason} for n in self.notes],
            "removed_stale_temp": [{"path": p, "pid": pid} for p, pid in self.stale_removed],
        }


class Problems:
    """Collects itemised problems (up to :data:`MAX_PROBLEMS`) and raises them as one error."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.items: list[Problem] = []
        self.count = 0
        self.limit = limit

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append(Problem(where, reason))

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self, summary: str) -> None:
        if not self.count:
            return
        items = list(self.items)
        if self.count > len(items):
            items.append(more_problems(self.count - len(items)))
        raise InputError(f"{summary}: {self.count} problem(s); nothing was imported", items)


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 8, 8, 8, 8
    r.maxstring = r.maxother = r.maxlong = 60
    return r


_REPR = _short_repr()


def quote(value: Any) -> str:
    """``repr(value)``, abridged: a value from the input quoted in a message. The input decides
    its size, and the full repr of a nested value can be gigabytes (a YAML alias bomb's is)."""
    return _REPR.repr(value)


# -- YAML, bounded ----------------------------------------------------------------------------

#: A data.yaml needs no aliases at all; a handful of anchors for shared settings is plenty.
MAX_YAML_ALIASES = 100
#: Values in a YAML document counted as if every alias were a copy of what it names. Ultralytics'
#: largest class lists (ImageNet-21k) are ~22,000 names; an alias bomb is billions.
MAX_YAML_VALUES = 100_000


class YamlLimitError(ValueError):
    """A YAML document refused before it was built: too many aliases, or too large expanded."""


@cache
def _bounded_loader() -> type:
    import yaml  # only the safe loader below: a data.yaml must never run code

    class BoundedSafeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that counts alias events as it composes and refuses beyond
        :data:`MAX_YAML_ALIASES`. Composing shares aliased nodes (nothing expands yet); the
        expanded size is checked on that graph before any Python value is built."""

        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise YamlLimitError(
                        f"more than {MAX_YAML_ALIASES} YAML aliases (*name); refused before "
                        "expanding them (an alias bomb?)"
                    )
            return super().compose_node(parent, index)

    return BoundedSafeLoader


def _expanded_size(root: Any) -> int:
    """How many values the node graph holds with aliases expanded; refuses a graph that
    refers to itself or expands beyond :data:`MAX_YAML_VALUES`. Each shared node is counted
    once and multiplied, so this takes time in the graph's size, not the expansion's."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [
            c for pair in node.value for c in (pair if isinstance(pair, tuple) else (pair,))
        ]
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_VALUES:
                raise YamlLimitError(
                    f"YAML aliases expand to more than {MAX_YAML_VALUES:,} values; refused "
                    "before expanding them (an alias bomb?)"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlLimitError("a YAML alias refers to a value that contains it (a loop)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing alias bombs before they expand.

    Raises :class:`YamlLimitError` for too many aliases, a self-referring alias, or a document
    that would expand beyond :data:`MAX_YAML_VALUES` values, ``yaml.YAMLError`` for bad YAML
    and ``RecursionError`` for nesting too deep to compose.
    """
    loader = _bounded_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class Notes(list[Problem]):
    """An import's notes (repairs made, things reported): the first :data:`MAX_PROBLEMS`, then
    one last item saying how many more there were, so a cut list never looks complete."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        super().__init__()
        self.limit = limit
        self.left_out = 0

    def add(self, where: str, text: str) -> None:
        if not self.left_out and len(self) < self.limit:
            self.append(Problem(where, text))
            return
        self.left_out += 1
        summary = Problem("…", f"{self.left_out} more notes not listed")
        if self.left_out == 1:
            self.append(summary)
        else:
            self[-1] = summary


def main_version(db) -> Version | None:
    current = head(db)
    return get_version(db, current) if current else None


def fmt_num(v: float) -> str:
    """A number for a message: short, exact enough to find the row."""
    return f"{v:g}"


def check_pixel_box(
    x: float, y: float, w: float, h: float, width: int, height: int, clip: bool
) -> tuple[tuple[float, float, float, float] | None, str | None, bool]:
    """Check a pixel box against an image of ``width`` x ``height``.

    Returns ``(box, problem, clipped)``: the box to keep (or None), the reason it was refused,
    and whether it was clipped (only with ``clip``). Slack below the canonical precision is
    removed silently.
    """
    if w <= 0 or h <= 0:
        return None, f"zero-sized or negative box (w={fmt_num(w)}, h={fmt_num(h)})", False
    x1, y1, x2, y2 = x, y, x + w, y + h
    outside = x1 < -PIXEL_SLACK or y1 < -PIXEL_SLACK or x2 > width + PIXEL_SLACK
    outside = outside or y2 > height + PIXEL_SLACK
    if outside and not clip:
        return (
            None,
            f"box [{fmt_num(x)}, {fmt_num(y)}, {fmt_num(w)}, {fmt_num(h)}] lies outside the "
            f"{width}x{height} image (use --clip to clip it to the image)",
            False,
        )
    x1, y1 = min(max(x1, 0.0), float(width)), min(max(y1, 0.0), float(height))
    x2, y2 = min(max(x2, 0.0), float(width)), min(max(y2, 0.0), float(height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None, "box lies entirely outside the image", False
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        return None, f"box narrower than {MIN_SIDE} px, the stored precision", False
    return (x1, y1, x2 - x1, y2 - y1), None, outside


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def check_relative_name(name: Any) -> str | None:
    """Why ``name`` cannot be a file name inside a dataset folder, or None if it can.

    Absolute names and ``..`` would make an import read (or an export write) outside the
    folder the user named.
    """
    if not isinstance(name, str) or not name:
        return "file_name must be a non-empty string"
    if "\x00" in name:
        return "file_name contains a NUL character"
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        return f"file_name {name!r} is absolute; it must be relative to the images folder"
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        return f"file_name {name!r} contains '..'; it must stay inside the images folder"
    if not [p for p in parts if p not in ("", ".")]:
        return f"file_name {name!r} names no file"
    return None


def normalise_name(name: str) -> str:
    """``./a//b.jpg`` -> ``a/b.jpg`` (names already checked by :func:`check_relative_name`)."""
    return str(PurePosixPath(*[p for p in re.split(r"[/\\]", name) if p not in ("", ".")]))


# -- classes ----------------------------------------------------------------------------------


def map_classes_keep_ids(
    existing: list[dict[str, Any]], dataset: list[tuple[int, str]], where: str, problems: Problems
) -> tuple[dict[int, int], list[dict[str, Any]]]:
    """Classes for a dataset whose ids must be kept (COCO categories).

    In a project without classes the dataset's ids are taken as they are. In one with classes,
    names are matched; a name with another id, or an id taken by another name, is refused: an
    export would then renumber the category, and results files made against the original
    dataset would no longer match.
    """
    mapping: dict[int, int] = {}
    by_name = {c["name"]: c["id"] for c in existing}
    by_id = {c["id"]: c["name"] for c in existing}
    out = list(existing)
    for cid, name in dataset:
        if name in by_name:
            if by_name[name] != cid:
                problems.add(
                    where,
                    f"category {cid} {name!r}: the project has {name!r} as class "
                    f"{by_name[name]}; the ids must agree so that exports keep the dataset's ids",
                )
                continue
        elif cid in by_id:
            problems.add(
                where,
                f"category {cid} {name!r}: id {cid} is class {by_id[cid]!r} in the project",
            )
            continue
        else:
            out.append({"id": cid, "name": name})
            by_name[name], by_id[cid] = cid, name
        mapping[cid] = cid
    return mapping, sorted(out, key=lambda c: c["id"])


def map_classes_by_name(
    existing: list[dict[str, Any]], names: list[str]
) -> tuple[dict[int, int], list[dict[str, Any]]]:
    """Classes for a dataset that has only names in order (YOLO): index i -> class id.

    A project without classes numbers them from 1 (index i is class i + 1); otherwise names are
    matched and new names are added after the highest id.
    """
    by_name = {c["name"]: c["id"] for c in existing}
    out = list(existing)
    next_id = max((c["id"] for c in existing), default=0) + 1
    mapping: dict[int, int] = {}
    for i, name in enumerate(names):
        if name not in by_name:
            by_name[name] = next_id
            out.append({"id": next_id, "name": name})
            next_id += 1
        mapping[i] = by_name[name]
    return mapping, sorted(out, key=lambda c: c["id"])


def provenance(fmt: str, sources: list[str], options: ImportOptions, repairs: list[str]) -> dict:
    """The provenance of an import version: where it came from and what was changed on the way."""
    return {
        "method": None,
        "sources": sources,
        "format": fmt,
        "preprocessing": repairs,
        "model": None,
        "options": options.to_json(),
    }
