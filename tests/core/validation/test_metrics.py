"""The evaluation engine against real pycocotools, on generated sets built to hit the edge cases.

Each set is random boxes with controlled jitter (so matches happen at every IoU), on a half-pixel
grid (so IoUs land exactly on thresholds and labels tie), with images without labels, images
without predictions, classes that never occur, score ties, more than 100 detections on an image,
tiny/medium/large boxes including the 32² and 96² area boundaries, and crowd regions.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeldesk.core.errors import CancelledError, InputError
from labeldesk.core.validation import metrics, metrics_engine
from labeldesk.core.validation.metrics import (
    STAT_KEYS,
    Detection,
    GroundTruth,
    evaluate,
    evaluate_coco,
    from_coco,
)

CATEGORIES = [1, 2, 3, 5, 8, 13, 21]  # 13: only in detections; 21: never occurs
LABELLED = [1, 2, 3, 5, 8]


def _box(rng: np.random.Generator, w_img: float, h_img: float) -> list[float]:
    """A box on a half-pixel grid; sizes from 2 px to 300 px, some exactly 32² or 96²."""
    u = rng.random()
    if u < 0.05:
        w = h = 32.0
    elif u < 0.1:
        w = h = 96.0
    else:
        w = float(np.round(np.exp(rng.uniform(np.log(2), np.log(300))) * 2) / 2)
        h = float(np.clip(np.round(w * np.exp(rng.normal(0, 0.4)) * 2) / 2, 1, 400))
    x = float(np.round(rng.uniform(0, max(w_img - w, 1)) * 2) / 2)
    y = float(np.round(rng.uniform(0, max(h_img - h, 1)) * 2) / 2)
    return [x, y, w, h]


def _jitter(rng: np.random.Generator, box: list[float]) -> list[float]:
    """A detection of ``box``, off by up to ~35%: IoUs from ~1 down to well below .5."""
    x, y, w, h = box
    s = rng.uniform(0, 0.35)
    return [
        float(np.round((x + rng.normal(0, s * w)) * 2) / 2),
        float(np.round((y + rng.normal(0, s * h)) * 2) / 2),
        float(max(0.5, np.round(w * np.exp(rng.normal(0, s)) * 2) / 2)),
        float(max(0.5, np.round(h * np.exp(rng.normal(0, s)) * 2) / 2)),
    ]


def make_set(
    seed: int, n_images: int = 60, crowd: float = 0.0, decimals: int = 2
) -> tuple[dict, list[dict]]:
    """A COCO ground-truth dict and results list (the form pycocotools takes)."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(n_images):
        image_id = 3 * i + 7  # ids not in 0..n, not contiguous
        images.append({"id": image_id, "width": 640, "height": 480, "file_name": f"{i}.jpg"})
        n_gt = 0 if i % 9 == 4 else int(rng.poisson(5))  # some images have no labels
        gts = []
        for _ in range(n_gt):
            box = _box(rng, 640, 480)
            cat = int(rng.choice(LABELLED, p=[0.4, 0.3, 0.15, 0.1, 0.05]))
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": cat,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": int(rng.random() < crowd),
            }
            anns.append(ann)
            gts.append(ann)
            if rng.random() < 0.05:  # an identical duplicate label: equal IoUs, tie-break
                anns.append({**ann, "id": len(anns) + 1})
        dets = []
        for ann in gts:
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
                cat = ann["category_id"] if rng.random() < 0.9 else int(rng.choice(CATEGORIES))
                dets.append((cat, _jitter(rng, ann["bbox"])))
        for _ in range(rng.poisson(2)):  # false positives, some of a class nobody labels
            dets.append((int(rng.choice([*LABELLED, 13, 99])), _box(rng, 640, 480)))
        if i % 7 == 3:
            dets = []  # an image without predictions
        if i == 5 and gts:  # far more than 100 detections of one class on one image
            x, y, w, h = gts[0]["bbox"]
            for _ in range(150):
                dets.append((gts[0]["category_id"], [x + float(rng.integers(-3, 4)), y, w, h]))
        for cat, box in dets:
            score = float(np.round(rng.random(), decimals))  # few decimals: many exact ties
            results.append({"image_id": image_id, "category_id": cat, "bbox": box, "score": score})
    if n_images > 2:
        # Hand-made: IoU exactly .5 and exactly .75 (exact in binary floating point too); then a
        # detection with equal IoU to two labels (COCO gives it the later one), followed by one
        # that fits the earlier label exactly, so the tie-break decides a later match.
        img = images[1]["id"]
        for g, d, score in (
            ([0, 0, 20, 10], [0, 0, 10, 10], 0.5),
            ([0, 40, 40, 10], [0, 40, 30, 10], 0.6),
            ([300, 100, 40, 40], [305, 100, 40, 40], 0.9),
            ([310, 100, 40, 40], [300, 100, 40, 40], 0.8),
        ):
            ann = {"id": len(anns) + 1, "image_id": img, "category_id": 2, "bbox": g}
            anns.append({**ann, "area": g[2] * g[3], "iscrowd": 0})
            results.append({"image_id": img, "category_id": 2, "bbox": d, "score": score})
    # A label on an image the set does not list: left out, by pycocotools and by us.
    anns.append({"id": len(anns) + 1, "image_id": 99999, "category_id": 1, "bbox": [0, 0, 9, 9]})
    anns[-1].update(area=81, iscrowd=0)
    # Shuffled, so that nothing can lean on images or boxes coming in id order.
    images, anns, results = (
        [x[i] for i in rng.permutation(len(x))] for x in (images, anns, results)
    )
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in CATEGORIES],
    }
    return gt, results


def coco_reference(gt: dict, results: list[dict]) -> COCOeval:
    """COCOeval run the usual way; its printing is swallowed (it has no quiet switch)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes edits the dicts
        e = COCOeval(coco_gt, coco_dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def as_arrays(gt: dict, results: list[dict]) -> tuple[list[GroundTruth], list[Detection]]:
    """The same data as LabelDesk holds it: one array per image, no COCO dicts."""
    gts, dts = [], []
    for img in gt["images"]:
        a = [x for x in gt["annotations"] if x["image_id"] == img["id"]]
        gts.append(
            GroundTruth(
                img["id"],
                np.array([x["bbox"] for x in a], float).reshape(-1, 4),
                np.array([x["category_id"] for x in a], int),
                iscrowd=np.array([x["iscrowd"] for x in a], bool),
            )
        )
        r = [x for x in results if x["image_id"] == img["id"]]
        if r:
            dts.append(
                Detection(
                    img["id"],
                    np.array([x["bbox"] for x in r], float),
                    np.array([x["category_id"] for x in r]),
                    np.array([x["score"] for x in r]),
                )
            )
    return gts, dts


def per_class_ap(precision: np.ndarray, k: int) -> tuple[float, float]:
    """Per-class AP and AP50 from COCOeval's precision table (all areas, 100 detections)."""
    out = []
    for s in (precision[:, :, k, 0, -1], precision[0, :, k, 0, -1]):
        s = s[s > -1]
        out.append(float(np.mean(s)) if len(s) else -1.0)
    return out[0], out[1]


SETS = [
    pytest.param(dict(seed=1), id="plain"),
    pytest.param(dict(seed=2, n_images=120), id="larger"),
    pytest.param(dict(seed=3, crowd=0.1), id="crowd"),
    pytest.param(dict(seed=4, decimals=1), id="many-ties"),
    pytest.param(dict(seed=5, n_images=25, crowd=0.3, decimals=0), id="crowd-and-all-ties"),
    pytest.param(dict(seed=6, n_images=3), id="tiny"),
]


@pytest.mark.parametrize("params", SETS)
def test_figures_equal_pycocotools(params: dict) -> None:
    gt, results = make_set(**params)
    ref = coco_reference(gt, results)
    ours = evaluate_coco(gt, results)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.coco_precision, ref.eval["precision"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.coco_recall, ref.eval["recall"], rtol=0, atol=1e-6)
    assert [c.category_id for c in ours.per_class] == CATEGORIES
    for k, c in enumerate(ours.per_class):
        assert (c.ap, c.ap50) == pytest.approx(per_class_ap(ref.eval["precision"], k), abs=1e-6)
    by_id = {c.category_id: c for c in ours.per_class}
    assert by_id[21].ap == by_id[21].ap50 == -1  # never occurs
    assert by_id[13].ap == -1 and by_id[13].labels == 0  # only predicted: undefined, not 0


def test_iou_is_bitwise_the_c_code_of_pycocotools() -> None:
    """Same operations in the same order: equal to the last bit, crowd regions included."""
    rng = np.random.default_rng(0)
    d, g = rng.uniform(0, 60, (300, 4)), rng.uniform(0, 60, (200, 4))
    crowd = rng.random(len(g)) < 0.3
    ref = coco_mask.iou(d, g, crowd.astype(np.uint8))
    pairs = np.repeat(d, len(g), 0), np.tile(g, (len(d), 1)), np.tile(crowd, len(d))
    ours = metrics._pair_iou(*pairs).reshape(len(d), len(g))
    assert np.array_equal(ours, ref)


def test_dense_images_in_small_pair_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crowded images (60 labels, 100+ detections of one class), pairs made 997 at a time."""
    monkeypatch.setattr(metrics_engine, "_PAIR_BLOCK", 997)  # the engine moved there
    rng = np.random.default_rng(11)
    anns, results = [], []
    for image_id in range(1, 5):
        for _ in range(60):
            box, cat = _box(rng, 400, 300), int(rng.choice([1, 2], p=[0.85, 0.15]))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat})
            anns[-1].update(bbox=box, area=box[2] * box[3], iscrowd=0)
            for _ in range(2):
                results.append(
                    {"image_id": image_id, "category_id": cat, "bbox": _jitter(rng, box)}
                )
                results[-1]["score"] = float(np.round(rng.random(), 2))
    gt = {
        "images": [{"id": i} for i in range(1, 5)],
        "annotations": anns,
        "categories": [{"id": 1}, {"id": 2}],
    }
    ref = coco_reference(gt, results)
    ours = evaluate_coco(gt, results)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.coco_precision, ref.eval["precision"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("params", SETS[:3])
def test_arrays_and_coco_dicts_give_the_same_result(params: dict) -> None:
    gt, results = make_set(**params)
    from_dicts = evaluate_coco(gt, results, conf=0.3)
    gts, dts = as_arrays(gt, results)
    from_arrays = evaluate(gts, dts, category_ids=CATEGORIES, conf=0.3)
    assert from_arrays.stats == from_dicts.stats
    assert from_arrays.to_dict() == from_dicts.to_dict()
    assert json.loads(json.dumps(from_dicts.to_dict())) == from_dicts.to_dict()  # storable


@pytest.mark.parametrize("conf", [0.0, 0.37, 0.5, 0.99])
def test_counts_at_confidence_follow_coco_matching(conf: float) -> None:
    """TP/FP/FN at IoU .5 from pycocotools' own per-image matches (all areas, 100 dets)."""
    gt, results = make_set(seed=3, crowd=0.1)
    ref = coco_reference(gt, results)
    ours = evaluate_coco(gt, results, conf=conf)
    counts = {c: [0, 0, 0] for c in CATEGORIES}  # tp, fp, labels
    for e in ref.evalImgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        scores = np.array(e["dtScores"])
        matched, ignored = e["dtMatches"][0] > 0, e["dtIgnore"][0] > 0
        counts[e["category_id"]][0] += int((matched & ~ignored & (scores >= conf)).sum())
        counts[e["category_id"]][1] += int((~matched & ~ignored & (scores >= conf)).sum())
        counts[e["category_id"]][2] += int((e["gtIgnore"] == 0).sum())
    for c in ours.per_class:
        tp, fp, labels = counts[c.category_id]
        assert (c.tp, c.fp, c.fn, c.labels) == (tp, fp, labels - tp, labels)
        assert c.precision == (tp / (tp + fp) if tp + fp else -1)
        assert c.recall == (tp / labels if labels else -1)
    tp, fp, labels = (sum(v[i] for v in counts.values()) for i in range(3))
    assert (ours.tp, ours.fp, ours.fn) == (tp, fp, labels - tp)
    assert ours.precision == pytest.approx(tp / (tp + fp) if tp + fp else -1)
    assert ours.recall == pytest.approx(tp / labels)


def test_perfect_predictions_score_one_where_defined() -> None:
    boxes = np.array([[10, 10, 20, 20], [100, 100, 150, 100], [0, 0, 200, 150]], float)
    gts = [GroundTruth("a.jpg", boxes, [0, 1, 1]), GroundTruth("b.jpg", np.zeros((0, 4)), [])]
    dts = [Detection("a.jpg", boxes, [0, 1, 1], [0.9, 0.8, 0.7])]
    r = evaluate(gts, dts, category_ids=[0, 1, 2])
    # Precision is tp / (tp + fp + eps) in COCO, so "1" is 1 - 2e-16 there and here.
    assert r.summary["map50_95"] == pytest.approx(1.0) and r.summary["mar100"] == 1.0
    assert r.stats[STAT_KEYS.index("map_medium")] == -1  # no medium label: undefined
    assert [c.ap for c in r.per_class] == pytest.approx([1.0, 1.0, -1.0])
    assert (r.tp, r.fp, r.fn, r.precision, r.recall) == (3, 0, 0, 1.0, 1.0)


def test_subset_of_images_leaves_the_rest_out() -> None:
    gt, results = make_set(seed=1)
    keep = [img["id"] for img in gt["images"][::2]]
    sub_gt = {
        **gt,
        "images": [i for i in gt["images"] if i["id"] in keep],
        "annotations": [a for a in gt["annotations"] if a["image_id"] in keep],
    }
    sub_results = [r for r in results if r["image_id"] in keep]
    data = from_coco(gt, results)
    ours = evaluate(data.ground_truth, data.detections, category_ids=CATEGORIES, image_ids=keep)
    assert ours.images == len(keep)
    np.testing.assert_allclose(ours.stats, coco_reference(sub_gt, sub_results).stats, atol=1e-6)


def test_no_detections_at_all() -> None:
    gt, _ = make_set(seed=1, n_images=10)
    r = evaluate_coco(gt, [])
    assert r.stats == tuple(0.0 for _ in range(12))  # labels exist, nothing found
    assert r.tp == r.fp == 0 and r.fn > 0 and r.precision == -1 and r.recall == 0


def test_bad_coco_input_is_itemised() -> None:
    gt, results = make_set(seed=1, n_images=5)
    results = [
        *results,
        {"image_id": 123456, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, -1, 1], "score": 0.5},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": float("nan")},
    ]
    with pytest.raises(InputError) as err:
        evaluate_coco(gt, results)
    assert len(err.value.problems) == 4
    assert "123456" in str(err.value) and "missing score" in str(err.value)


def test_detections_on_unknown_images_are_an_error() -> None:
    gts = [GroundTruth(1, [[0, 0, 10, 10]], [0])]
    with pytest.raises(InputError, match="image 2"):
        evaluate(gts, [Detection(2, [[0, 0, 10, 10]], [0], [0.5])])


def test_cancel_and_progress() -> None:
    gt, results = make_set(seed=1, n_images=10)
    seen: list[tuple[int, int, str]] = []
    evaluate_coco(gt, results, progress=lambda d, t, w: seen.append((d, t, w)))
    assert seen and seen[-1][0] == seen[-1][1]
    with pytest.raises(CancelledError):
        evaluate_coco(gt, results, cancel=lambda: True)


def test_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, labeldesk.core.validation.metrics; "
        "print(sorted(m for m in ('PySide6', 'torch', 'ultralytics', 'pycocotools') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
