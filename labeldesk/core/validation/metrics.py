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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ..errors import CancelledError, InputError, Problem

#: An image's id: the project's image number or a COCO image id. Ids are sorted (the images
#: are evaluated in id order), so one evaluation uses ids of one kind.
ImageId = int | str
ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]

# Parameters exactly as COCOeval's Params.setDetParams builds them (linspace, not arange).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
AREA_LABELS = ("all", "small", "medium", "large")

#: The 12 COCOeval summary figures, in ``COCOeval.stats`` order.
STAT_LABELS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl")
STAT_LABELS += ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
#: The same figures under the names the CLI uses (``--metric map50_95``).
STAT_KEYS: tuple[str, ...] = ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large")
STAT_KEYS += ("mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large")
# (AP?, IoU threshold or None for all, area index, maxDets index), as COCOeval._summarizeDets.
_STATS = [(True, None, 0, 2), (True, 0.5, 0, 2), (True, 0.75, 0, 2)]
_STATS += [(True, None, a, 2) for a in (1, 2, 3)]
_STATS += [(False, None, 0, m) for m in (0, 1, 2)] + [(False, None, a, 2) for a in (1, 2, 3)]
_MAX_PROBLEMS = 50
_PAIR_BLOCK = 1 << 21  # (detection, label) pairs made at once: ~100 MiB


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


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """One row of the per-class table.

    ``ap``/``ap50`` are -1 when the class has no labelled box (COCO's "undefined"); the
    precision/recall/TP/FP/FN columns are at the result's confidence threshold and IoU 0.5.
    """

    category_id: int
    ap: float
    ap50: float
    labels: int
    detections: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float


@dataclass(frozen=True, slots=True, eq=False)
class EvalResult:
    """What an evaluation produced; ``to_dict`` is what gets stored with its lineage.

    ``coco_precision`` is COCOeval's ``eval['precision']`` (IoU x recall point x class x area x
    maxDets) and ``coco_recall`` its ``eval['recall']``, kept for PR curves in the GUI.
    """

    stats: tuple[float, ...]
    per_class: tuple[ClassMetrics, ...]
    conf: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    images: int
    coco_precision: np.ndarray
    coco_recall: np.ndarray

    @property
    def summary(self) -> dict[str, float]:
        return dict(zip(STAT_KEYS, self.stats, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "conf": self.conf,
            "iou": 0.5,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "images": self.images,
            "per_class": [asdict(c) for c in self.per_class],
        }


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
    conf: float = 0.25,
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
                _problems([Problem(f"image {i}", "not in the ground truth") for i in unknown]),
            )
    imgs = sorted(set(image_ids))
    if category_ids is None:
        category_ids = np.unique(np.concatenate([g.classes for g in gts] or [np.zeros(0, int)]))
    cats = np.array(sorted({int(c) for c in category_ids}), dtype=np.int64)
    index = {iid: i for i, iid in enumerate(imgs)}

    g_img, g_cls, g_box = _flatten(gts, index, cats)
    g_crowd = np.concatenate([_opt(g.iscrowd, len(g.classes), False) for g in gts] or [np.zeros(0)])
    g_area = np.concatenate(
        [g.areas if g.areas is not None else _wh(g.boxes_xywh) for g in gts] or [np.zeros(0)]
    )
    d_img, d_cls, d_box = _flatten(dts, index, cats)
    d_score = np.concatenate([d.scores for d in dts] or [np.zeros(0)]).astype(np.float64)
    _validate(gts, g_box, g_area, dts, d_box, d_score)

    keep = (g_img >= 0) & (g_cls >= 0)
    g_img, g_cls, g_box = g_img[keep], g_cls[keep], g_box[keep]
    g_crowd, g_area = g_crowd[keep].astype(bool), g_area[keep]
    keep = (d_img >= 0) & (d_cls >= 0)
    d_img, d_cls, d_box, d_score = d_img[keep], d_cls[keep], d_box[keep], d_score[keep]
    return _evaluate_flat(
        len(imgs),
        cats,
        (g_img, g_cls, g_box, g_crowd, g_area),
        (d_img, d_cls, d_box, d_score),
        float(conf),
        progress,
        cancel,
    )


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
        raise InputError("the COCO input is not valid", _problems(problems))
    assert labels is not None and found is not None
    gts = [GroundTruth(i, *cols) for i, cols in _by_image(labels, image_ids, keep_empty=True)]
    dts = [Detection(i, *cols) for i, cols in _by_image(found, image_ids, keep_empty=False)]
    return CocoData(gts, dts, [int(c) for c in category_ids], image_ids)


def evaluate_coco(
    gt: Mapping[str, Any],
    results: Iterable[Mapping[str, Any]],
    *,
    conf: float = 0.25,
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


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


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
        box = np.array([e["bbox"] for e in entries])
        cls = np.array([e["category_id"] for e in entries])
        if score:
            extra = [np.array([e["score"] for e in entries])]
        else:
            crowd = np.array([e.get("iscrowd", 0) for e in entries])
            area = [e["area"] if "area" in e else e["bbox"][2] * e["bbox"][3] for e in entries]
            extra = [crowd, np.array(area)]
        ok = box.shape == (len(entries), 4) and box.dtype.kind in "iuf"
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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool) and np.isfinite(v)


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


def _problems(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= _MAX_PROBLEMS:
        return problems
    more = Problem("…", f"and {len(problems) - _MAX_PROBLEMS} more")
    return [*problems[:_MAX_PROBLEMS], more]


def _wh(boxes: Any) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b[:, 2] * b[:, 3]


def _opt(v: np.ndarray | None, n: int, default: bool) -> np.ndarray:
    return np.full(n, default) if v is None else v


def _flatten(
    items: list[GroundTruth] | list[Detection], index: dict[ImageId, int], cats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-image arrays; image/class become positions (-1: not evaluated)."""
    counts = np.fromiter((len(it.classes) for it in items), np.intp, len(items))
    where = np.fromiter((index.get(it.image_id, -1) for it in items), np.intp, len(items))
    img = np.repeat(where, counts)
    cls = np.concatenate([it.classes for it in items] or [np.zeros(0, np.int64)])
    k = np.searchsorted(cats, cls)
    kc = np.minimum(k, max(len(cats) - 1, 0))
    known = (k < len(cats)) & (cats[kc] == cls) if len(cats) else np.zeros(len(cls), bool)
    box = np.concatenate([it.boxes_xywh for it in items] or [np.zeros((0, 4))])
    return img, np.where(known, k, -1), box


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
        raise InputError("boxes must be finite with w, h >= 0", _problems(problems))


# --- the engine ----------------------------------------------------------------------------


def _group_sort(
    key: np.ndarray, score: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable order by key (then by descending score, as COCOeval), and each item's rank."""
    if score is None:
        order = np.argsort(key, kind="stable")
    else:
        by_score = np.argsort(-score, kind="stable")
        order = by_score[np.argsort(key[by_score], kind="stable")]
    k = key[order]
    new = np.ones(len(k), bool)
    new[1:] = k[1:] != k[:-1]
    first = np.flatnonzero(new)
    rank = np.arange(len(k)) - first[np.cumsum(new) - 1]
    return order, k, rank


def _pair_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of paired boxes, in the operation order of pycocotools' C ``bbIou``.

    Same order means the same rounding, so an IoU that equals a threshold in pycocotools
    equals it here too.
    """
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    da = d[:, 2] * d[:, 3]
    union = np.where(crowd, da, da + g[:, 2] * g[:, 3] - inter)
    iou = np.zeros(len(d))
    ok = (w > 0) & (h > 0)
    iou[ok] = inter[ok] / union[ok]
    return iou


def _candidate_pairs(
    d_key: np.ndarray, d_box: np.ndarray, g_key: np.ndarray, g_box: np.ndarray, g_crowd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(detection, label, IoU) for every pair in the same (image, class) with IoU >= 0.5.

    All pairs of a dense image (hundreds of labels, 100 detections) are many, so they are
    made a block of detections at a time and only the few that can match are kept.
    """
    starts = np.flatnonzero(np.r_[True, g_key[1:] != g_key[:-1]]) if len(g_key) else g_key
    ukeys = g_key[starts]
    counts = np.diff(np.r_[starts, len(g_key)])
    pos = np.minimum(np.searchsorted(ukeys, d_key), max(len(ukeys) - 1, 0))
    hit = ukeys[pos] == d_key if len(ukeys) else np.zeros(len(d_key), bool)
    reps = np.where(hit, counts[pos] if len(ukeys) else 0, 0)
    first = np.where(hit, starts[pos] if len(ukeys) else 0, 0)
    csum = np.cumsum(reps)
    cuts = np.searchsorted(csum, np.arange(_PAIR_BLOCK, csum[-1] if len(csum) else 0, _PAIR_BLOCK))
    out = []
    for a, b in pairwise(np.unique(np.r_[0, cuts, len(reps)])):
        r = reps[a:b]
        pd = np.repeat(np.arange(a, b), r)
        pg = np.repeat(first[a:b] - np.cumsum(r) + r, r) + np.arange(len(pd))
        iou = _pair_iou(d_box[pd], g_box[pg], g_crowd[pg])
        keep = iou >= IOU_THRESHOLDS[0]
        out.append((pd[keep], pg[keep], iou[keep]))
    if not out:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0)
    pd, pg, iou = (np.concatenate(c) for c in zip(*out, strict=True))
    return pd, pg, iou


def _match(
    pd: np.ndarray,
    pg: np.ndarray,
    piou: np.ndarray,
    d_key: np.ndarray,
    n_det: int,
    g_ig: np.ndarray,
    g_crowd: np.ndarray,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching, for every (area range, IoU threshold) lane at once.

    Returns per detection and lane: matched?, and was the matched label ignored?
    """
    n_lanes = g_ig.shape[1]
    thr = np.tile(np.minimum(IOU_THRESHOLDS, 1 - 1e-10), len(AREA_RANGES))
    dt_match = np.zeros((n_det, n_lanes), bool)
    dt_gig = np.zeros((n_det, n_lanes), bool)
    if len(pd) == 0:
        return dt_match, dt_gig
    # Segments: the candidate pairs of one detection (pairs come in detection order).
    seg_start = np.flatnonzero(np.r_[True, pd[1:] != pd[:-1]])
    seg_det = pd[seg_start]
    seg_len = np.diff(np.r_[seg_start, len(pd)])
    # A detection's round: how many candidate detections of its (image, class) come before it.
    skey = d_key[seg_det]
    new_group = np.r_[True, skey[1:] != skey[:-1]]
    ordinal = np.arange(len(skey)) - np.flatnonzero(new_group)[np.cumsum(new_group) - 1]
    order = np.argsort(ordinal, kind="stable")
    lens = seg_len[order]
    ends = np.cumsum(lens)
    starts = ends - lens
    perm = np.repeat(seg_start[order] - starts, lens) + np.arange(len(pd))
    pg, piou, seg_det, ordinal = pg[perm], piou[perm], seg_det[order], ordinal[order]
    pseg = np.repeat(np.arange(len(order)), lens)
    ok_all = piou[:, None] >= thr[None, :]
    rounds = np.flatnonzero(np.r_[True, ordinal[1:] != ordinal[:-1]])
    bounds = np.r_[rounds, len(ordinal)]
    matched = np.zeros(g_ig.shape, bool)
    for r, (s0, s1) in enumerate(pairwise(bounds)):
        if cancel is not None and cancel():
            raise CancelledError()
        p0, p1 = starts[s0], ends[s1 - 1]
        g, iou, sid = pg[p0:p1], piou[p0:p1], pseg[p0:p1] - s0
        loc = starts[s0:s1] - p0
        ig = g_ig[g]
        avail = ok_all[p0:p1] & (~matched[g] | g_crowd[g, None])
        idx = np.arange(p1 - p0)[:, None]
        chosen = np.full((s1 - s0, n_lanes), -1)
        # As COCOeval: first the best non-ignored label, only then an ignored one; on equal
        # IoU the later label wins (its loop replaces the match when IoU >= the best so far).
        for mask in (avail & ~ig, avail & ig):
            key = np.where(mask, iou[:, None], -1.0)
            best = np.maximum.reduceat(key, loc, axis=0)
            pos = np.maximum.reduceat(np.where(mask & (key == best[sid]), idx, -1), loc, axis=0)
            chosen = np.where(chosen >= 0, chosen, pos)
        s, lane = np.nonzero(chosen >= 0)
        gi = g[chosen[s, lane]]
        matched[gi, lane] = True
        det = seg_det[s0 + s]
        dt_match[det, lane] = True
        dt_gig[det, lane] = g_ig[gi, lane]
        if progress is not None:
            progress(r + 1, len(bounds) - 1, "matching detections")
    return dt_match, dt_gig


def _evaluate_flat(
    n_img: int,
    cats: np.ndarray,
    gt: tuple[np.ndarray, ...],
    dt: tuple[np.ndarray, ...],
    conf: float,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> EvalResult:
    g_img, g_cls, g_box, g_crowd, g_area = gt
    d_img, d_cls, d_box, d_score = dt
    n_t, n_r, n_k = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(cats)
    n_a, n_m = len(AREA_RANGES), len(MAX_DETS)
    lo = np.array([a[0] for a in AREA_RANGES])
    hi = np.array([a[1] for a in AREA_RANGES])

    order, g_key, _ = _group_sort(g_cls * n_img + g_img, None)
    g_box, g_crowd, g_area, g_cls = g_box[order], g_crowd[order], g_area[order], g_cls[order]
    # As COCOeval: a label is ignored if crowd or outside the area range (inclusive bounds).
    g_ig_area = g_crowd[:, None] | (g_area[:, None] < lo) | (g_area[:, None] > hi)
    g_ig = np.repeat(g_ig_area, n_t, axis=1)
    npig = np.zeros((n_k, n_a), np.int64)
    np.add.at(npig, g_cls, ~g_ig_area)

    order, d_key, rank = _group_sort(d_cls * n_img + d_img, d_score)
    keep = rank < MAX_DETS[-1]
    order, d_key, rank = order[keep], d_key[keep], rank[keep]
    d_box, d_score, d_cls = d_box[order], d_score[order], d_cls[order]

    pd, pg, piou = _candidate_pairs(d_key, d_box, g_key, g_box, g_crowd)
    dt_match, dt_gig = _match(pd, pg, piou, d_key, len(d_key), g_ig, g_crowd, progress, cancel)
    d_area = d_box[:, 2] * d_box[:, 3]
    out = np.repeat((d_area[:, None] < lo) | (d_area[:, None] > hi), n_t, axis=1)
    dt_ig = np.where(dt_match, dt_gig, out)
    tp = dt_match & ~dt_ig
    fp = ~dt_match & ~dt_ig

    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    bounds = np.searchsorted(d_cls, np.arange(n_k + 1))
    counts = np.zeros((n_k, 3), np.int64)  # detections, tp, fp at conf (IoU .5, all, 100)
    for k in range(n_k):
        if cancel is not None and cancel():
            raise CancelledError()
        c0, c1 = bounds[k], bounds[k + 1]
        at_conf = d_score[c0:c1] >= conf
        counts[k] = (c1 - c0, (tp[c0:c1, 0] & at_conf).sum(), (fp[c0:c1, 0] & at_conf).sum())
        if npig[k].any():
            _accumulate_class(
                d_score[c0:c1],
                rank[c0:c1],
                tp[c0:c1],
                fp[c0:c1],
                npig[k],
                precision[:, :, k],
                recall[:, k],
            )
        if progress is not None:
            progress(k + 1, n_k, "accumulating")

    stats = tuple(_summarize(precision, recall, *s) for s in _STATS)
    per_class = []
    for k, cat in enumerate(cats):
        n_det, tp_k, fp_k = (int(v) for v in counts[k])
        n_gt = int(npig[k, 0])
        per_class.append(
            ClassMetrics(
                category_id=int(cat),
                ap=_mean_defined(precision[:, :, k, 0, -1]),
                ap50=_mean_defined(precision[0, :, k, 0, -1]),
                labels=n_gt,
                detections=n_det,
                tp=tp_k,
                fp=fp_k,
                fn=n_gt - tp_k,
                precision=_ratio(tp_k, tp_k + fp_k),
                recall=_ratio(tp_k, n_gt),
            )
        )
    tp_all, fp_all = int(counts[:, 1].sum()), int(counts[:, 2].sum())
    n_gt_all = int(npig[:, 0].sum())
    return EvalResult(
        stats=stats,
        per_class=tuple(per_class),
        conf=conf,
        tp=tp_all,
        fp=fp_all,
        fn=n_gt_all - tp_all,
        precision=_ratio(tp_all, tp_all + fp_all),
        recall=_ratio(tp_all, n_gt_all),
        images=n_img,
        coco_precision=precision,
        coco_recall=recall,
    )


def _accumulate_class(
    score: np.ndarray,
    rank: np.ndarray,
    tp: np.ndarray,
    fp: np.ndarray,
    npig: np.ndarray,
    precision: np.ndarray,
    recall: np.ndarray,
) -> None:
    """COCOeval.accumulate for one class: fills ``precision`` (T, R, A, M), ``recall`` (T, A, M).

    ``tp``/``fp`` are (detections, lanes) in (image, rank) order; lanes of an area range without
    labels stay -1.
    """
    n_t, n_r = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    lanes = np.flatnonzero(np.repeat(npig > 0, n_t))
    a_idx, t_idx = lanes // n_t, lanes % n_t
    # As COCOeval: a stable sort on score of the detections in (image, rank) order.
    by_score = np.argsort(-score, kind="mergesort")
    rank = rank[by_score]
    tp, fp = tp[by_score][:, lanes], fp[by_score][:, lanes]
    n_pos = npig[a_idx][:, None]
    for m, max_det in enumerate(MAX_DETS):
        sel = rank < max_det
        tpc = np.cumsum(tp[sel].T, axis=1).astype(float)
        fpc = np.cumsum(fp[sel].T, axis=1).astype(float)
        nd = tpc.shape[1]
        rc = tpc / n_pos
        pr = tpc / (fpc + tpc + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        recall[t_idx, a_idx, m] = rc[:, -1] if nd else 0.0
        q = np.zeros((len(lanes), n_r))
        for i in range(len(lanes)):
            at = np.searchsorted(rc[i], RECALL_THRESHOLDS, side="left")
            inside = at < nd
            q[i, inside] = pr[i, at[inside]]
        precision[t_idx, :, a_idx, m] = q


def _mean_defined(s: np.ndarray) -> float:
    """Mean of the defined (> -1) entries, -1 if none: COCOeval.summarize's rule."""
    s = s[s > -1]
    return float(np.mean(s)) if len(s) else -1.0


def _summarize(
    precision: np.ndarray, recall: np.ndarray, ap: bool, iou: float | None, a: int, m: int
) -> float:
    s = precision if ap else recall
    if iou is not None:
        s = s[np.where(iou == IOU_THRESHOLDS)[0]]
    s = s[:, :, :, [a], [m]] if ap else s[:, :, [a], [m]]
    return _mean_defined(s)


def _ratio(num: int, den: int) -> float:
    return num / den if den else -1.0
