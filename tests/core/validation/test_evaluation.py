"""Evaluating detections on versions: figures equal to pycocotools on the version's own COCO
export, subsets, lineage, the baseline gate, and itemised errors for bad input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import snapshot, write_image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeldesk.core.boxes import Box
from labeldesk.core.errors import InputError, LabelDeskError
from labeldesk.core.formats import export_coco, import_coco
from labeldesk.core.store.importer import Staging
from labeldesk.core.store.manifest import Entry
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.validation import evaluation as ev

CLASSES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 5, "name": "never"}]
W, H = 160, 120


def _box(rng: np.random.Generator) -> tuple[float, ...]:
    w = float(np.round(rng.uniform(6, 70) * 2) / 2)
    h = float(np.round(rng.uniform(6, 60) * 2) / 2)
    x = float(np.round(rng.uniform(0, W - w) * 2) / 2)
    y = float(np.round(rng.uniform(0, H - h) * 2) / 2)
    return x, y, w, h


def build(project, tmp_path: Path, n: int = 16, seed: int = 0) -> dict[str, str]:
    """A version of ``n`` images with splits, a tag, boxes of classes 1 and 2 (5 never occurs),
    images without labels and one box reaching out of its image. Returns file name -> sha."""
    rng = np.random.default_rng(seed)
    paths = [
        write_image(tmp_path / "src" / f"img{i:02d}.png", seed=i, size=(W, H)) for i in range(n)
    ]
    with Staging(project) as st:
        staged = st.stage_files(paths)
        entries, annsets = {}, {}
        for k, (_, sha, _) in enumerate(staged):
            entries[sha] = Entry(
                "", ("train", "val", "test", None)[k % 4], ("night",) * (k % 3 == 0)
            )
            count = 0 if k % 5 == 2 else int(rng.integers(1, 7))
            annsets[sha] = [Box(int(rng.choice([1, 2])), *_box(rng)) for _ in range(count)]
        annsets[staged[0][1]].append(Box(1, W - 10, 5, 20, 30))  # reaches outside: clipped
        st.commit(
            entries=entries,
            annsets=annsets,
            classes=CLASSES,
            message="labelled",
            provenance={},
        )
    return {p.name: sha for p, sha, _ in staged}


def detections(project, index: ev.ImageIndex, seed: int = 1, miss: float = 0.2) -> list[dict]:
    """COCO results: jittered labels (some missed, some re-classed), false positives, score
    ties, and images with no detections."""
    rng = np.random.default_rng(seed)
    gt = ev.ground_truth(project, index)
    out = []
    for k, sha in enumerate(index.shas):
        if k % 7 == 3:
            continue
        boxes, classes, *_ = gt[sha]
        for b, c in zip(boxes, classes, strict=True):
            if rng.random() < miss:
                continue
            s = 0.08 * max(b[2], b[3])
            j = [float(np.round((v + rng.normal(0, s)) * 2) / 2) for v in b]
            j[2], j[3] = max(j[2], 1.0), max(j[3], 1.0)
            cls = int(c) if rng.random() > 0.1 else 3 - int(c)
            out.append(_det(index.coco_ids[sha], cls, j, float(np.round(rng.random(), 2))))
        for _ in range(int(rng.integers(0, 3))):
            out.append(_det(index.coco_ids[sha], 1, list(_box(rng)), float(rng.random() / 2)))
    return out


def _det(image_id, cls: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": cls, "bbox": bbox, "score": score}


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


def coco_stats(gt: dict, results: list[dict], img_ids: list[int] | None = None) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        e = COCOeval(coco, coco.loadRes(results), "bbox")
        if img_ids is not None:
            e.params.imgIds = sorted(img_ids)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


def exported_gt(project, tmp_path: Path) -> dict[str, dict]:
    """The version's COCO export, per split file and merged (key "all")."""
    out_dir = tmp_path / "export"
    export_coco(project, out_dir)
    files = {
        p.stem.removeprefix("instances_"): json.loads(p.read_text())
        for p in sorted((out_dir / "annotations").glob("*.json"))
    }
    merged = {
        "images": [],
        "annotations": [],
        "categories": next(iter(files.values()))["categories"],
    }
    for d in files.values():
        merged["images"] += d["images"]
        merged["annotations"] += d["annotations"]
    return {**files, "all": merged}


@pytest.fixture
def setup(project, tmp_path):
    names = build(project, tmp_path)
    index = ev.ImageIndex.build(project, "main")
    results = detections(project, index)
    return names, index, results, write_json(tmp_path / "preds.json", results)


def source(path):
    return lambda index: ev.predictions_source(path, index)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figures_equal_pycocotools_on_the_export_for_all_slices(project, tmp_path, seed) -> None:
    build(project, tmp_path, n=14 + 3 * seed, seed=seed)
    index = ev.ImageIndex.build(project, "main")
    results = detections(project, index, seed=seed + 10)
    preds = write_json(tmp_path / "preds.json", results)
    report = ev.validate(project, source(preds), by_split=True, by_tag=True)
    rows = {r.subset: r for r in report.rows}
    assert list(rows) == [
        "all",
        "split=train",
        "split=val",
        "split=test",
        "split=none",
        "tag=night",
    ]
    gt = exported_gt(project, tmp_path)
    for subset, gt_dict in (
        ("all", gt["all"]),
        ("split=val", gt["val"]),
        ("split=none", gt["unassigned"]),
    ):
        ids = {im["id"] for im in gt_dict["images"]}
        want = coco_stats(gt_dict, [r for r in results if r["image_id"] in ids])
        got = [rows[subset].summary[k] for k in ev.metrics.STAT_KEYS]
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
        assert rows[subset].n_images == len(ids)
    night = [index.coco_ids[s] for s in index.shas if "night" in index.entries[s].tags]
    want = coco_stats(gt["all"], results, img_ids=night)
    got = [rows["tag=night"].summary[k] for k in ev.metrics.STAT_KEYS]
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    # the never-labelled class is undefined, not zero
    never = next(c for c in rows["all"].metrics["per_class"] if c["category_id"] == 5)
    assert never["ap"] == -1 and never["name"] == "never"
    assert 0 < rows["all"].value < 1


def test_file_names_identify_images_as_well_as_ids(project, tmp_path, setup) -> None:
    _, index, results, preds = setup
    by_id = {i: sha for sha, i in index.coco_ids.items()}
    named = []
    for k, r in enumerate(results):
        name = index.names[by_id[r["image_id"]]]
        named.append(
            {**r, "image_id": name}
            if k % 2
            else {k2: v for k2, v in r.items() if k2 != "image_id"} | {"file_name": name}
        )
    other = write_json(tmp_path / "named.json", named)
    a = ev.validate(project, source(preds)).rows[0]
    b = ev.validate(project, source(other)).rows[0]
    assert a.metrics == b.metrics
    assert a.source_hash != b.source_hash
    # the path an image was imported from is an alias; a name shared by two images is refused
    src = str((tmp_path / "src" / "img03.png").absolute())
    row = ev.validate(
        project, source(write_json(tmp_path / "p.json", [_det(src, 1, [1, 1, 5, 5], 1)]))
    )
    assert row.rows[0].metrics["fp"] == 1
    index.aliases["dup.png"] = None
    with pytest.raises(InputError, match="names several images"):
        ev.detections_from_results(index, [_det("dup.png", 1, [1, 1, 5, 5], 1)])


def test_coco_imported_images_keep_their_ids(project, tmp_path) -> None:
    root = tmp_path / "coco"
    write_image(root / "images" / "a.png", seed=1)
    write_image(root / "images" / "b.png", seed=2)
    data = {
        "images": [
            {"id": 40, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 7, "file_name": "b.png", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 40, "category_id": 3, "bbox": [2, 3, 20, 10], "area": 200},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [5, 5, 30, 30], "area": 900},
        ],
        "categories": [{"id": 3, "name": "thing"}],
    }
    ann = write_json(root / "instances_val.json", data)
    import_coco(project, [ann], root / "images")
    preds = write_json(tmp_path / "p.json", [_det(40, 3, [2, 3, 20, 10], 0.9)])
    row = ev.validate(project, source(preds)).rows[0]
    assert (row.metrics["tp"], row.metrics["fn"], row.metrics["fp"]) == (1, 1, 0)


def test_every_evaluation_is_stored_with_its_lineage(project, tmp_path, setup) -> None:
    _, index, _, preds = setup
    report = ev.validate(project, source(preds), conf=0.5, by_split=True)
    stored = ev.list_evaluations(project, run=report.run)
    assert [r.id for r in stored] == [r.id for r in report.rows]
    row = stored[0]
    assert row.version == index.version.id
    assert (row.role, row.subset, row.source_kind) == ("candidate", "all", "predictions")
    assert row.source_hash == hashlib.sha256(preds.read_bytes()).hexdigest()
    assert row.source_name == str(preds)
    assert row.params["conf"] == 0.5 and row.params["categories"] == [1, 2, 5]
    assert row.params["iou_thresholds"][0] == 0.5 and row.params["max_dets"] == [1, 10, 100]
    assert row.author == project.user and row.created
    assert set(row.metrics["summary"]) == set(ev.metrics.STAT_KEYS)
    assert {"tp", "fp", "fn", "precision", "recall", "per_class"} <= set(row.metrics)
    assert row.baseline is None and row.passed is None
    with pytest.raises(sqlite3.IntegrityError, match="never changes"):
        project.db.execute("UPDATE evaluation SET value = 1 WHERE id = ?", [row.id])


def test_gate_fails_on_a_drop_beyond_the_limit_and_passes_within(project, tmp_path, setup):
    _, index, results, preds = setup
    worse = write_json(tmp_path / "worse.json", detections(project, index, seed=1, miss=0.6))
    # new predictions are worse than the baseline ones: fail
    report = ev.validate(project, source(worse), baseline_source=source(preds), max_drop=0.02)
    row = report.rows[0]
    base = report.baseline_rows[0]
    assert base.role == "baseline" and row.baseline == base.id
    assert base.source_hash == hashlib.sha256(preds.read_bytes()).hexdigest()
    assert row.metric_drop == pytest.approx(base.value - row.value)
    assert row.metric_drop > 0.02 and row.passed is False and not report.passed
    assert "FAIL map50_95 on all" in report.verdict()
    assert f"a drop of {row.metric_drop:.4f} > 0.0200" in report.verdict()
    # the same comparison with a generous limit passes; and the other way round improves
    assert ev.validate(project, source(worse), baseline_source=source(preds), max_drop=1).passed
    better = ev.validate(project, source(preds), baseline_source=source(worse), metric="map50")
    assert better.passed and better.rows[0].metric_drop < 0
    assert better.rows[0].metric == "map50"


def test_baseline_ref_judges_the_same_file_on_an_earlier_version(project, tmp_path, setup):
    names, index, _, preds = setup
    v1 = index.version
    s = ReviewSession.start(project)
    changed = [names["img01.png"], names["img04.png"], names["img05.png"]]
    for sha in changed:
        s.set_boxes(sha, [Box(2, 1, 1, 30, 30)])
    v2 = s.commit("relabel three images")
    report = ev.validate(project, source(preds), baseline_ref=v1.id, max_drop=0.0)
    assert report.baseline_version.id == v1.id and report.version.id == v2.id
    base, row = report.baseline_rows[0], report.rows[0]
    assert (base.version, row.version) == (v1.id, v2.id)
    assert base.params["image_ids_of"] == v2.id
    alone = ev.validate(project, source(preds), ref=v1.id).rows[0]
    assert base.value == alone.value
    assert row.value < base.value and row.passed is False

    sub = ev.validate(project, source(preds), changed_since=v1.id, by_split=True)
    assert sub.rows[0].subset == f"changed-since={v1.id}"
    assert sub.rows[0].n_images == 3
    assert sub.rows[0].params["changed_since"] == v1.id
    assert all(r.subset.startswith(f"changed-since={v1.id},split=") for r in sub.rows[1:])
    # stored with the full id (lineage), shown with the short one
    assert [r.subset_label for r in sub.rows] == [
        r.subset.replace(v1.id, v1.id[:12]) for r in sub.rows
    ]
    assert sub.rows[1].subset_label.startswith(f"changed-since={v1.id[:12]},split=")
    assert sum(r.n_images for r in sub.rows[1:]) == 3


def test_bad_input_is_itemised_and_nothing_is_stored(project, tmp_path, setup) -> None:
    _, index, _, _ = setup
    before = snapshot(project)
    first = index.coco_ids[index.shas[0]]
    bad = [
        _det(first, 1, [1, 2, 3, 4], 0.5),  # fine
        _det(99999, 1, [1, 2, 3, 4], 0.5),
        _det("nope.png", 1, [1, 2, 3, 4], 0.5),
        _det(first, 9, [1, 2, 3, 4], 0.5),
        _det(first, 1, [1, 2, -3, 4], 0.5),
        _det(first, 1, [1, 2, 3], 0.5),
        _det(first, 1, [1, 2, 3, 4], None),
        {"image_id": first, "bbox": [1, 2, 3, 4]},
        "junk",
    ]
    with pytest.raises(InputError) as e:
        ev.validate(project, source(write_json(tmp_path / "bad.json", bad)))
    reasons = [str(p) for p in e.value.problems]
    assert len(reasons) == 8
    assert "8 of 9 detections" in e.value.summary
    assert "image_id 99999 is not an image of this version" in reasons[0]
    assert "no image of this version is named 'nope.png'" in reasons[1]
    assert "category_id 9 is not a class" in reasons[2]
    assert "bbox must be" in reasons[3] and "bbox must be" in reasons[4]
    assert "score must be a finite number" in reasons[5]
    assert "missing category_id, score" in reasons[6]
    assert reasons[7].endswith("[8]: not an object")
    (tmp_path / "broken.json").write_text('[{"image_id": 1,\n  oops]')
    with pytest.raises(InputError, match="not a COCO results file") as e:
        ev.validate(project, source(tmp_path / "broken.json"))
    assert "broken.json:2:3: malformed JSON" in str(e.value.problems[0])
    write_json(tmp_path / "dict.json", {"annotations": []})
    with pytest.raises(InputError, match="not a COCO results file"):
        ev.validate(project, source(tmp_path / "dict.json"))
    with pytest.raises(InputError, match="cannot read"):
        ev.validate(project, source(tmp_path / "missing.json"))
    with pytest.raises(InputError) as e:
        ev.validate(project, source(tmp_path / "dict.json"), metric="nope", max_drop=-1, conf=2)
    assert [p.where for p in e.value.problems] == ["--metric", "--max-drop", "--conf"]
    with pytest.raises(LabelDeskError, match="one baseline"):
        ev.validate(
            project,
            source(tmp_path / "x"),
            baseline_ref="main",
            baseline_source=source(tmp_path / "y"),
        )
    assert snapshot(project) == before


def _odd_boxes() -> list[Box]:
    """Boxes with every optional field a canonical set can hold, and text that looks like keys."""
    return [
        Box(1, 3, 4, 20.25, 10.5),
        Box(2, 10, 10, 30, 20, area=123.456789),  # a segmentation's area, kept exactly
        Box(1, 0, 0, 50, 40, crowd=True),
        Box(2, 5, 6, 7, 8, origin="model", state="accepted", score=0.875, model="m1"),
        Box(1, 8, 9, 10, 11, author='ann "class":1,"x":2 }{'),
        Box(2, W - 10.25, 100, 20, 30),  # reaches outside: clipped, area of the clipped box
    ]


def test_ground_truth_is_the_coco_export_box_for_box(project, tmp_path) -> None:
    paths = [write_image(tmp_path / "src" / f"o{i}.png", seed=i, size=(W, H)) for i in range(3)]
    with Staging(project) as st:
        staged = st.stage_files(paths)
        boxes = _odd_boxes()
        st.commit(
            entries={sha: Entry("") for _, sha, _ in staged},
            annsets={sha: boxes[k::2] for k, (_, sha, _) in enumerate(staged[:2])}
            | {staged[2][1]: []},
            classes=CLASSES,
            message="odd boxes",
            provenance={},
        )
    index = ev.ImageIndex.build(project, "main")
    gt = ev.ground_truth(project, index)
    exported: dict[int, list[tuple]] = {}
    export_coco(project, tmp_path / "export")  # no splits: one annotations.json
    for a in json.loads((tmp_path / "export" / "annotations.json").read_text())["annotations"]:
        exported.setdefault(a["image_id"], []).append(
            (a["category_id"], a["bbox"], a["area"], a["iscrowd"])
        )
    for sha in index.shas:
        boxes, classes, areas, crowd = gt[sha]
        ours = [
            (int(c), b.tolist(), float(a), int(k))
            for b, c, a, k in zip(boxes, classes, areas, crowd, strict=True)
        ]
        assert ours == exported.get(index.coco_ids[sha], [])
    assert sum(len(g[1]) for g in gt.values()) == 6


def test_set_texts_the_pattern_does_not_know_are_read_as_json() -> None:
    from labeldesk.core.canonical import canonical_json
    from labeldesk.core.validation.evaluation_index import _set_columns

    dicts = [b.to_dict() for b in _odd_boxes()]
    dicts.append({**Box(1, 1, 2, 3, 4, state="rejected", origin="model").to_dict(), "score": 0.1})
    plain = [canonical_json(dicts[:3]), canonical_json(dicts[3:])]
    unknown = [
        canonical_json(dicts[:3]),
        canonical_json([*dicts[3:5], {**dicts[5], "zz": 1}, dicts[6]]),
    ]
    a, b = _set_columns(plain), _set_columns(unknown)  # the pattern, then json for all of it
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.live.tolist() == [True] * 6 + [False]
    assert a.crowd.tolist() == [False, False, True, False, False, False, False]


def test_plain_results_read_column_wise_as_entry_by_entry(project, tmp_path, setup) -> None:
    from labeldesk.core.validation import evaluation_sources as es

    _, index, results, _ = setup
    fast = es._columns(index, results)
    assert fast is not None
    slow = es._one_by_one(index, results, "r")
    assert fast.keys() == slow.keys()
    for sha in slow:
        for x, y in zip(fast[sha], slow[sha], strict=True):
            np.testing.assert_array_equal(x, y)
    # numpy scalars and tuples (a model adapter's output) are valid, read one by one
    first = results[0]
    odd = {**first, "bbox": tuple(np.float32(v) for v in first["bbox"])}
    odd["category_id"] = np.int64(first["category_id"])
    assert es._columns(index, [odd]) is None
    (got,) = ev.detections_from_results(index, [odd]).values()
    np.testing.assert_allclose(got[0], [first["bbox"]], rtol=1e-6)
    # a bool is not a number, in either path
    with pytest.raises(InputError, match="bbox must be"):
        ev.detections_from_results(index, [{**first, "bbox": [1, True, 3, 4]}])
    with pytest.raises(InputError, match="category_id must be an integer"):
        ev.detections_from_results(index, [{**first, "category_id": True}])
