"""COCO bounding-box detection metrics in numpy, figure for figure equal to pycocotools.

Why our own engine rather than pycocotools: COCOeval walks every (image, class, area range,
IoU threshold, detection, label) in Python, which takes tens of seconds on a few thousand images;
an evaluation runs on every commit for every watched model, so it must take about a second. Why
not faster-coco-eval: it matched too, but it is a compiled dependency, and these ~300 lines of
numpy were 3-5x faster than it (measured in ``bench/eval.py``, see ``docs/metrics.md``).

What "equal" means here: the same decisions as ``COCOeval(gt, dt, "bbox")`` built the usual way
(ground truth from a COCO dict, detections through ``COCO.loadRes``), so the 12 summary figures,
the precision table and therefore per-class AP agree to rounding (they are in fact bitwise equal
on every set we tried). The details that make it so are kept on purpose and marked "as COCOeval":

* IoU uses the operation order of pycocotools' C ``bbIou``, so a pair at exactly a threshold
  falls on the same side; a crowd label's "union" is the detection's area.
* Per (image, class), detections are sorted by score with a stable sort (ties keep input order)
  and only the first 100 are evaluated; maxDets 1/10/100 are per image *and class*.
* Matching is greedy in score order. A detection takes the unmatched, non-ignored label with the
  highest IoU >= t (on equal IoU the later label in input order wins); only when there is none
  may it take an ignored label (crowd, or outside the area range; crowd labels can be taken
  again). Unmatched detections outside the area range are ignored.
* Across images, detections are merged by a stable sort on score, images in ascending id order;
  precision is made monotone and read at 101 recall points; -1 marks "undefined" (no labels).

The matching is sequential per (image, class) but independent across them, so it runs in
rounds: round r decides the r-th candidate detection of every (image, class) at once, for all
4 area ranges x 10 IoU thresholds. Pairs with IoU < 0.5 can never match and are dropped first.

This module is the input side (per-image types, COCO dicts, checks) and :func:`evaluate_columns`,
the entry to the engine; the counting itself is in :mod:`.metrics_engine`, whose parameters and
result types are re-exported here.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from ..defaults import DEFAULT_CONF
from ..errors import InputError, Problem, capped
from ..progress import CancelFn, ProgressFn
from ..validators import is_int as _is_int
from ..validators import is_number as _is_number
from .metrics_engine import AREA_LABELS as AREA_LABELS
from .metrics_engine import AREA_RANGES as AREA_RANGES
from .metrics_engine import IOU_THRESHOLDS as IOU_THRESHOLDS
from .metrics_engine import MAX_DETS as MAX_DETS
from .metrics_engine import RECALL_THRESHOLDS as RECALL_THRESHOLDS
from .metrics_engine import STAT_KEYS as STAT_KEYS
from .metrics_engine import STAT_LABELS as STAT_LABELS
from .metrics_engine import ClassMetrics as ClassMetrics
from .metrics_engine import EvalResult as EvalResult
from .metrics_engine import _evaluate_flat
from .metrics_engine import (
    _pair_iou as _pair_iou,  # the tests check its rounding directly
)

#: An image's id: the project's image number or a COCO image id. Ids are sorted (the images
#: are evaluated in id order), so one evaluation uses ids of one kind.
ImageId = int | str


@dataclass(frozen=True, slots=True, eq=False)
class GroundTruth:
    """The labelled boxes of one image (``boxes_xywh`` in pixels, top-left origin).

    ``areas`` is COCO's ``area`` field, used only to sort labels into small/medium/large; it
    defaults to w*h, which is what a bbox-only COCO export writes. ``iscrowd`` marks crowd
    regions: they are never missed, and detections on them count neither way.
    """

    image_id: ImageId
    boxes_xywh: np.ndarray
    classes: np.ndarray
    iscrowd: np.ndarray | None = None
    areas: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes, classes = _coerce(self.boxes_xywh, self.classes, "ground truth", self.image_id)
        object.__setattr__(self, "boxes_xywh", boxes)
        object.__setattr__(self, "classes", classes)
        for name in ("iscrowd", "areas"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=bool if name == "iscrowd" else np.float64).reshape(-1)
                if len(v) != len(classes):
                    raise ValueError(f"ground truth of image {self.image_id!r}: {name} length")
                object.__setattr__(self, name, v)


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """A model's boxes for one image, with their confidence scores."""

    image_id: ImageId
    boxes_xywh: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes, classes = _coerce(self.boxes_xywh, self.classes, "detections", self.image_id)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(classes):
            raise ValueError(f"detections of image {self.image_id!r}: scores length")
        object.__setattr__(self, "boxes_xywh", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "scores", scores)


def _coerce(boxes: Any, classes: Any, what: str, image_id: ImageId) -> tuple[np.ndarray, ...]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    c = np.asarray(classes).reshape(-1)
    if b.ndim != 2 or b.shape[1] != 4 or len(c) != len(b):
        raise ValueError(f"{what} of image {image_id!r}: boxes must be (N, 4) with N classes")
    if c.size and c.dtype.kind not in "iu" and not np.all(c == np.round(c)):
        raise ValueError(f"{what} of image {image_id!r}: classes must be integers")
    return b, c.astype(np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class CocoData:
    """A COCO ground-truth dict and results list, turned into :func:`evaluate`'s arguments."""

    ground_truth: list[GroundTruth]
    detections: list[Detection]
    category_ids: list[int]
    image_ids: list[ImageId]


def evaluate(
    ground_truth: Iterable[GroundTruth],
    detections: Iterable[Detection],
    *,
    category_ids: Iterable[int] | None = None,
    image_ids: Iterable[ImageId] | None = None,
    conf: float = DEFAULT_CONF,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> EvalResult:
    """Evaluate detections against labels as ``COCOeval(..., "bbox")`` does.

    ``image_ids`` are the images evaluated (default: every image in ``ground_truth``; an image
    with no boxes, or none of its own, has no labels, and its detections are false positives).
    Boxes on other images are left out, so a subset (a split, a tag, the changed images) is just
    a shorter list. ``category_ids`` are the classes evaluated (default: those in the labels);
    a class without labels is "undefined" (-1) and does not lower the means, as in COCO; boxes of
    classes not listed are left out. ``conf`` is the score threshold (inclusive) for the
    precision/recall/TP/FP/FN figures, which use IoU 0.5, all areas and 100 detections.
    """
    gts = list(ground_truth)
    dts = list(detections)
    if image_ids is None:
        image_ids = [g.image_id for g in gts]
        known = set(image_ids)
        unknown = sorted({str(d.image_id) for d in dts if d.image_id not in known})
        if unknown:
            raise InputError(
                "detections name images that the labels do not have",
                capped([Problem(f"image {i}", "not in the ground truth") for i in unknown]),
            )
    imgs = sorted(set(image_ids))
    if category_ids is None:
        category_ids = np.unique(np.concatenate([g.classes for g in gts] or [np.zeros(0, int)]))
    index = {iid: i for i, iid in enumerate(imgs)}

    g_img, g_cls, g_box = _flatten(gts, index)
    g_crowd = np.concatenate([_opt(g.iscrowd, len(g.classes), False) for g in gts] or [np.zeros(0)])
    g_area = np.concatenate(
        [g.areas if g.areas is not None else _wh(g.boxes_xywh) for g in gts] or [np.zeros(0)]
    )
    d_img, d_cls, d_box = _flatten(dts, index)
    d_score = np.concatenate([d.scores for d in dts] or [np.zeros(0)]).astype(np.float64)
    _validate(gts, g_box, g_area, dts, d_box, d_score)
    return evaluate_columns(
        imgs,
        Labels(g_img, g_box, g_cls, g_crowd.astype(bool), g_area),
        Found(d_img, d_box, d_cls, d_score),
        category_ids=category_ids,
        conf=conf,
        progress=progress,
        cancel=cancel,
    )


class Labels(NamedTuple):
    """The labels of many images as columns. ``image`` is each box's position in the
    ``image_ids`` it is evaluated with (-1: an image not evaluated)."""

    image: np.ndarray  # (N,) int
    boxes: np.ndarray  # (N, 4) xywh
    classes: np.ndarray  # (N,) category ids
    iscrowd: np.ndarray  # (N,) bool
    areas: np.ndarray  # (N,) COCO's area


class Found(NamedTuple):
    """Detections of many images as columns (``image`` as in :class:`Labels`)."""

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


def evaluate_columns(
    image_ids: Sequence[ImageId],
    labels: Labels,
    detections: Found,
    *,
    category_ids: Iterable[int],
    conf: float = DEFAULT_CONF,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> EvalResult:
    """:func:`evaluate` on columns: the metric engine itself, without per-image objects.

    ``image_ids`` (unique) are the images evaluated, in any order: as COCOeval, images are
    merged in ascending id order. Boxes of classes not in ``category_ids`` and of images at -1
    are left out. A non-finite number or a negative size is refused, naming its image.
    """
    n = len(image_ids)
    ids: Sequence[Any] = image_ids  # ids of one evaluation sort (all ints, or all strings)
    order = sorted(range(n), key=ids.__getitem__)
    rank = np.full(n + 1, -1, np.intp)  # rank[-1]: an image not evaluated stays -1
    rank[order] = np.arange(n)
    cats = np.array(sorted({int(c) for c in category_ids}), dtype=np.int64)
    g_img = rank[np.asarray(labels.image, np.intp)]
    g_cls = _class_positions(np.asarray(labels.classes), cats)
    d_img = rank[np.asarray(detections.image, np.intp)]
    d_cls = _class_positions(np.asarray(detections.classes), cats)
    g_box = np.asarray(labels.boxes, np.float64).reshape(-1, 4)
    d_box = np.asarray(detections.boxes, np.float64).reshape(-1, 4)
    g_area = np.asarray(labels.areas, np.float64)
    d_score = np.asarray(detections.scores, np.float64)
    g_crowd = np.asarray(labels.iscrowd, bool)

    g_keep = (g_img >= 0) & (g_cls >= 0)
    d_keep = (d_img >= 0) & (d_cls >= 0)
    bad = np.r_[
        g_img[g_keep & ~(np.isfinite(g_box).all(1) & (g_box[:, 2:] >= 0).all(1))],
        g_img[g_keep & ~np.isfinite(g_area)],
        d_img[d_keep & ~(np.isfinite(d_box).all(1) & (d_box[:, 2:] >= 0).all(1))],
        d_img[d_keep & ~np.isfinite(d_score)],
    ]
    if len(bad):
        names = [image_ids[i] for i in np.asarray(order)[np.unique(bad)]]
        raise InputError(
            "boxes must be finite with w, h >= 0",
            capped([Problem(f"image {i!r}", "non-finite or negative box") for i in names]),
        )
    return _evaluate_flat(
        n,
        cats,
        (g_img[g_keep], g_cls[g_keep], g_box[g_keep], g_crowd[g_keep], g_area[g_keep]),
        (d_img[d_keep], d_cls[d_keep], d_box[d_keep], d_score[d_keep]),
        float(conf),
        progress,
        cancel,
    )


def _class_positions(classes: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Each class id's position in the sorted ``cats`` (-1: not evaluated)."""
    cls = classes.astype(np.int64).reshape(-1)
    k = np.searchsorted(cats, cls)
    kc = np.minimum(k, max(len(cats) - 1, 0))
    known = (k < len(cats)) & (cats[kc] == cls) if len(cats) else np.zeros(len(cls), bool)
    return np.where(known, k, -1)


def from_coco(gt: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> CocoData:
    """Read a COCO ground-truth dict and a COCO results list (the formats users bring).

    As pycocotools: the images are ``gt["images"]``, the classes ``gt["categories"]`` (all of
    them, even unused ones), labels on other images are ignored, a result on an image the
    ground truth lacks is an error. Unlike pycocotools, a missing ``area`` means w*h and a
    missing ``iscrowd`` means 0. Every malformed entry is listed in one :class:`InputError`.
    """
    problems: list[Problem] = []
    images = gt.get("images", [])
    # JSON values until the checks below have passed (they raise before any is used).
    image_ids: list[Any] = [img.get("id") if isinstance(img, Mapping) else None for img in images]
    bad = [i for i in image_ids if not (_is_int(i) or isinstance(i, str))]
    if not image_ids:
        problems.append(Problem("images", "the ground truth lists no images"))
    elif bad:
        problems.append(Problem("images", f"ids must be integers or strings, got {bad[:5]!r}"))
    if "categories" in gt:
        category_ids: list[Any] = [
            c.get("id") if isinstance(c, Mapping) else None for c in gt["categories"]
        ]
    else:
        category_ids = sorted({a.get("category_id") for a in gt.get("annotations", [])})
    bad = [c for c in category_ids if not _is_int(c)]
    if bad:
        problems.append(Problem("categories", f"ids must be integers, got {bad[:5]!r}"))
    known = set(image_ids) if not problems else None
    labels = _columns(list(gt.get("annotations", [])), "annotations", problems)
    found = _columns(list(results), "results", problems, known=known, score=True)
    if problems:
        raise InputError("the COCO input is not valid", capped(problems))
    assert labels is not None and found is not None
    gts = [GroundTruth(i, *cols) for i, cols in _by_image(labels, image_ids, keep_empty=True)]
    dts = [Detection(i, *cols) for i, cols in _by_image(found, image_ids, keep_empty=False)]
    return CocoData(gts, dts, [int(c) for c in category_ids], image_ids)


def evaluate_coco(
    gt: Mapping[str, Any],
    results: Iterable[Mapping[str, Any]],
    *,
    conf: float = DEFAULT_CONF,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> EvalResult:
    """:func:`evaluate` on COCO-format input; the figures pycocotools would print."""
    data = from_coco(gt, results)
    return evaluate(
        data.ground_truth,
        data.detections,
        category_ids=data.category_ids,
        image_ids=data.image_ids,
        conf=conf,
        progress=progress,
        cancel=cancel,
    )


# --- input plumbing ------------------------------------------------------------------------


def _columns(
    entries: list[Any],
    name: str,
    problems: list[Problem],
    *,
    known: set[ImageId] | None = None,
    score: bool = False,
) -> tuple[list[ImageId], *tuple[np.ndarray, ...]] | None:
    """COCO entries as columns: image ids, boxes, classes, then scores or (iscrowd, area).

    Read column-wise because a per-entry check costs seconds on 100,000 entries; only when a
    column is bad are the entries checked one by one, to list every bad one. With ``known``,
    an entry on another image is bad (results); without, it is left out later (labels).
    """
    if not entries:
        empty = (np.zeros((0, 4)), np.zeros(0, np.int64))
        return ([], *empty, np.zeros(0)) if score else ([], *empty, np.zeros(0, bool), np.zeros(0))
    try:
        img: list[ImageId] = [e["image_id"] for e in entries]
        boxes = [e["bbox"] for e in entries]
        classes = [e["category_id"] for e in entries]
        box, cls = np.array(boxes), np.array(classes)
        if score:
            figures = [e["score"] for e in entries]
            extra = [np.array(figures)]
        else:
            crowd = np.array([e.get("iscrowd", 0) for e in entries])
            figures = [e["area"] if "area" in e else e["bbox"][2] * e["bbox"][3] for e in entries]
            extra = [crowd, np.array(figures)]
        # numpy turns [1, True, 3, 4] into integers: a bool is caught here, by type (see
        # validators), or it would pass as 1.
        ok = bool not in set(map(type, chain(chain.from_iterable(boxes), classes, figures)))
        ok = ok and box.shape == (len(entries), 4) and box.dtype.kind in "iuf"
        ok = ok and cls.dtype.kind in "iu" and extra[-1].dtype.kind in "iuf"
        ok = ok and bool(np.isfinite(box).all() and (box[:, 2:] >= 0).all())
        ok = ok and bool(np.isfinite(extra[-1]).all())
        ok = ok and (known is None or known.issuperset(img))
        ok = ok and (score or extra[0].dtype.kind in "biu")
    except (KeyError, TypeError, ValueError, IndexError):
        ok = False
    if ok:
        if not score:
            extra[0] = extra[0].astype(bool)
        arrays: tuple[np.ndarray, ...] = (box.astype(np.float64), cls.astype(np.int64), *extra)
        return (img, *arrays)
    before = len(problems)
    for n, e in enumerate(entries):
        _check_entry(e, f"{name}[{n}]", problems, known, score=score)
    if len(problems) == before:
        problems.append(Problem(name, "entries of mixed or unexpected types"))
    return None


def _check_entry(
    e: Any, where: str, problems: list[Problem], known: set[ImageId] | None, *, score: bool
) -> None:
    """Say what is wrong with one COCO annotation or result, if anything."""
    if not isinstance(e, Mapping):
        problems.append(Problem(where, "not an object"))
        return
    need = ("image_id", "category_id", "bbox", "score" if score else "category_id")
    missing = [k for k in dict.fromkeys(need) if k not in e]
    if missing:
        problems.append(Problem(where, f"missing {', '.join(missing)}"))
        return
    if known is not None and not (isinstance(e["image_id"], Hashable) and e["image_id"] in known):
        problems.append(Problem(where, f"image_id {e['image_id']!r} is not in the ground truth"))
    bbox = e["bbox"]
    ok = isinstance(bbox, Sequence) and len(bbox) == 4
    ok = ok and all(_is_number(v) for v in bbox) and bbox[2] >= 0 and bbox[3] >= 0
    if not ok:
        problems.append(Problem(where, f"bbox must be 4 finite numbers, w, h >= 0: {bbox!r}"))
    if not _is_int(e["category_id"]):
        problems.append(Problem(where, f"category_id must be an integer: {e['category_id']!r}"))
    key = "score" if score else "area"
    if key in e and not _is_number(e[key]):
        problems.append(Problem(where, f"{key} must be a finite number: {e[key]!r}"))
    if not score and not isinstance(e.get("iscrowd", 0), int | np.integer):
        problems.append(Problem(where, f"iscrowd must be 0 or 1: {e['iscrowd']!r}"))


def _by_image(
    cols: tuple[Any, ...], image_ids: list[ImageId], *, keep_empty: bool
) -> Iterable[tuple[ImageId, list[np.ndarray]]]:
    """Split columns per image, in ``image_ids`` order; entries of other images are dropped."""
    index = {iid: i for i, iid in enumerate(image_ids)}
    where = np.fromiter((index.get(i, -1) for i in cols[0]), np.intp, len(cols[0]))
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(len(image_ids) + 1))
    arrays = [c[order] for c in cols[1:]]
    for k, iid in enumerate(image_ids):
        s, e = bounds[k], bounds[k + 1]
        if keep_empty or e > s:
            yield iid, [a[s:e] for a in arrays]


def _wh(boxes: Any) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b[:, 2] * b[:, 3]


def _opt(v: np.ndarray | None, n: int, default: bool) -> np.ndarray:
    return np.full(n, default) if v is None else v


def _flatten(
    items: list[GroundTruth] | list[Detection], index: dict[ImageId, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-image arrays; the image becomes its position (-1: not evaluated)."""
    counts = np.fromiter((len(it.classes) for it in items), np.intp, len(items))
    where = np.fromiter((index.get(it.image_id, -1) for it in items), np.intp, len(items))
    img = np.repeat(where, counts)
    cls = np.concatenate([it.classes for it in items] or [np.zeros(0, np.int64)])
    box = np.concatenate([it.boxes_xywh for it in items] or [np.zeros((0, 4))])
    return img, cls, box


def _validate(
    gts: list[GroundTruth],
    g_box: np.ndarray,
    g_area: np.ndarray,
    dts: list[Detection],
    d_box: np.ndarray,
    d_score: np.ndarray,
) -> None:
    """Reject non-finite numbers and negative sizes, naming the images, in one error."""
    problems = []
    for what, items, bad in (
        ("labels", gts, ~np.isfinite(g_box).all(1) | (g_box[:, 2:] < 0).any(1)),
        ("labels", gts, ~np.isfinite(g_area)),
        ("detections", dts, ~np.isfinite(d_box).all(1) | (d_box[:, 2:] < 0).any(1)),
        ("detections", dts, ~np.isfinite(d_score)),
    ):
        if bad.any():
            owner = np.repeat(np.arange(len(items)), [len(it.classes) for it in items])
            for i in np.unique(owner[bad]):
                problems.append(
                    Problem(f"image {items[i].image_id!r}", f"{what}: non-finite or negative box")
                )
    if problems:
        raise InputError("boxes must be finite with w, h >= 0", capped(problems))
