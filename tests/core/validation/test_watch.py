"""Evaluating a registered model on versions, and watched models that catch regressions.

Runs the real shipped demo model on a few generated scenes whose labels are the generator's
truth, so the model scores well on them and damaged labels show up as a real drop.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from helpers import DEMO_MODEL as DEMO
from helpers import label_truth
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeldesk.core.boxes import Box
from labeldesk.core.errors import InputError
from labeldesk.core.formats.coco import export_coco
from labeldesk.core.inference.predictions import load_many
from labeldesk.core.inference.registry import add_model
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import resolve, revert
from labeldesk.core.validation.evaluation import ImageIndex, list_evaluations, validate
from labeldesk.core.validation.metrics import STAT_KEYS
from labeldesk.core.validation.model_eval import EVAL_CONF, model_source
from labeldesk.core.validation.watch import (
    WatchSettings,
    evaluate_watched,
    unwatch,
    watch,
    watched,
)
from labeldesk.core.validation.watch_status import status_text, watch_status

IMGSZ = 320  # what the demo model was trained at


def shift_boxes(project, fraction: float) -> str:
    """Commit main with every box moved right by ``fraction`` of its width (bad labels)."""
    version = resolve(project.db, "main")
    session = ReviewSession.start(project)
    for sha, boxes in _boxes(project, version).items():
        session.set_boxes(sha, [b.with_(x=b.x + fraction * b.w, state="edited") for b in boxes])
    return session.commit(f"shift boxes by {fraction}").id


def _boxes(project, version) -> dict[str, list[Box]]:
    from labeldesk.core.formats.plan import BoxReader
    from labeldesk.core.store.manifest import ManifestStore

    ms = ManifestStore(project.db)
    reader = BoxReader(project)
    out = {}
    for sha, entry in ms.entries(ms.tree(version.tree)):
        out[sha] = [
            Box(d["class"], d["x"], d["y"], d["w"], d["h"]) for d in reader.boxes(entry.annset)
        ]
    return out


@pytest.fixture
def shapes(project, tmp_path) -> str:
    v1 = label_truth(project, tmp_path / "src")
    add_model(project, DEMO, "demo")
    return v1


def n_predictions(project) -> int:
    return project.db.execute("SELECT COUNT(*) FROM prediction").fetchone()[0]


def test_model_evaluation_equals_pycocotools_on_the_export(project, shapes, tmp_path) -> None:
    report = validate(project, model_source(project, "demo", imgsz=IMGSZ))
    (row,) = report.rows
    model_id = add_model(project, DEMO, "demo").model.id  # already registered: same row
    assert (row.source_kind, row.source_hash, row.source_name) == ("model", model_id, "demo")
    predict = row.params["source"]["predict"]
    assert predict == {"conf": EVAL_CONF, "iou": 0.7, "imgsz": IMGSZ}
    assert row.summary["map50"] > 0.3  # the demo model finds most shapes
    assert n_predictions(project) == 6

    # The same detections judged by pycocotools on `labeldesk export coco` of the version.
    index = ImageIndex.build(project, "main")
    names = {c["name"]: c["id"] for c in index.version.classes}
    results = [
        {
            "image_id": index.coco_ids[sha],
            "category_id": names[p.name],
            "bbox": [p.x, p.y, p.w, p.h],
            "score": p.score,
        }
        for sha, preds in load_many(project.db, model_id, predict, index.shas).items()
        for p in preds
        if p.name in names
    ]
    export_coco(project, tmp_path / "export")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "export" / "annotations.json"))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = np.array([row.summary[k] for k in STAT_KEYS])  # stored as sorted JSON
    assert np.abs(ours - ev.stats).max() < 1e-6, (ours, ev.stats)

    # Evaluating again predicts nothing: the cache is keyed by model, parameters and image.
    again = validate(project, model_source(project, "demo", imgsz=IMGSZ), baseline_ref="main")
    assert n_predictions(project) == 6
    assert again.rows[0].metric_drop == pytest.approx(0.0, abs=1e-12)


def test_an_image_the_model_cannot_decode_stops_the_evaluation(project, shapes) -> None:
    index = ImageIndex.build(project, "main")
    sha = index.shas[0]
    damaged = project.objects.path(sha)
    damaged.chmod(0o644)
    damaged.write_bytes(b"no longer a JPEG")  # store damage, as `labeldesk fsck` would report
    with pytest.raises(InputError) as caught:
        validate(project, model_source(project, "demo", imgsz=IMGSZ))
    message = str(caught.value)
    assert f"{index.names[sha]} ({sha[:12]})" in message and "labeldesk fsck" in message
    assert list_evaluations(project) == []  # no figures that would blame the model


def test_a_model_that_shares_no_class_with_the_version_is_refused_before_inference(
    project, tmp_path
) -> None:
    from labeldesk.core.demo.synth import write_images
    from labeldesk.core.store.importer import add_images

    write_images(tmp_path / "pets", 2, seed=1, size=(160, 120))
    shas = [a.sha256 for a in add_images(project, [tmp_path / "pets"]).added]
    session = ReviewSession.start(project)
    cat = session.add_class("cat")
    session.add_class("dog")
    session.set_boxes(shas[0], [Box(cat, 10, 10, 30, 30)])
    session.commit("pets")
    add_model(project, DEMO, "demo")  # circle, square, triangle, star
    with pytest.raises(InputError) as caught:
        validate(project, model_source(project, "demo", imgsz=IMGSZ))
    message = str(caught.value)
    assert "no class of the model is a class of the version" in message
    assert "circle, square, triangle, star" in message and "cat, dog" in message
    assert n_predictions(project) == 0 and list_evaluations(project) == []


def test_baseline_model_compares_two_setups_on_one_version(project, shapes) -> None:
    report = validate(
        project,
        model_source(project, "demo", imgsz=IMGSZ),
        baseline_source=model_source(project, "demo", imgsz=IMGSZ * 2),
        max_drop=1.0,
    )
    (row,), (base,) = report.rows, report.baseline_rows
    assert base.params["source"]["predict"]["imgsz"] == IMGSZ * 2
    assert row.baseline == base.id and report.passed
    assert row.metric_drop == pytest.approx(base.value - row.value)


def test_watched_model_records_regressions_against_its_previous_evaluation(project, shapes) -> None:
    info = watch(project, "demo", WatchSettings(imgsz=IMGSZ, max_drop=0.02))
    [(m, settings)] = watched(project.db)
    assert m.id == info.id and settings.imgsz == IMGSZ and settings.by == project.user

    (first,) = evaluate_watched(project)
    assert first.evaluation is not None and not first.skipped and not first.regression
    assert first.evaluation.baseline is None and first.evaluation.params["trigger"] == "watch"
    (again,) = evaluate_watched(project)  # idempotent: nothing new is stored
    assert again.skipped and again.evaluation.id == first.evaluation.id
    assert len(list_evaluations(project)) == 1
    # An ordinary `validate --model` of the same model is not a watched evaluation
    manual = validate(project, model_source(project, "demo", imgsz=IMGSZ)).rows[0]
    assert "trigger" not in manual.params
    assert [e.id for e in list_evaluations(project, trigger="watch")] == [first.evaluation.id]
    assert [e.id for e in list_evaluations(project, source_hash=m.id)] == [
        first.evaluation.id,
        manual.id,
    ]

    v2 = shift_boxes(project, 0.5)
    predicted = n_predictions(project)
    (second,) = evaluate_watched(project, v2)
    assert n_predictions(project) == predicted  # same images: no inference
    e2 = second.evaluation
    assert second.regression and e2.passed is False
    # the newest evaluation of the same setup on an earlier version, watched or by hand
    assert e2.baseline == manual.id and second.baseline_version == shapes
    assert e2.metric_drop == pytest.approx(manual.value - e2.value)
    assert manual.value == pytest.approx(first.evaluation.value)
    assert e2.metric_drop > 0.02
    assert "REGRESSION" in second.line()

    v3 = revert(project, shapes, "undo the shift").id
    (third,) = evaluate_watched(project, v3)
    assert not third.regression and third.evaluation.baseline == e2.id
    assert third.evaluation.value == pytest.approx(first.evaluation.value)

    status = watch_status(project)
    assert {k: [e.id for e in v] for k, v in status.items()} == {
        shapes: [first.evaluation.id],
        v2: [e2.id],
        v3: [third.evaluation.id],
    }
    assert "REGRESSION" in status_text(status[v2]) and "REGRESSION" not in status_text(status[v3])

    unwatch(project, "demo")
    assert watched(project.db) == [] and evaluate_watched(project) == []
    assert len(watch_status(project)) == 3  # the history stays


def test_a_broken_watched_model_does_not_stop_the_others(project, shapes, tmp_path) -> None:
    import torch

    from labeldesk.core.inference.loading import safe_load_checkpoint

    other = tmp_path / "other.pt"
    shutil.copyfile(DEMO, other)
    ckpt = safe_load_checkpoint(other, other, trust=False)
    ckpt["date"] = "retrained"  # other bytes, same weights: a second model
    torch.save(ckpt, other)
    add_model(project, other, "other")
    watch(project, "demo", WatchSettings(imgsz=IMGSZ))
    watch(project, "other", WatchSettings(imgsz=IMGSZ))
    other.write_bytes(other.read_bytes() + b"tampered")  # changed after registration

    by_name = {r.model.name: r for r in evaluate_watched(project)}
    assert by_name["other"].evaluation is None
    assert "changed since it was registered" in (by_name["other"].error or "")
    assert by_name["demo"].error is None and by_name["demo"].evaluation is not None
    assert "not evaluated" in by_name["other"].line()


def test_watch_settings_are_checked(project, shapes) -> None:
    with pytest.raises(InputError) as e:
        watch(project, "demo", WatchSettings(metric="accuracy", max_drop=-1, imgsz=100))
    wheres = {p.where for p in e.value.problems}
    assert {"--metric", "--max-drop", "--imgsz"} <= wheres
    assert watched(project.db) == []
    assert json.loads(json.dumps(WatchSettings().to_json()))["metric"] == "map50_95"
