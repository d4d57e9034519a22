"""The prediction cache: what a model proposed for an image, under given parameters.

Predictions are a cache, never labels: they enter a version only when a reviewer accepts them
(in a review session). They are keyed by (model, parameters, image), so re-running with the same
model and parameters costs nothing, and changing a parameter never mixes old and new results.
Boxes are stored with the model's class *names*; mapping to the project's classes happens where
they are shown, so a model can be used on any version whatever its class ids.

A *run* is every row of one (model, params) pair, whoever stored it (``labeldesk prelabel``, the
window, a watched evaluation). :func:`runs` lists the runs that cover a version's images, newest
first: that is what a review session offers as its pre-label source.

API: :class:`Prediction`, :func:`params_key`, :func:`store`, :func:`cached_images`, :func:`load`,
:func:`stored`, :func:`load_many`, :class:`Run`, :func:`runs`, :func:`version_images`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..canonical import canonical_json, round_coord
from ..defaults import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU
from ..errors import InputError, Problem
from ..store.db import ProjectDatabase as Database
from ..store.manifest import ManifestStore
from ..store.packed import pack_predictions
from ..store.project import Project, now_iso


def prelabel_params(
    conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, imgsz: int = DEFAULT_IMGSZ
) -> dict[str, Any]:
    """The parameters that key the cache, normalised so equal settings give equal keys.

    Here, with the cache, not with the prediction loop: checking settings (``labeldesk log``
    reads watched models' settings) must not import the loop.

    The GUI and ``set_prelabel_source`` must use this same dict to find the cached boxes.
    """
    problems = []
    if not 0.0 < float(conf) <= 1.0:
        problems.append(Problem("conf", f"must be in (0, 1], got {conf}"))
    if not 0.0 < float(iou) <= 1.0:
        problems.append(Problem("iou", f"must be in (0, 1], got {iou}"))
    if int(imgsz) != imgsz or imgsz < 32 or int(imgsz) % 32:
        problems.append(Problem("imgsz", f"must be a multiple of 32 (the stride), got {imgsz}"))
    if problems:
        raise InputError("bad pre-labelling parameters", problems)
    return {"conf": float(conf), "iou": float(iou), "imgsz": int(imgsz)}


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
    rows = []
    for image, preds in results:
        text = canonical_json([p.to_dict() for p in preds])
        # the packed copy the review queue reads (core.packed), derived from this very text
        copy = pack_predictions(text) or (None, None)
        rows.append((model, image, key, text, now, *copy))
    with project.transaction():
        project.db.conn.executemany(
            "INSERT OR REPLACE INTO prediction (model, image, params, boxes, created, packed, "
            "packed_names) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
    return stored(db, model, params, image) or []


def stored(
    db: Database, model: str, params: Mapping[str, Any], image: str
) -> list[Prediction] | None:
    """Like :func:`load`, but None when the run never saw ``image`` ([] when it found nothing:
    that is evidence, e.g. that a label may be spurious)."""
    row = db.execute(
        "SELECT boxes FROM prediction WHERE model = ? AND params = ? AND image = ?",
        [model, params_key(params), image],
    ).fetchone()
    if row is None:
        return None
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


@dataclass(frozen=True, slots=True)
class Run:
    """The stored predictions of one model under one set of parameters."""

    model: str  # model id (the hash of its file)
    model_name: str
    params: dict[str, Any]
    images: int  # images of the version asked about that this run has predictions for
    created: str  # when its newest row was stored

    @property
    def params_text(self) -> str:
        """The parameters in words, for people: ``conf 0.25, iou 0.7, imgsz 640``."""
        return ", ".join(f"{k} {v}" for k, v in sorted(self.params.items())) or "defaults"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_name": self.model_name,
            "params": self.params,
            "images": self.images,
            "created": self.created,
        }


def version_images(db: Database, version_id: str) -> set[str]:
    """The image hashes of a version (read from its manifest buckets, not decoded entries)."""
    store = ManifestStore(db)
    tree_hash = db.execute("SELECT tree FROM version WHERE id = ?", [version_id]).fetchone()
    if tree_hash is None:
        return set()
    tree = store.tree(tree_hash[0])
    return {sha for bucket in tree.buckets.values() for sha in store.raw_bucket(bucket)}


def runs(db: Database, images: set[str] | None = None) -> list[Run]:
    """Every stored run, newest first; with ``images``, only runs covering at least one of them
    and ``Run.images`` counts those. Ties on time go to the run covering more images."""
    names = dict(db.execute("SELECT id, name FROM model").fetchall())
    found: dict[tuple[str, str], list[Any]] = {}
    if images is None:
        for model, params, n, created in db.execute(
            "SELECT model, params, COUNT(*), MAX(created) FROM prediction GROUP BY model, params"
        ):
            found[(model, params)] = [n, created]
    else:
        # Per run, the images of its rows, read from the key's index alone (no row is read):
        # the version's set decides "covers this version". Where the run covers only part of
        # it, the newest row among those it covers is looked up too.
        # (NOT INDEXED: grouping a scan of the table beats one row lookup per index entry)
        for model, params, n, created in db.execute(
            "SELECT model, params, COUNT(*), MAX(created) FROM prediction NOT INDEXED "
            "GROUP BY model, params"
        ).fetchall():
            rows = db.execute(
                "SELECT image FROM prediction WHERE model = ? AND params = ?", [model, params]
            )
            inside = len(images.intersection(r[0] for r in rows))
            if inside == 0:
                continue
            if inside < n:
                created = max(
                    c
                    for image, c in db.execute(
                        "SELECT image, created FROM prediction WHERE model = ? AND params = ?",
                        [model, params],
                    )
                    if image in images
                )
            found[(model, params)] = [inside, created]
    out = [
        Run(model, names.get(model, model[:12]), json.loads(params), n, created)
        for (model, params), (n, created) in found.items()
    ]
    out.sort(key=lambda r: (r.created, r.images, r.model_name), reverse=True)
    return out
