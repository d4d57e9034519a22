"""The review rules as plain functions: every action's effect on an image's boxes, no Qt."""

from __future__ import annotations

import pytest

from labeldesk.app import rules
from labeldesk.core.boxes import Box, live_boxes
from labeldesk.core.review.suggestions import Params, suggest

CAT, DOG = 1, 2
ME = "rev"


def pre(cls: int, x, y, w, h, score: float, state: str = "pending") -> Box:
    return Box(cls, x, y, w, h, origin="model", state=state, score=score, model="m1")


def label(cls: int, x, y, w, h, state: str = "imported") -> Box:
    return Box(cls, x, y, w, h, origin="human", state=state)


def test_accept_reject_and_the_all_variants() -> None:
    boxes = [pre(CAT, 0, 0, 10, 10, 0.9), pre(DOG, 20, 0, 10, 10, 0.4), label(CAT, 50, 0, 5, 5)]
    got = rules.accept(boxes, 0, ME)
    assert got[0] == boxes[0].with_(state="accepted", author=ME) and got[1:] == boxes[1:]
    assert boxes[0].state == "pending"  # the input is never changed
    assert rules.accept(boxes, 2, ME) == boxes  # only pending boxes are accepted
    assert [b.state for b in rules.accept_all(boxes, ME)] == ["accepted", "accepted", "imported"]
    # a model box is kept as rejected (agreement counts it); a person's box is deleted
    assert rules.reject(boxes, 1, ME)[1] == boxes[1].with_(state="rejected", author=ME)
    assert rules.reject(boxes, 2, ME) == boxes[:2]
    assert [b.state for b in rules.reject_all(boxes, ME)] == ["rejected", "rejected", "imported"]


def test_reclass_move_and_draw() -> None:
    boxes = [pre(CAT, 0, 0, 10, 10, 0.9), label(CAT, 50, 0, 5, 5, state="added")]
    assert rules.reclass(boxes, 0, DOG, ME)[0] == boxes[0].with_(cls=DOG, state="edited", author=ME)
    assert rules.reclass(boxes, 0, CAT, ME) == boxes  # same class: nothing changes
    assert rules.reclass(boxes, 1, DOG, ME)[1].state == "added"  # one's own box stays added
    moved = rules.move(boxes, 0, (1, 2, 3, 4), ME)[0]
    assert (moved.x, moved.y, moved.w, moved.h, moved.state) == (1, 2, 3, 4, "edited")
    assert rules.move(boxes, 1, (1, 2, 3, 4), ME)[1].state == "added"
    drawn = rules.draw(boxes, DOG, (5, 5, 6, 6), ME)
    assert drawn[-1] == Box(DOG, 5, 5, 6, 6, origin="human", state="added", author=ME)


def scene() -> tuple[list[Box], list[Box]]:
    boxes = [label(CAT, 0, 0, 20, 20), label(CAT, 100, 0, 20, 20), label(DOG, 200, 200, 10, 10)]
    preds = [
        pre(DOG, 0, 0, 20, 21, 0.8),
        pre(CAT, 110, 5, 20, 20, 0.4),
        pre(DOG, 300, 0, 30, 30, 0.7),
    ]
    return boxes, preds


@pytest.mark.parametrize("decide", [rules.accept_suggestion, rules.dismiss_suggestion])
def test_every_suggestion_decision_settles_it(decide) -> None:
    boxes, preds = scene()
    todo = suggest(boxes, preds, Params(), model="m1")
    assert {s.kind for s in todo} == {"missing", "wrong_class", "loose", "spurious"}
    for s in todo:
        boxes = decide(boxes, s, ME)
        assert rules.is_decided(boxes, s)
    # once each is decided, nothing is suggested again on this image
    assert suggest(boxes, preds, Params(), model="m1") == []


def test_what_accepting_each_suggestion_does() -> None:
    boxes, preds = scene()
    by_kind = {s.kind: s for s in suggest(boxes, preds, Params(), model="m1")}
    added = rules.accept_suggestion(boxes, by_kind["missing"], ME)
    assert added[-1] == preds[2].with_(state="accepted", author=ME)
    reclassed = rules.accept_suggestion(boxes, by_kind["wrong_class"], ME)[0]
    # the model's class on the person's geometry, recorded as the model's accepted box
    assert (reclassed.cls, reclassed.x, reclassed.h, reclassed.state) == (DOG, 0, 20, "accepted")
    assert reclassed.origin == "model" and reclassed.score == 0.8
    tightened = rules.accept_suggestion(boxes, by_kind["loose"], ME)[1]
    assert tightened == preds[1].with_(state="accepted", author=ME)
    removed = rules.accept_suggestion(boxes, by_kind["spurious"], ME)
    assert live_boxes(removed) == boxes[:2]  # no longer a label, but kept in the record
    assert removed[2].state == "rejected" and removed[2].model == "m1"


def test_what_dismissing_each_suggestion_does() -> None:
    boxes, preds = scene()
    by_kind = {s.kind: s for s in suggest(boxes, preds, Params(), model="m1")}
    kept = rules.dismiss_suggestion(boxes, by_kind["missing"], ME)
    assert live_boxes(kept) == boxes and kept[-1] == preds[2].with_(state="rejected", author=ME)
    for kind, i in (("wrong_class", 0), ("loose", 1), ("spurious", 2)):
        after = rules.dismiss_suggestion(boxes, by_kind[kind], ME)
        # the label stays where it was, confirmed by a person; the model's box is rejected
        assert after[i] == boxes[i].with_(state="accepted", author=ME)
        assert [b.state for b in after[3:]] == ([] if kind == "spurious" else ["rejected"])
