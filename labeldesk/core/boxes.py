"""Boxes and annotation sets.

A box lives in the *upright* frame of its image (EXIF orientation applied), in pixels, with a
top-left origin: that is what a person sees, so it is what reviewers edit and what exports use.

An annotation set is the list of boxes of one image in canonical order. It is stored once by the
hash of its canonical JSON, so the thousands of images that share "no boxes" or that did not
change between versions cost nothing extra.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from .canonical import hash_json, round_coord

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

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"box {name} must be a finite number, got {v!r}")
            # Round once, here, so a box in memory equals the same box read back from storage.
            object.__setattr__(self, name, round_coord(v))
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"box must have positive size, got w={self.w} h={self.h}")
        if self.origin not in ORIGINS:
            raise ValueError(f"box origin must be one of {ORIGINS}, got {self.origin!r}")
        if self.state not in STATES:
            raise ValueError(f"box state must be one of {STATES}, got {self.state!r}")

    def to_dict(self) -> dict[str, Any]:
        """Canonical dict: rounded coordinates, ``None`` fields left out."""
        d: dict[str, Any] = {
            "class": int(self.cls),
            "x": round_coord(self.x),
            "y": round_coord(self.y),
            "w": round_coord(self.w),
            "h": round_coord(self.h),
            "origin": self.origin,
            "state": self.state,
        }
        if self.score is not None:
            d["score"] = round(float(self.score), 6)
        if self.model is not None:
            d["model"] = self.model
        if self.author is not None:
            d["author"] = self.author
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
        )

    def with_(self, **changes: Any) -> Box:
        return replace(self, **changes)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)


BOX_FIELDS = tuple(f.name for f in fields(Box))


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
    )


def canonical_boxes(boxes: Iterable[Box]) -> list[dict[str, Any]]:
    return sorted((b.to_dict() for b in boxes), key=_sort_key)


def annotation_set(boxes: Iterable[Box]) -> tuple[str, str, int]:
    """Return ``(hash, canonical_json, n_boxes)`` of the boxes of one image."""
    dicts = canonical_boxes(boxes)
    h, text = hash_json(dicts)
    return h, text, len(dicts)


def live_boxes(boxes: Iterable[Box]) -> list[Box]:
    """The boxes that are labels: everything but rejected and undecided pre-labels."""
    return [b for b in boxes if b.state not in NOT_LABELS]


EMPTY_SET_HASH, EMPTY_SET_JSON, _ = annotation_set([])
