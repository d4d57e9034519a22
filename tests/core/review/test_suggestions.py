"""Suggestions on labelled images: matching by class and IoU, greedy by score, and each kind."""

from __future__ import annotations

from labeldesk.core.boxes import Box
from labeldesk.core.review.suggestions import Params, match, suggest, undecided

CAT, DOG = 1, 2
NAMES = {CAT: "cat", DOG: "dog"}


def label(cls: int, x, y, w, h, state: str = "imported") -> Box:
    return Box(cls, x, y, w, h, origin="human", state=state)


def pred(cls: int, x, y, w, h, score: float, state: str = "pending") -> Box:
    return Box(cls, x, y, w, h, origin="model", state=state, score=score, model="m1")


def kinds(boxes, preds, **kw) -> list[tuple]:
    return [
        (s.kind, s.label, s.prediction and s.prediction.score)
        for s in suggest(boxes, preds, Params(**kw), NAMES, "m1")
    ]


def test_matching_is_greedy_by_score_like_coco() -> None:
    labels = [label(CAT, 0, 0, 10, 10), label(CAT, 4, 0, 10, 10)]
    # The 0.9 prediction overlaps both labels; it takes the better one (label 1), leaving
    # label 0 for the 0.8 prediction even though 0.8 overlaps label 1 more.
    preds = [pred(CAT, 1, 0, 10, 10, 0.8), pred(CAT, 4, 0, 10, 10, 0.9)]
    assert match(labels, preds, 0.5) == [0, 1]
    # A class never matches another class, whatever the overlap.
    assert match(labels, [pred(DOG, 0, 0, 10, 10, 0.9)], 0.5) == [None]


def test_agreeing_model_suggests_nothing() -> None:
    boxes = [label(CAT, 0, 0, 20, 20), label(DOG, 50, 50, 20, 20)]
    preds = [pred(CAT, 1, 1, 20, 20, 0.9), pred(DOG, 50, 51, 20, 20, 0.7)]
    assert kinds(boxes, preds) == []


def test_each_kind_of_disagreement() -> None:
    boxes = [
        label(CAT, 0, 0, 20, 20),  # the model says dog: wrong class
        label(CAT, 100, 0, 20, 20),  # the model's cat is shifted: loose
        label(DOG, 200, 200, 10, 10),  # nothing near: spurious
    ]
    preds = [
        pred(DOG, 0, 0, 20, 21, 0.8),
        pred(CAT, 110, 5, 20, 20, 0.4),  # IoU 0.2: poor, and low score is fine for loose
        pred(DOG, 300, 0, 30, 30, 0.7),  # no label there: missing
        pred(DOG, 400, 0, 30, 30, 0.3),  # not confident: nothing
    ]
    assert kinds(boxes, preds) == [
        ("missing", None, 0.7),
        ("wrong_class", 0, 0.8),
        ("loose", 1, 0.4),
        ("spurious", 2, None),
    ]
    # The threshold is the user's: at IoU 0.15 the shifted box matches and is not "loose".
    assert ("loose", 1, 0.4) not in kinds(boxes, preds, iou=0.15)
    # A spurious label stays so only while nothing at all overlaps it.
    assert ("spurious", 2, None) not in kinds(boxes, [*preds, pred(CAT, 205, 205, 50, 50, 0.05)])


def test_reasons_name_classes_and_scores() -> None:
    (s,) = suggest([label(CAT, 0, 0, 20, 20)], [pred(DOG, 0, 0, 20, 20, 0.8)], Params(), NAMES)
    assert s.reason == "labelled cat, the model says dog (0.80, IoU 1.00)"
    assert (s.cls, s.box, s.iou) == (DOG, s.prediction, 1.0)


def test_duplicates_and_decided_predictions_suggest_nothing() -> None:
    boxes = [label(CAT, 0, 0, 20, 20)]
    # a second detection of the same cat, lower scored: a duplicate, not a missing cat
    assert kinds(boxes, [pred(CAT, 0, 0, 20, 20, 0.9), pred(CAT, 1, 0, 20, 20, 0.8)]) == []
    missing = pred(DOG, 100, 100, 20, 20, 0.9)
    # the reviewer rejected that prediction already: it is not offered again
    decided = [*boxes, missing.with_(state="rejected")]
    assert undecided(decided, [missing]) == []
    assert kinds(decided, [pred(CAT, 0, 0, 20, 20, 0.9), missing]) == []
    # a label a person confirmed, or one that came from the model, is not questioned again
    assert kinds([label(CAT, 0, 0, 20, 20, state="accepted")], []) == []
    assert kinds([pred(CAT, 0, 0, 20, 20, 0.9, state="accepted")], []) == []
