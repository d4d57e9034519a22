"""The prediction cache: what a model proposed for an image, under given parameters.

Predictions are a cache, never labels: they enter a version only when a reviewer accepts them
(in a review session). They are keyed by (model, parameters, image), so re-running with the same
model and parameters costs nothing, and changing a parameter never mixes old and new results.
Boxes are stored with the model's class *names*; mapping to the project's classes happens where
they are shown, so a model can be used on any version whatever its class ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from .canonical import canonical_json, round_coord
from .project import Project, now_iso


@dataclass(frozen=True, slots=True)
class Prediction:
    name: str  # the model's class name
    x: float
    y: float
    w: float
    h: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "x": round_coord(self.x),
            "y": round_coord(self.y),
            "w": round_coord(self.w),
            "h": round_coord(self.h),
            "score": round(float(self.score), 6),
        }


def params_key(params: Mapping[str, Any]) -> str:
    """Parameters as canonical JSON: equal parameters, equal cache key."""
    return canonical_json(dict(params))


def store(
    project: Project, model: str, params: Mapping[str, Any], results: Iterable[tuple[str, list]]
) -> int:
    """Store predictions for many images in one transaction; returns how many images."""
    key = params_key(params)
    now = now_iso()
    rows = [
        (model, image, key, canonical_json([p.to_dict() for p in preds]), now)
        for image, preds in results
    ]
    with project.transaction():
        project.db.conn.executemany(
            "INSERT OR REPLACE INTO prediction (model, image, params, boxes, created) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def cached_images(db: Database, model: str, params: Mapping[str, Any]) -> set[str]:
    return {
        r[0]
        for r in db.execute(
            "SELECT image FROM prediction WHERE model = ? AND params = ?",
            [model, params_key(params)],
        )
    }


def load(db: Database, model: str, params: Mapping[str, Any], image: str) -> list[Prediction]:
    row = db.execute(
        "SELECT boxes FROM prediction WHERE model = ? AND params = ? AND image = ?",
        [model, params_key(params), image],
    ).fetchone()
    if row is None:
        return []
    return [Prediction(**d) for d in json.loads(row[0])]


def load_many(
    db: Database, model: str, params: Mapping[str, Any], images: Iterable[str]
) -> dict[str, list[Prediction]]:
    """Cached predictions of many images at once (images without any are left out)."""
    key = params_key(params)
    shas = list(images)
    out: dict[str, list[Prediction]] = {}
    for i in range(0, len(shas), 500):
        chunk = shas[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for image, boxes in db.execute(
            f"SELECT image, boxes FROM prediction WHERE model = ? AND params = ? "
            f"AND image IN ({marks})",
            [model, key, *chunk],
        ):
            out[image] = [Prediction(**d) for d in json.loads(boxes)]
    return out
