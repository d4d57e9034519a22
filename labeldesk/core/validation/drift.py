"""Drift between two versions: has the data (labels or pixels) moved away from what it was?

A model validated on version A is only trusted on version B if B looks like A. Seven features
are compared, each as a histogram with **fixed** bins (so scores are comparable across runs and
projects, and a version's histogram never depends on the version it is compared with):

========================  =========================================================  ========
feature                   value                                                      per
========================  =========================================================  ========
``classes``               class name of each box (categorical)                       box
``boxes_per_image``       number of boxes                                            image
``box_size``              sqrt(box area / image area): the box side relative to the   box
                          image
``box_aspect``            log2(w / h)                                                box
``image_size``            sqrt(width * height) in pixels (upright)                   image
``brightness``            mean grey level, 0-255, of the image reduced to 128 px     image
``contrast``              standard deviation of that grey level                      image
========================  =========================================================  ========

Each feature gets a Population Stability Index, PSI = sum over bins of (b - a) * ln(b / a),
where a and b are the bin shares in the two versions, each floored at 1e-4 so an empty bin
does not make it infinite. The usual reading: < 0.1 no real change, 0.1-0.25 a moderate shift,
> 0.25 a major one. The overall score is the largest feature score; the verdict is "drift"
when it exceeds the threshold (default 0.2). A feature with no data on either side (no boxes)
has no score.

Brightness and contrast need the pixels, which is the slow part, so they are computed once per
image (decoded at reduced size: Pillow's JPEG draft mode, then a 128 px thumbnail) and cached in
the ``image_stats`` table under a method name; changing the method recomputes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.manifest import ManifestStore
from ..store.project import Project, now_iso
from ..store.versions import Version, resolve

DEFAULT_THRESHOLD = 0.2
PSI_FLOOR = 1e-4
STATS_METHOD = "grey-mean-std/thumb128/v1"
_THUMB = 128
_BATCH = 500
_WORKERS = 4
INF = math.inf

#: Fixed bin edges of the numeric features (left-closed, right-open).
EDGES: dict[str, tuple[float, ...]] = {
    "boxes_per_image": (0, 1, 2, 3, 4, 5, 7, 11, 21, 51, INF),
    "box_size": (0, 0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64, INF),
    "box_aspect": (-INF, -2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2, INF),
    "image_size": (0, 320, 480, 640, 800, 1024, 1280, 1600, 2048, 4096, INF),
    "brightness": (0, 32, 64, 96, 128, 160, 192, 224, INF),
    "contrast": (0, 16, 32, 48, 64, 80, 96, 128, INF),
}
FEATURES = ("classes", *EDGES)


@dataclass(frozen=True)
class Feature:
    """One feature's histograms in the two versions and its PSI (None: no data)."""

    name: str
    bins: list[str]
    a: list[int]
    b: list[int]
    score: float | None

    def drifted(self, threshold: float) -> bool:
        return self.score is not None and self.score > threshold

    def to_json(self, threshold: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "bins": self.bins,
            "a": self.a,
            "b": self.b,
            "psi": self.score,
            "drifted": self.drifted(threshold),
        }


@dataclass(frozen=True)
class DriftReport:
    a: Version
    b: Version
    threshold: float
    features: list[Feature]
    unreadable: list[str]  # images whose pixels could not be decoded (left out)

    @property
    def score(self) -> float | None:
        scores = [f.score for f in self.features if f.score is not None]
        return max(scores) if scores else None

    @property
    def drifted(self) -> bool:
        return any(f.drifted(self.threshold) for f in self.features)

    def verdict(self) -> str:
        moved = [f.name for f in self.features if f.drifted(self.threshold)]
        if moved:
            return f"drift: {', '.join(moved)} above {self.threshold:g}"
        return f"no drift: every feature at or below {self.threshold:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.id,
            "b": self.b.id,
            "threshold": self.threshold,
            "score": self.score,
            "drifted": self.drifted,
            "verdict": self.verdict(),
            "features": [f.to_json(self.threshold) for f in self.features],
            "unreadable": self.unreadable,
            "method": {"psi_floor": PSI_FLOOR, "edges": EDGES, "image_stats": STATS_METHOD},
        }


def psi(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Population Stability Index of two histograms over the same bins (None if one is empty)."""
    ca, cb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if ca.sum() == 0 or cb.sum() == 0:
        return None
    pa = np.maximum(ca / ca.sum(), PSI_FLOOR)
    pb = np.maximum(cb / cb.sum(), PSI_FLOOR)
    return float(np.sum((pb - pa) * np.log(pb / pa)))


def bin_labels(edges: Sequence[float]) -> list[str]:
    def f(v: float) -> str:
        return "inf" if v == INF else "-inf" if v == -INF else f"{v:g}"

    return [f"[{f(lo)}, {f(hi)})" for lo, hi in pairwise(edges)]


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    v = np.fromiter(values, dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges[1:-1]), v, side="right")
    return np.bincount(idx, minlength=len(edges) - 1).astype(int).tolist()


# --- features of one version ---------------------------------------------------------------


@dataclass
class VersionFeatures:
    """Raw values of every feature in one version."""

    classes: list[str]
    boxes_per_image: list[int]
    box_size: list[float]
    box_aspect: list[float]
    image_size: list[float]
    brightness: list[float]
    contrast: list[float]
    unreadable: list[str]


def features(
    project: Project,
    version: Version,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> VersionFeatures:
    db = project.db
    store = ManifestStore(db)
    entries = list(store.entries(store.tree(version.tree)))
    shas = [s for s, _ in entries]
    sizes: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(shas):
        marks = ",".join("?" * len(chunk))
        for sha, w, h in db.execute(
            f"SELECT sha256, width, height FROM image WHERE sha256 IN ({marks})", chunk
        ):
            sizes[sha] = (w, h)
    sets = _annotation_sets(project, {e.annset for _, e in entries})
    names = version.class_names
    out = VersionFeatures([], [], [], [], [], [], [], [])
    for sha, entry in entries:
        w_img, h_img = sizes[sha]
        boxes = sets[entry.annset]
        out.boxes_per_image.append(len(boxes))
        out.image_size.append(math.sqrt(w_img * h_img))
        for cls, w, h in boxes:
            out.classes.append(names.get(cls, f"class {cls}"))
            out.box_size.append(math.sqrt(w * h / (w_img * h_img)))
            out.box_aspect.append(math.log2(w / h))
    stats = image_stats(project, shas, progress=progress, cancel=cancel)
    for sha in shas:
        s = stats.get(sha)
        if s is None:
            out.unreadable.append(sha)
        else:
            out.brightness.append(s[0])
            out.contrast.append(s[1])
    return out


def _chunks(items: list[str], n: int = _BATCH) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _annotation_sets(
    project: Project, hashes: set[str]
) -> dict[str, list[tuple[int, float, float]]]:
    """(class, w, h) of the live object boxes of each annotation set, read in batches.

    Crowd regions are left out: they outline a group, not an object, so their size and class
    would skew the box features (and ``boxes_per_image`` counts objects, as ``n_boxes`` does).
    """
    out: dict[str, list[tuple[int, float, float]]] = {}
    for chunk in _chunks(sorted(hashes)):
        marks = ",".join("?" * len(chunk))
        for h, text in project.db.execute(
            f"SELECT hash, boxes FROM annotation_set WHERE hash IN ({marks})", chunk
        ):
            out[h] = [
                (d["class"], d["w"], d["h"])
                for d in json.loads(text)
                if d.get("state") not in ("rejected", "pending") and not d.get("iscrowd")
            ]
    return out


# --- pixels, cached ------------------------------------------------------------------------


def _measure(path: str) -> tuple[float, float] | None:
    """Mean and standard deviation of the grey level, from a small decode of the image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("L", (_THUMB, _THUMB))  # JPEG: let the decoder scale down (fast)
            grey = im.convert("L")
            grey.thumbnail((_THUMB, _THUMB))
            a = np.asarray(grey, dtype=np.float64)
    except Exception:  # a damaged object is fsck's to report; drift leaves it out
        return None
    return float(a.mean()), float(a.std())


def image_stats(
    project: Project,
    shas: Sequence[str],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> dict[str, tuple[float, float]]:
    """(brightness, contrast) of each image: from ``image_stats``, measuring what is missing."""
    db = project.db
    out: dict[str, tuple[float, float]] = {}
    for chunk in _chunks(list(shas)):
        marks = ",".join("?" * len(chunk))
        for sha, b, c in db.execute(
            f"SELECT image, brightness, contrast FROM image_stats "
            f"WHERE method = ? AND image IN ({marks})",
            [STATS_METHOD, *chunk],
        ):
            out[sha] = (b, c)
    todo = [s for s in dict.fromkeys(shas) if s not in out]
    done = 0
    with ThreadPoolExecutor(_WORKERS) as pool:
        for chunk in _chunks(todo):
            check_cancel(cancel)
            paths = [str(project.objects.path(s)) for s in chunk]
            measured = list(pool.map(_measure, paths))
            rows = [
                (s, STATS_METHOD, m[0], m[1]) for s, m in zip(chunk, measured, strict=True) if m
            ]
            with project.transaction():
                now = now_iso()
                db.conn.executemany(
                    "INSERT OR IGNORE INTO image_stats (image, method, brightness, contrast, "
                    "created) VALUES (?, ?, ?, ?, ?)",
                    [(*r, now) for r in rows],
                )
            out.update({r[0]: (r[2], r[3]) for r in rows})
            done += len(chunk)
            if progress is not None:
                progress(done, len(todo), "measuring images")
    return out


# --- comparing -----------------------------------------------------------------------------


def compare(fa: VersionFeatures, fb: VersionFeatures) -> list[Feature]:
    """Histograms and PSI of every feature."""
    names = sorted(set(fa.classes) | set(fb.classes))
    ca, cb = _count(fa.classes, names), _count(fb.classes, names)
    out = [Feature("classes", names, ca, cb, psi(ca, cb))]
    for name, edges in EDGES.items():
        ha = histogram(getattr(fa, name), edges)
        hb = histogram(getattr(fb, name), edges)
        out.append(Feature(name, bin_labels(edges), ha, hb, psi(ha, hb)))
    return out


def _count(values: list[str], names: list[str]) -> list[int]:
    pos = {n: i for i, n in enumerate(names)}
    counts = [0] * len(names)
    for v in values:
        counts[pos[v]] += 1
    return counts


def drift(
    project: Project,
    ref_a: str,
    ref_b: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> DriftReport:
    """Compare version ``ref_b`` with ``ref_a`` (the reference) on every feature."""
    if not (math.isfinite(threshold) and threshold >= 0):
        from ..errors import LabelDeskError

        raise LabelDeskError(f"--threshold must be a number >= 0, got {threshold}")
    a, b = resolve(project.db, ref_a), resolve(project.db, ref_b)
    fa = features(project, a, progress=progress, cancel=cancel)
    fb = fa if b.id == a.id else features(project, b, progress=progress, cancel=cancel)
    unreadable = sorted(set(fa.unreadable) | set(fb.unreadable))
    return DriftReport(a, b, threshold, compare(fa, fb), unreadable)
