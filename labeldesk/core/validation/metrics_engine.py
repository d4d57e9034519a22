"""The counting behind :mod:`.metrics`: COCOeval's matching and accumulation on flat arrays.

Split out of :mod:`.metrics` (which re-exports the parameters and result types, and documents
the rules this module keeps "as COCOeval"). Everything here works on columns with images and
classes already turned into positions: no per-image Python objects, so its time is the metric
engine's own (``bench/eval.py`` times it inside ``labeldesk validate``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ..errors import CancelledError
from ..progress import CancelFn, ProgressFn

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
_PAIR_BLOCK = 1 << 21  # (detection, label) pairs made at once: ~100 MiB


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
