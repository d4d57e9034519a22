"""COCO crowd regions and given areas: kept through import, versions, diff and export, and
evaluated as pycocotools does (crowd regions ignore the detections on them; small/medium/large
go by the given ``area``, not w*h)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli, write_image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeldesk.core.boxes import Box, annotation_set, object_boxes
from labeldesk.core.formats import ImportOptions, export_coco, export_yolo, import_coco
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.version_diff import diff
from labeldesk.core.store.versions import resolve
from labeldesk.core.validation import metrics

CATS = [{"id": 1, "name": "person"}, {"id": 4, "name": "car"}]
SIZE = (240, 180)


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def crowd_coco(
    root: Path, n: int = 14, seed: int = 0, crowd_rate: float = 0.18
) -> tuple[Path, dict]:
    """A COCO file as real ones are: crowd regions, and areas taken from a segmentation (so
    smaller than w*h, and some bboxes above 32² or 96² whose area falls below), plus a few
    areas exactly at the 32² and 96² boundaries and exactly w*h."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n):
        iid = 100 + 3 * i
        name = f"im{i:02d}.png"
        write_image(root / "images" / name, seed=500 + i, size=SIZE)
        images.append({"id": iid, "file_name": name, "width": SIZE[0], "height": SIZE[1]})
        for k in range(int(rng.integers(2, 7))):
            side = float(rng.choice([12, 30, 40, 70, 110, 150]))
            w = round(side * float(rng.uniform(0.7, 1.3)), 2)
            h = round(min(side * float(rng.uniform(0.7, 1.3)), SIZE[1] - 1), 2)
            w = min(w, SIZE[0] - 1)
            x = round(float(rng.uniform(0, SIZE[0] - w)), 2)
            y = round(float(rng.uniform(0, SIZE[1] - h)), 2)
            crowd = int(rng.random() < crowd_rate)
            kind = k % 5
            if kind == 0:
                area = round(w * h, 4)  # a bbox-only file: the default, not stored
            elif kind == 1:
                area = 1024.0 if w * h > 1024 else 9216.0  # on a boundary: both ranges
            else:
                area = w * h * float(rng.uniform(0.45, 0.95))  # a polygon's, full precision
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": iid,
                    "category_id": int(rng.choice([1, 4])),
                    "bbox": [x, y, w, h],
                    "area": area,
                    "iscrowd": crowd,
                    "segmentation": [[x, y, x + w, y, x + w, y + h]],
                }
            )
    data = {"images": images, "annotations": anns, "categories": CATS}
    return write_json(root / "annotations.json", data), data


def predictions(gt: dict, seed: int = 1) -> list[dict]:
    """Jittered labels (crowd regions too: detections on a crowd are ignored), missed labels,
    false positives and several detections on one crowd region."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        copies = 3 if a["iscrowd"] else 1
        for _ in range(copies):
            x, y, w, h = a["bbox"]
            s = 0.1 * max(w, h)
            box = [round(v + float(rng.normal(0, s)), 2) for v in (x, y)]
            box += [round(max(2.0, v * float(rng.uniform(0.8, 1.2))), 2) for v in (w, h)]
            out.append(_det(a["image_id"], a["category_id"], box, float(rng.random())))
    for im in gt["images"]:
        for _ in range(2):
            box = [float(rng.uniform(0, 150)), float(rng.uniform(0, 100)), 30.0, 25.0]
            out.append(_det(im["id"], int(rng.choice([1, 4])), box, float(rng.random() / 2)))
    return out


def _det(image_id: int, cls: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": cls, "bbox": bbox, "score": round(score, 6)}


def coco_stats(gt: dict, results: list[dict]) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        e = COCOeval(coco, coco.loadRes(results), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


def all_boxes(project: Project, ref: str = "main") -> list[Box]:
    store = ManifestStore(project.db)
    v = resolve(project.db, ref)
    return [
        b
        for _, e in store.entries(store.tree(v.tree))
        for b in load_annotation_set(project.db, e.annset)
    ]


def ann_key(a: dict) -> tuple:
    return (a["image_id"], a["category_id"], tuple(a["bbox"]), a["iscrowd"], float(a["area"]))


# -- evaluation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "crowd_rate"),
    [(0, 0.18), (1, 0.18), (2, 0.0)],
    ids=["crowd-and-areas", "crowd-and-areas-2", "areas-only"],
)
def test_validate_equals_pycocotools_with_crowd_regions_and_given_areas(
    capsys, project, tmp_path, seed, crowd_rate
) -> None:
    """``import coco`` then ``validate --predictions`` on a COCO file with crowd regions and
    segmentation areas gives pycocotools' 12 figures on that very file."""
    ann, gt = crowd_coco(tmp_path / "coco", seed=seed, crowd_rate=crowd_rate)
    results = predictions(gt, seed=seed + 7)
    preds = write_json(tmp_path / "preds.json", results)
    p = ["-p", str(project.root)]
    code, _, err = run_cli(capsys, *p, "import", "coco", str(ann))
    assert code == 0, err
    code, out, err = run_cli(capsys, *p, "validate", "--predictions", str(preds), "--json")
    assert code == 0, err
    (row,) = json.loads(out)["evaluations"]
    got = [row["metrics"]["summary"][k] for k in metrics.STAT_KEYS]
    want = coco_stats(gt, results)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)

    # The data has teeth: with w*h areas and no crowd regions pycocotools says otherwise.
    plain = {
        **gt,
        "annotations": [
            {**a, "area": a["bbox"][2] * a["bbox"][3], "iscrowd": 0} for a in gt["annotations"]
        ],
    }
    other = coco_stats(plain, results)
    assert np.abs(other - want).max() > 1e-3
    n_crowd = sum(a["iscrowd"] for a in gt["annotations"])
    assert n_crowd >= 3 if crowd_rate else n_crowd == 0


def test_engine_with_crowd_regions_matches_pycocotools_on_the_export(project, tmp_path) -> None:
    """The export is what evaluation judges: pycocotools on the exported file agrees too."""
    ann, gt = crowd_coco(tmp_path / "coco", n=10, seed=3)
    import_coco(project, [ann])
    out = tmp_path / "export"
    export_coco(project, out)
    exported = json.loads((out / "annotations.json").read_text())
    results = predictions(gt, seed=4)
    got = metrics.evaluate_coco(exported, results).stats
    np.testing.assert_allclose(got, coco_stats(exported, results), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, coco_stats(gt, results), atol=1e-6, rtol=0)


# -- import, versions, export --------------------------------------------------------------------


def test_coco_round_trip_keeps_iscrowd_and_area_exactly(project, tmp_path) -> None:
    ann, gt = crowd_coco(tmp_path / "coco", n=8)
    report = import_coco(project, [ann])
    n_crowd = sum(a["iscrowd"] for a in gt["annotations"])
    assert report.n_boxes == len(gt["annotations"]) - n_crowd  # crowd regions are not boxes
    assert f"{n_crowd} crowd regions (iscrowd 1) kept, not counted" in [
        n.reason for n in report.notes
    ]
    v = resolve(project.db, "main")
    assert v.n_boxes == report.n_boxes
    boxes = all_boxes(project)
    assert sum(b.crowd for b in boxes) == n_crowd
    assert len(object_boxes(boxes)) == report.n_boxes

    out = tmp_path / "export"
    exp = export_coco(project, out)
    assert exp.n_boxes == report.n_boxes
    assert f"{n_crowd} crowd regions written (iscrowd 1)" in [n.reason for n in exp.notes]
    exported = json.loads((out / "annotations.json").read_text())
    assert sorted(map(ann_key, exported["annotations"])) == sorted(map(ann_key, gt["annotations"]))

    # Re-importing the export gives the very same labels (same annotation sets, same tree).
    other = Project.init(tmp_path / "other", user="lead-user")
    try:
        import_coco(other, [out / "annotations.json"])
        assert resolve(other.db, "main").tree == v.tree
    finally:
        other.close()
    assert fsck(project).ok


def test_sets_without_crowd_or_given_area_keep_their_hashes() -> None:
    """Hashes (and so version ids) of existing projects do not change: the fields appear only
    when they are not the default; an area equal to w*h is the default."""
    boxes = [
        Box(3, 1.5, 2.25, 10, 8, state="imported"),
        Box(7, 20, 10.125, 30, 20.5, origin="model", state="accepted", score=0.9, model="m"),
    ]
    before = "bc7bf8ee8284c8c48c97a81f86d15fe1704cb99143b3f5bee8a3db148ef16892"  # pre-crowd code
    assert annotation_set(boxes)[0] == before
    assert annotation_set([boxes[0].with_(area=80), boxes[1]])[0] == before
    assert annotation_set([boxes[0].with_(area=80.0001), boxes[1]])[0] != before
    h, text, n = annotation_set([boxes[0].with_(crowd=True), boxes[1]])
    assert h != before and '"iscrowd":1' in text and n == 1


def test_area_is_forgotten_when_the_box_is_moved() -> None:
    b = Box(1, 10, 10, 40, 40, area=1000.5)
    assert b.coco_area == 1000.5
    assert b.with_(cls=2).area == 1000.5  # a re-class keeps the outline
    moved = b.with_(x=12)
    assert moved.area is None and moved.coco_area == 1600.0
    with pytest.raises(ValueError, match="area"):
        Box(1, 0, 0, 5, 5, area=-1)
    with pytest.raises(ValueError, match="area"):
        Box(1, 0, 0, 5, 5, area=float("nan"))


def test_diff_sees_a_crowd_flag_or_an_area_change(project, tmp_path) -> None:
    ann, gt = crowd_coco(tmp_path / "coco", n=3)
    import_coco(project, [ann])
    v1 = resolve(project.db, "main")
    changed = json.loads(json.dumps(gt))
    changed["annotations"][0]["iscrowd"] = 1 - changed["annotations"][0]["iscrowd"]
    changed["annotations"][1]["area"] = changed["annotations"][1]["area"] / 2
    import_coco(project, [write_json(tmp_path / "coco" / "changed.json", changed)], replace=True)
    d = diff(project, v1.id, "main")
    touched = {a["image_id"] for a in changed["annotations"][:2]}
    assert len(d.images) == len(touched)
    assert all(i.boxes_added >= 1 and i.boxes_removed >= 1 for i in d.images)


def test_skip_crowd_still_drops_them_with_a_note(project, tmp_path) -> None:
    ann, gt = crowd_coco(tmp_path / "coco", n=6)
    n_crowd = sum(a["iscrowd"] for a in gt["annotations"])
    report = import_coco(project, [ann], options=ImportOptions(skip_crowd=True))
    assert [n.reason for n in report.notes].count("crowd region (iscrowd 1) skipped") == n_crowd
    assert not any(b.crowd for b in all_boxes(project))
    assert report.n_boxes == len(gt["annotations"]) - n_crowd


def test_yolo_export_leaves_crowd_regions_out_with_a_note(project, tmp_path) -> None:
    ann, gt = crowd_coco(tmp_path / "coco", n=6)
    import_coco(project, [ann])
    n_crowd = sum(a["iscrowd"] for a in gt["annotations"])
    report = export_yolo(project, tmp_path / "yolo")
    assert report.n_boxes == len(gt["annotations"]) - n_crowd
    assert f"{n_crowd} crowd regions (iscrowd 1) left out: YOLO has none" in [
        n.reason for n in report.notes
    ]
    rows = [
        line
        for f in (tmp_path / "yolo" / "labels").rglob("*.txt")
        for line in f.read_text().splitlines()
    ]
    assert len(rows) == report.n_boxes


def test_bad_area_is_refused_and_nothing_is_stored(project, tmp_path) -> None:
    from helpers import snapshot

    from labeldesk.core.errors import InputError

    ann, gt = crowd_coco(tmp_path / "coco", n=3)
    gt["annotations"][0]["area"] = -5
    gt["annotations"][1]["area"] = "big"
    write_json(ann, gt)
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann])
    assert [p.where.rsplit(": ", 1)[1] for p in e.value.problems] == [
        "annotations[0] (id 1)",
        "annotations[1] (id 2)",
    ]
    assert all("area must be a finite number >= 0" in p.reason for p in e.value.problems)
    assert snapshot(project) == before


def test_drift_box_features_leave_crowd_regions_out(project, tmp_path) -> None:
    """A version that only adds crowd regions has the same box features as one without them."""
    from labeldesk.core.validation.drift import features

    ann, gt = crowd_coco(tmp_path / "coco", n=5)
    import_coco(project, [ann], options=ImportOptions(skip_crowd=True))
    without = features(project, resolve(project.db, "main"))
    import_coco(project, [ann], replace=True)
    v = resolve(project.db, "main")
    assert any(b.crowd for b in all_boxes(project))
    got = features(project, v)
    for name in ("classes", "boxes_per_image", "box_size", "box_aspect"):
        assert getattr(got, name) == getattr(without, name), name
