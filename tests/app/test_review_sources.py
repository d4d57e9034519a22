"""Pre-labels belong to the project: any stored run is the session's source, across commits."""

from __future__ import annotations

import pytest
from helpers import model_row as add_model

from labeldesk.app.review import (
    Workspace,
    available_runs,
    open_or_start_session,
    set_prelabel_source,
)
from labeldesk.core.boxes import Box
from labeldesk.core.inference import predictions
from labeldesk.core.inference.predictions import Prediction
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.sessions import ReviewSession

P1 = {"conf": 0.25, "iou": 0.7, "imgsz": 320}
P2 = {"conf": 0.1, "iou": 0.7, "imgsz": 320}


@pytest.fixture
def shas(project, images) -> list[str]:
    shas = [a.sha256 for a in add_images(project, images[:3]).added]
    s = ReviewSession.start(project)
    cat = s.add_class("cat")
    s.add_class("dog")
    s.set_boxes(shas[0], [Box(cat, 1, 1, 20, 20, state="imported")])  # one labelled image
    s.commit("classes and one label")
    add_model(project, "m1", "first")
    add_model(project, "m2", "second")
    return shas


def store(project, model, params, shas, created: str) -> None:
    preds = [Prediction("cat", 30, 5, 10, 10, 0.9), Prediction("dog", 2, 30, 8, 8, 0.3)]
    predictions.store(project, model, params, [(sha, preds) for sha in shas])
    with project.transaction():  # stored at a known time, so "newest" is not a race
        project.db.execute(
            "UPDATE prediction SET created = ? WHERE model = ? AND params = ?",
            [created, model, predictions.params_key(params)],
        )


def test_runs_are_listed_newest_first_with_coverage(project, shas) -> None:
    store(project, "m1", P1, shas, "2026-01-01T10:00:00Z")
    store(project, "m2", P1, shas[:2], "2026-01-02T10:00:00Z")
    store(project, "m1", P2, shas[:1], "2026-01-01T09:00:00Z")
    version = ReviewSession.start(project).base_id
    got = [(r.model_name, r.params, r.images) for r in available_runs(project, version)]
    assert got == [("second", P1, 2), ("first", P1, 3), ("first", P2, 1)]
    assert available_runs(project, version)[0].params_text == "conf 0.25, imgsz 320, iou 0.7"


def test_a_session_takes_the_newest_run_and_a_commit_keeps_the_choice(project, shas) -> None:
    # A session opened before any run exists picks one up when reopened, no menu needed.
    early = open_or_start_session(project)
    assert early.source() is None
    store(project, "m1", P1, shas, "2026-01-01T10:00:00Z")
    store(project, "m2", P1, shas, "2026-01-02T10:00:00Z")
    session = open_or_start_session(project)
    assert session.id == early.id and session.source() == ("m2", P1)
    ws = Workspace(project, session)
    ws.load()
    assert [b.score for b in ws.boxes(shas[1])] == [0.9, 0.3]  # pending pre-labels
    assert all(b.state == "pending" and b.model == "m2" for b in ws.boxes(shas[1]))

    # The reviewer switches to the older run; the next session inherits it, not the newest.
    set_prelabel_source(project, session.id, "m1", P1)
    ws.load()
    assert ws.prelabel_model == "m1" and ws.boxes(shas[1])[0].model == "m1"
    session.set_boxes(shas[1], [b.with_(state="accepted") for b in ws.boxes(shas[1])])
    session.commit("first pass")
    nxt = open_or_start_session(project)
    assert nxt.id != session.id and nxt.source() == ("m1", P1)
    ws2 = Workspace(project, nxt)
    ws2.load()
    # the image still to review keeps its pending boxes; the reviewed one has labels now
    assert [b.state for b in ws2.boxes(shas[2])] == ["pending", "pending"]
    assert [b.state for b in ws2.boxes(shas[1])] == ["accepted", "accepted"]


def test_the_session_queue_follows_its_source_and_its_edits(project, shas) -> None:
    from labeldesk.app import rules
    from labeldesk.app.review import review_queue

    store(project, "m1", P1, shas, "2026-01-01T10:00:00Z")
    predictions.store(project, "m2", P2, [(shas[0], [Prediction("dog", 50, 40, 9, 9, 0.8)])])
    session = open_or_start_session(project)
    set_prelabel_source(project, session.id, "m1", P1)
    queue = review_queue(project, session.id)
    kinds = {q.image: sorted(r.kind for r in q.reasons) for q in queue}
    # m2 disagrees on the labelled image; the unlabelled ones have a doubtful pending dog
    # (each model has a confident box the other lacks)
    assert kinds[shas[0]] == ["disagreement", "disagreement", "missing", "spurious"]
    assert kinds[shas[1]] == kinds[shas[2]] == ["low_confidence"]
    assert queue[0].image == shas[0]

    ws = Workspace(project, session)
    ws.load()
    boxes = ws.boxes(shas[0])
    for s in ws.suggestions(shas[0]):
        boxes = rules.dismiss_suggestion(boxes, s, "rev")
    session.set_boxes(shas[0], boxes)
    # decided: only the other model's word is left on that image
    after = {q.image: [r.kind for r in q.reasons] for q in review_queue(project, session.id)}
    assert after[shas[0]] == ["disagreement", "disagreement"]
    # an image reviewed as it was (all pending accepted) leaves the queue; unsaved edits count
    session.set_boxes(shas[1], rules.accept_all(ws.boxes(shas[1]), "rev"))
    overlay = {shas[2]: rules.reject_all(ws.boxes(shas[2]), "rev")}
    assert [q.image for q in review_queue(project, session.id, overlay)] == [shas[0]]
