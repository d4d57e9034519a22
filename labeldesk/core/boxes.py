"""Boxes and annotation sets.

A box lives in the *upright* frame of its image (EXIF orientation applied), in pixels, with a
top-left origin: that is what a person sees, so it is what reviewers edit and what exports use.

An annotation set is the list of boxes of one image in canonical order. It is stored once by the
hash of its canonical JSON, so the thousands of images that share "no boxes" or that did not
change between versions cost nothing extra.

A box may be a COCO *crowd region* (``crowd``): a bounding box around a group of objects that
were not labelled one by one. It is kept (import, versions, diff, COCO export) so that evaluation
can ignore detections on it as COCO does, but it is not an object: it is left out of box counts,
drift and YOLO exports, and the review window draws it apart. ``area`` is COCO's ``area`` as a
dataset gave it (usually the segmentation's area, not w*h); ``None`` means w*h. Both are written
into the canonical set only when they differ from those defaults, so every annotation set without
crowd regions or given areas keeps the hash it had before they existed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, NamedTuple

from .canonical import COORD_DECIMALS, hash_json

Origin = Literal["human", "model"]
#: imported: came with an imported dataset; accepted: a pre-label kept unchanged;
#: edited: a pre-label a person changed; added: drawn by a person; rejected: a pre-label a
#: person threw away; pending: a pre-label nobody has decided on yet. Rejected and pending boxes
#: live only in the review record, never in a version's labels.
State = Literal["imported", "accepted", "edited", "added", "rejected", "pending"]
ORIGINS = ("human", "model")
STATES = ("imported", "accepted", "edited", "added", "rejected", "pending")
NOT_LABELS = ("rejected", "pending")


@dataclass(frozen=True, slots=True)
class Box:
    cls: int
    x: float
    y: float
    w: float
    h: float
    origin: Origin = "human"
    state: State = "added"
    score: float | None = None
    model: str | None = None
    author: str | None = None
    crowd: bool = False
    area: float | None = None

    def __post_init__(self) -> None:
        # Round once, here, so a box in memory equals the same box read back from storage (and
        # to_dict need not round again). Inlined round_coord: imports build millions of boxes.
        for name, v in (("x", self.x), ("y", self.y), ("w", self.w), ("h", self.h)):
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"box {name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, round(float(v), COORD_DECIMALS) + 0.0)
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"box must have positive size, got w={self.w} h={self.h}")
        if self.origin not in ORIGINS:
            raise ValueError(f"box origin must be one of {ORIGINS}, got {self.origin!r}")
        if self.state not in STATES:
            raise ValueError(f"box state must be one of {STATES}, got {self.state!r}")
        if not isinstance(self.crowd, bool):
            raise ValueError(f"box crowd must be true or false, got {self.crowd!r}")
        if self.area is not None:
            a = self.area
            if isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a):
                raise ValueError(f"box area must be a finite number, got {a!r}")
            if a < 0:
                raise ValueError(f"box area must not be negative, got {a!r}")
            # Kept exactly as given (not rounded): it decides small/medium/large at the 32**2
            # and 96**2 boundaries, so 1024.00004 must not become 1024. The value the COCO
            # export would write anyway is the default, stored as None.
            a = float(a)
            object.__setattr__(self, "area", None if a == default_area(self.w, self.h) else a)

    def to_dict(self) -> dict[str, Any]:
        """Canonical dict: rounded coordinates, ``None`` fields left out."""
        d: dict[str, Any] = {
            "class": int(self.cls),
            "x": self.x,  # already canonical: rounded in __post_init__
            "y": self.y,
            "w": self.w,
            "h": self.h,
            "origin": self.origin,
            "state": self.state,
        }
        if self.score is not None:
            d["score"] = round(float(self.score), 6)
        if self.model is not None:
            d["model"] = self.model
        if self.author is not None:
            d["author"] = self.author
        if self.crowd:
            d["iscrowd"] = 1
        if self.area is not None:
            d["area"] = self.area
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Box:
        return cls(
            cls=int(d["class"]),
            x=float(d["x"]),
            y=float(d["y"]),
            w=float(d["w"]),
            h=float(d["h"]),
            origin=d.get("origin", "human"),
            state=d.get("state", "added"),
            score=d.get("score"),
            model=d.get("model"),
            author=d.get("author"),
            crowd=bool(d.get("iscrowd", 0)),
            area=d.get("area"),
        )

    def with_(self, **changes: Any) -> Box:
        """A copy with ``changes``. Moving or resizing a box forgets its given ``area``: that
        area measured the old outline (a segmentation), which no longer describes the box."""
        if "area" not in changes and any(
            k in changes and changes[k] != getattr(self, k) for k in ("x", "y", "w", "h")
        ):
            changes["area"] = None
        return replace(self, **changes)

    @property
    def coco_area(self) -> float:
        """COCO's ``area``: the given one, else w*h as the COCO export writes it."""
        return self.area if self.area is not None else default_area(self.w, self.h)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)


BOX_FIELDS = tuple(f.name for f in fields(Box))


def default_area(w: float, h: float) -> float:
    """The ``area`` a box without a given one has: w*h rounded to 4 decimals, what the COCO
    export writes and evaluation sorts by."""
    return round(w * h, 4)


def coco_area(d: dict[str, Any]) -> float:
    """:attr:`Box.coco_area` of a canonical box dict (exporters work on dicts)."""
    area = d.get("area")
    return float(area) if area is not None else default_area(d["w"], d["h"])


def is_crowd(d: dict[str, Any]) -> bool:
    """Is this canonical box dict a crowd region?"""
    return bool(d.get("iscrowd", 0))


def count_boxes(dicts: Iterable[dict[str, Any]]) -> int:
    """How many object boxes a canonical set holds: crowd regions are not counted. This is
    the ``n_boxes`` of annotation sets, buckets, trees and versions."""
    return sum(1 for d in dicts if not d.get("iscrowd", 0))


def _sort_key(d: dict[str, Any]) -> tuple:
    return (
        d["class"],
        d["x"],
        d["y"],
        d["w"],
        d["h"],
        d["origin"],
        d["state"],
        d.get("score") or 0.0,
        d.get("model") or "",
        d.get("author") or "",
        # Last, so sets without crowd regions or given areas keep their order (and hash).
        d.get("iscrowd", 0),
        d.get("area", -1.0),
    )


def canonical_boxes(boxes: Iterable[Box]) -> list[dict[str, Any]]:
    return sorted((b.to_dict() for b in boxes), key=_sort_key)


class CanonicalSet(NamedTuple):
    """One image's annotation set as stored: its hash, canonical JSON and object-box count."""

    hash: str
    text: str
    n_boxes: int


class PackedSet(CanonicalSet):
    """A :class:`CanonicalSet` that carries the packed copy of its boxes (``packed``, see
    :mod:`labeldesk.core.store.packed`), made by the importer from the numbers it already
    holds so that the commit need not parse the text back. Equal to the plain set it extends."""

    packed: bytes | None


#: Sorted rows of an imported set as :func:`imported_set` writes them: ``(class, x, y, w, h,
#: 1 for a crowd region else 0, area or -1.0)``, coordinates rounded.
ImportedKey = tuple[int, float, float, float, float, int, float]


def annotation_set(boxes: Iterable[Box]) -> CanonicalSet:
    """Return ``(hash, canonical_json, n_boxes)`` of the boxes of one image (``n_boxes``
    leaves crowd regions out: see :func:`count_boxes`)."""
    dicts = canonical_boxes(boxes)
    h, text = hash_json(dicts)
    return CanonicalSet(h, text, count_boxes(dicts))


#: One box as an importer parsed it from a dataset file: ``(class, x, y, w, h, crowd, area)``,
#: ``area`` None when the file gave none. It becomes a box of origin "human", state "imported".
ImportedRow = tuple[int, float, float, float, float, bool, "float | None"]

_INF = math.inf
_NUMBER = (int, float)


def imported_set(
    rows: Iterable[ImportedRow],
    pack: Callable[[list[ImportedKey]], bytes | None] | None = None,
) -> CanonicalSet:
    """:func:`annotation_set` of ``Box(cls, x, y, w, h, origin="human", state="imported",
    crowd=crowd, area=area)`` for each row, without building the boxes: the same bytes and so
    the same hash (tests/core/test_boxes_canonical.py compares the two on random boxes).

    A labelled import makes one set per image from rows it has already checked, hundreds of
    thousands of boxes; building, converting and sorting a Box and a dict for each cost more
    than the rest of the import's Python work together. The rows are still checked here the
    way :class:`Box` checks them (a finite size above zero after rounding, a finite area >= 0),
    with the same errors, so an unchecked row cannot make a set that a Box would refuse.

    The text is written directly: the keys of an imported box in sorted order, numbers as
    ``json.dumps`` writes them (``repr`` of a float, ``str`` of an int), the boxes in
    :func:`_sort_key` order, which for boxes that share origin, state and the absent score,
    model and author is the order of ``(class, x, y, w, h, iscrowd, area or -1)``.

    With ``pack`` (the store's :func:`~labeldesk.core.store.packed.pack_imported`), the result
    is a :class:`PackedSet` holding ``pack(sorted rows)``: the packed copy, made here from the
    numbers rather than parsed back out of the text at commit.
    """
    keys: list[ImportedKey] = []
    for cls, x, y, w, h, crowd, area in rows:
        # Box.__post_init__'s rounding: round to the canonical precision, -0.0 becomes 0.0.
        # Plain floats (what parsers give) are rounded as they are; anything else is turned
        # into a float first, as Box does, or refused by Box with its wording.
        if type(x) is float and type(y) is float and type(w) is float and type(h) is float:
            x = round(x, COORD_DECIMALS) + 0.0
            y = round(y, COORD_DECIMALS) + 0.0
            w = round(w, COORD_DECIMALS) + 0.0
            h = round(h, COORD_DECIMALS) + 0.0
        else:
            if not (
                isinstance(x, _NUMBER)
                and isinstance(y, _NUMBER)
                and isinstance(w, _NUMBER)
                and isinstance(h, _NUMBER)
            ):
                Box(int(cls), x, y, w, h)  # raises
            x = round(float(x), COORD_DECIMALS) + 0.0
            y = round(float(y), COORD_DECIMALS) + 0.0
            w = round(float(w), COORD_DECIMALS) + 0.0
            h = round(float(h), COORD_DECIMALS) + 0.0
        # NaN and infinities fail the range test (round keeps them as they are).
        if not (-_INF < x < _INF and -_INF < y < _INF and 0.0 < w < _INF and 0.0 < h < _INF):
            Box(int(cls), x, y, w, h)  # raises the error a Box would, with its wording
        if crowd is not True and crowd is not False:
            raise ValueError(f"box crowd must be true or false, got {crowd!r}")
        if area is None:
            a = -1.0
        else:
            if isinstance(area, bool) or not isinstance(area, int | float):
                raise ValueError(f"box area must be a finite number, got {area!r}")
            a = float(area)
            if not -_INF < a < _INF:
                raise ValueError(f"box area must be a finite number, got {area!r}")
            if a < 0:
                raise ValueError(f"box area must not be negative, got {area!r}")
            if a == round(w * h, 4):  # default_area: the value stored as "no given area"
                a = -1.0
        keys.append((int(cls), x, y, w, h, 1 if crowd else 0, a))
    keys.sort()
    parts = []
    n = 0
    for cls, x, y, w, h, is_crowd_region, a in keys:
        head = f'{{"area":{a!r},"class":{cls}' if a != -1.0 else f'{{"class":{cls}'
        if is_crowd_region:
            parts.append(f'{head},"h":{h!r},"iscrowd":1,{_TAIL}"w":{w!r},"x":{x!r},"y":{y!r}}}')
        else:
            n += 1
            parts.append(f'{head},"h":{h!r},{_TAIL}"w":{w!r},"x":{x!r},"y":{y!r}}}')
    text = f"[{','.join(parts)}]"
    digest = hashlib.sha256(text.encode()).hexdigest()
    if pack is None:
        return CanonicalSet(digest, text, n)
    packed = PackedSet(digest, text, n)
    packed.packed = pack(keys)
    return packed


_TAIL = '"origin":"human","state":"imported",'


def live_boxes(boxes: Iterable[Box]) -> list[Box]:
    """The boxes that are labels: everything but rejected and undecided pre-labels (crowd
    regions included: they are part of a version's labels)."""
    return [b for b in boxes if b.state not in NOT_LABELS]


def object_boxes(boxes: Iterable[Box]) -> list[Box]:
    """The labels that are objects: :func:`live_boxes` without crowd regions (what counts)."""
    return [b for b in boxes if b.state not in NOT_LABELS and not b.crowd]


EMPTY_SET_HASH, EMPTY_SET_JSON, _ = annotation_set([])
