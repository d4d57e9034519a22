"""Review agreement on constructed sessions whose every decision is known."""

from __future__ import annotations

import pytest

from labeldesk.core.boxes import Box
from labeldesk.core.errors import LabelDeskError
from labeldesk.core.inference import predictions
from labeldesk.core.inference.predictions import Prediction
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import now_iso
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.validation.agreement import agreement, iou

PARAMS = {"conf": 0.25, "iou": 0.7, "imgsz": 640}


def add_model(project, model_id: str, name: str) -> str:
    with project.transaction():
        project.db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, added_at, added_by) "
            "VALUES (?, ?, '/m.onnx', 'onnx', 'detect', '[\"cat\", \"dog\"]', ?, 'me')",
            [model_id, name, now_iso()],
        )
    return model_id


def prelabelled_session(project, model: str) -> ReviewSession:
    s = ReviewSession.start(project)
    with project.transaction():
        project.db.execute(
            "UPDATE review_session SET prelabel_model = ?, prelabel_params = ? WHERE id = ?",
            [model, predictions.params_key(PARAMS), s.id],
        )
    return s


def pre(cls: int, x, y, w, h, score, state: str) -> Box:
    return Box(cls, x, y, w, h, origin="model", state=state, score=score, model="m1")


def test_counts_and_mean_iou_of_a_known_session(project, images) -> None:
    shas = [a.sha256 for a in add_images(project, images).added]
    model = add_model(project, "m1", "demo")
    add_model(project, "m2", "other")
    predictions.store(
        project,
        model,
        PARAMS,
        [
            (
                shas[0],
                [
                    Prediction("cat", 10, 10, 20, 20, 0.9),  # accepted
                    Prediction("cat", 30, 5, 10, 10, 0.8),  # moved right by 2
                    Prediction("dog", 2, 2, 8, 8, 0.7),  # rejected
                ],
            ),
            (
                shas[1],
                [
                    Prediction("dog", 5, 5, 20, 16, 0.6),  # left pending
                    Prediction("cat", 40, 20, 10, 10, 0.55),  # re-classed to dog, taller
                ],
            ),
            (shas[2], []),  # the model saw this image and found nothing
        ],
    )
    s = prelabelled_session(project, model)
    cat, dog = s.add_class("cat"), s.add_class("dog")
    s.set_boxes(
        shas[0],
        [
            pre(cat, 10, 10, 20, 20, 0.9, "accepted"),
            pre(cat, 32, 5, 10, 10, 0.8, "edited"),
            pre(dog, 2, 2, 8, 8, 0.7, "rejected"),
            Box(dog, 40, 30, 10, 10),  # drawn by the reviewer: a miss
        ],
    )
    s.set_boxes(
        shas[1],
        [pre(dog, 5, 5, 20, 16, 0.6, "pending"), pre(dog, 40, 20, 10, 12, 0.55, "edited")],
    )
    s.set_boxes(shas[2], [Box(cat, 1, 1, 9, 9)])  # a miss: the model ran and found nothing
    s.set_boxes(shas[3], [Box(cat, 1, 1, 9, 9)])  # the model never ran here: not counted
    v1 = s.commit("first review")

    report = agreement(project)
    (first,) = report.sessions
    assert (first.session, first.version, first.model, first.model_name) == (
        s.id,
        v1.id,
        "m1",
        "demo",
    )
    assert first.images == 3
    c, d = first.classes["cat"], first.classes["dog"]
    assert (c.accepted, c.edited, c.reclassed, c.rejected, c.pending, c.added) == (1, 2, 1, 0, 0, 1)
    assert (d.accepted, d.edited, d.rejected, d.pending, d.added) == (0, 0, 1, 1, 1)
    # IoU 80/120 for the moved box, 100/120 for the re-classed taller one
    assert c.mean_iou == pytest.approx((2 / 3 + 5 / 6) / 2, abs=1e-12)
    t = first.totals
    assert (t.accepted, t.edited, t.rejected, t.pending, t.added) == (1, 2, 1, 1, 2)
    assert t.acceptance_rate == pytest.approx(1 / 4)
    assert t.precision == pytest.approx(3 / 4)
    assert t.recall == pytest.approx(3 / 5)

    # A second session: image 0 now has labels, carried over unchanged except one deletion;
    # a new image gets pre-labels, one accepted and one edited whose score was lost.
    predictions.store(
        project,
        model,
        PARAMS,
        [
            (
                shas[4],
                [Prediction("cat", 1, 1, 10, 10, 0.95), Prediction("dog", 30, 20, 10, 10, 0.5)],
            )
        ],
    )
    s2 = prelabelled_session(project, model)
    carried = [b for b in s2.boxes(shas[0]) if b.origin == "model"]
    s2.set_boxes(shas[0], carried)
    s2.set_boxes(
        shas[4],
        [pre(1, 1, 1, 10, 10, 0.95, "accepted"), pre(2, 31, 20, 10, 10, None, "edited")],
    )
    s2.commit("second review")
    manual = ReviewSession.start(project)
    manual.set_boxes(shas[5], [Box(1, 2, 2, 5, 5)])
    manual.commit("manual labelling: no model involved")

    report = agreement(project)
    assert [x.session for x in report.sessions] == [s.id, s2.id]
    second = report.sessions[1]
    assert second.classes["cat"].accepted == 1 and second.classes["cat"].edited == 0
    assert second.classes["dog"].edited == 1
    assert second.classes["dog"].mean_iou == pytest.approx(90 / 110, abs=1e-12)
    assert second.totals.added == 0  # carried-over boxes are not this session's decisions
    trend = report.trend()
    assert [p["acceptance_rate"] for p in trend] == [pytest.approx(0.25), pytest.approx(0.5)]
    assert report.totals().accepted == 2

    assert [x.session for x in agreement(project, "demo").sessions] == [s.id, s2.id]
    assert len(agreement(project, "m1").sessions) == 2
    assert agreement(project, "other").sessions == []
    with pytest.raises(LabelDeskError, match="no model 'nope'; registered models: demo, other"):
        agreement(project, "nope")
    js = report.to_json()
    assert js["sessions"][0]["classes"]["cat"]["mean_iou"] == pytest.approx(0.75)
    assert js["sessions"][0]["params"] == PARAMS


def test_edited_box_without_cached_prediction_counts_but_has_no_iou(project, images) -> None:
    shas = [a.sha256 for a in add_images(project, images).added]
    add_model(project, "m1", "demo")
    s = ReviewSession.start(project)  # no pre-label source recorded on the session
    cat = s.add_class("cat")
    s.set_boxes(shas[0], [pre(cat, 3, 3, 9, 9, 0.5, "edited"), Box(cat, 20, 20, 5, 5)])
    s.commit("r")
    (only,) = agreement(project).sessions
    c = only.classes["cat"]
    assert (c.edited, c.edited_unmatched, c.mean_iou, c.added) == (1, 1, None, 1)
    assert only.model == "m1"


def test_iou() -> None:
    assert iou(Box(0, 0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert iou(Box(0, 0, 0, 10, 10), (10, 0, 10, 10)) == 0
    assert iou(Box(0, 0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_suggestion_decisions_count_like_pre_labels(project, images) -> None:
    from labeldesk.app import rules
    from labeldesk.app.review import Workspace

    shas = [a.sha256 for a in add_images(project, images[:2]).added]
    s0 = ReviewSession.start(project)
    cat, dog = s0.add_class("cat"), s0.add_class("dog")
    s0.set_boxes(
        shas[0],
        [
            Box(cat, 0, 0, 20, 20, state="imported"),  # the model says dog
            Box(cat, 30, 0, 10, 10, state="imported"),  # the model's box is shifted
            Box(dog, 50, 30, 8, 8, state="imported"),  # nothing there, says the model
        ],
    )
    s0.set_boxes(shas[1], [Box(dog, 40, 30, 10, 10, state="imported")])
    s0.commit("labels")
    model = add_model(project, "m1", "demo")
    predictions.store(
        project,
        model,
        PARAMS,
        [
            (
                shas[0],
                [
                    Prediction("dog", 0, 0, 20, 21, 0.8),
                    Prediction("cat", 34, 2, 10, 10, 0.4),
                    Prediction("dog", 5, 30, 10, 10, 0.7),  # missing
                ],
            ),
            (shas[1], []),  # the model sees nothing: the dog label is possibly spurious
        ],
    )
    session = prelabelled_session(project, model)
    ws = Workspace(project, session)
    ws.load()
    boxes = ws.boxes(shas[0])
    todo = {s.kind: s for s in ws.suggestions(shas[0])}
    assert set(todo) == {"missing", "wrong_class", "loose", "spurious"}
    boxes = rules.accept_suggestion(boxes, todo["missing"], "rev")
    boxes = rules.dismiss_suggestion(boxes, todo["wrong_class"], "rev")
    boxes = rules.accept_suggestion(boxes, todo["loose"], "rev")
    boxes = rules.accept_suggestion(boxes, todo["spurious"], "rev")
    session.set_boxes(shas[0], boxes)
    assert ws.suggestions(shas[0]) == []  # every decision is in the record
    (spurious,) = ws.suggestions(shas[1])
    session.set_boxes(shas[1], rules.dismiss_suggestion(ws.boxes(shas[1]), spurious, "rev"))
    session.commit("suggestions decided")

    (report,) = agreement(project).sessions
    assert report.images == 2
    dog_c, cat_c = report.classes["dog"], report.classes["cat"]
    assert (dog_c.accepted, dog_c.rejected, dog_c.removed, dog_c.kept) == (1, 1, 1, 1)
    assert (cat_c.accepted, cat_c.rejected) == (1, 0)  # the loose box, accepted
    t = report.totals
    assert (t.accepted, t.rejected, t.removed, t.kept, t.added) == (2, 1, 1, 1, 0)
    assert t.recall == pytest.approx(2 / 3)  # the kept dog is an object the model missed
    assert report.to_json()["totals"]["kept"] == 1
