"""The review queue: priorities from suggestions, doubtful pre-labels and model disagreement."""

from __future__ import annotations

import pytest

from labeldesk.core import predictions
from labeldesk.core.boxes import Box
from labeldesk.core.importer import add_images
from labeldesk.core.predictions import Prediction
from labeldesk.core.project import now_iso
from labeldesk.core.queue import Params, priority, rank
from labeldesk.core.sessions import ReviewSession

P = {"conf": 0.25, "iou": 0.7, "imgsz": 320}


def add_model(project, model_id: str, name: str) -> None:
    with project.transaction():
        project.db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, added_at, added_by) "
            "VALUES (?, ?, '/m.onnx', 'onnx', 'detect', '[\"cat\", \"dog\"]', ?, 'me')",
            [model_id, name, now_iso()],
        )


@pytest.fixture
def shas(project, images) -> list[str]:
    """Four images: 0 agrees with the model, 1 has a cat labelled dog, 2 misses a cat,
    3 is unlabelled with a doubtful pre-label."""
    shas = [a.sha256 for a in add_images(project, images[:4]).added]
    s = ReviewSession.start(project)
    cat, dog = s.add_class("cat"), s.add_class("dog")
    s.set_boxes(shas[0], [Box(cat, 0, 0, 20, 20, state="imported")])
    s.set_boxes(shas[1], [Box(dog, 0, 0, 20, 20, state="imported")])
    s.set_boxes(shas[2], [Box(cat, 0, 0, 20, 20, state="imported")])
    s.commit("labels")
    add_model(project, "m1", "first")
    cat0 = Prediction("cat", 0, 0, 20, 20, 0.9)
    predictions.store(
        project,
        "m1",
        P,
        [
            (shas[0], [cat0]),
            (shas[1], [cat0]),
            (shas[2], [cat0, Prediction("cat", 30, 30, 10, 10, 0.6)]),
            (shas[3], [Prediction("dog", 5, 5, 10, 10, 0.2)]),
        ],
    )
    return shas


def test_images_are_ranked_by_likely_error(project, shas) -> None:
    queue = rank(project)
    assert [q.image for q in queue] == [shas[1], shas[2], shas[3]]  # shas[0] agrees: left out
    (wrong,) = queue[0].reasons
    assert (wrong.kind, wrong.cls, wrong.box, wrong.score) == (
        "wrong_class",
        "cat",
        (0, 0, 20, 20),
        0.9,
    )
    assert queue[0].priority == pytest.approx(0.9)
    assert [r.kind for r in queue[1].reasons] == ["missing"]
    assert queue[1].priority == pytest.approx(0.6)
    (low,) = queue[2].reasons
    assert (low.kind, low.cls, low.score) == ("low_confidence", "dog", 0.2)
    assert queue[2].priority == pytest.approx(0.5 * 0.8)
    assert rank(project, limit=1) == queue[:1]
    assert len(rank(project, include_empty=True)) == 4
    # the user's thresholds: nothing is confident at 0.95
    assert [q.image for q in rank(project, params=Params(min_score=0.95))] == [shas[3]]


def test_session_edits_replace_the_labels(project, shas) -> None:
    fixed = [
        Box(2, 0, 0, 20, 20),
        Box(1, 0, 0, 20, 20, origin="model", state="rejected", score=0.9),
    ]
    queue = rank(project, edits={shas[1]: fixed})
    assert shas[1] not in [q.image for q in queue]


def test_two_models_disagreeing_raise_the_priority(project, shas) -> None:
    add_model(project, "m2", "second")
    predictions.store(project, "m2", P, [(shas[0], [Prediction("dog", 50, 50, 10, 10, 0.8)])])
    queue = rank(project, model="first")
    item = next(q for q in queue if q.image == shas[0])
    kinds = sorted((r.kind, r.model) for r in item.reasons)
    assert kinds == [("disagreement", "m1"), ("disagreement", "m2")]
    assert item.priority == pytest.approx(priority(item.reasons))
