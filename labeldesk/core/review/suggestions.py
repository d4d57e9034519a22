"""Suggestions on labelled images: where a model's predictions and the labels disagree.

This is "shadow mode": the model runs on images people already labelled, and the disagreements
are what a reviewer looks at. Per image, predictions are matched to labels the way COCO
evaluation does (predictions by descending score; each takes the unmatched label of the *same
class* with the highest IoU, if that IoU reaches the threshold), then what is left over becomes
a suggestion:

* ``missing``: a confident prediction (score >= ``min_score``) that matches no label and does
  not overlap one of another class: *possibly missing* (accept adds the model's box);
* ``wrong_class``: a confident unmatched prediction whose best overlap (IoU >= threshold) is a
  label of another class: *possibly wrong class* (accept gives the label the model's class);
* ``loose``: an unmatched label that a prediction of its class overlaps only with a poor IoU
  (0 < IoU < threshold), at any confidence: *loose box* (accept takes the model's box);
* ``spurious``: a label that no prediction overlaps at all (IoU 0 with every prediction of any
  class, at any confidence): *possibly spurious* (accept removes it).

A prediction that overlaps a label of its class already matched by a higher-scored prediction
is a duplicate detection and suggests nothing. Everything here is pure: boxes in, suggestions
out, no database, so the window, the queue and the tests share one rule.

Labels the reviewer already settled are not questioned again: labels that came from the model
(``origin == "model"``) and labels a person confirmed (state ``accepted``). Predictions already
decided in the record (a model box with the prediction's score and class, accepted, edited or
rejected) are left out, so a dismissed suggestion does not come back.

API: :data:`KINDS`, :class:`Params`, :class:`Suggestion`, :func:`iou`, :func:`match`,
:func:`suggest`, :func:`as_boxes`, :func:`undecided`, :func:`reason_text`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..boxes import Box
from ..inference.predictions import Prediction

Kind = Literal["missing", "wrong_class", "loose", "spurious"]
KINDS: tuple[Kind, ...] = ("missing", "wrong_class", "loose", "spurious")
#: What each kind is called in the window and the CLI.
KIND_WORDS: dict[str, str] = {
    "missing": "possibly missing",
    "wrong_class": "possibly wrong class",
    "loose": "loose box",
    "spurious": "possibly spurious",
}

#: The score of a "possibly spurious" suggestion: silence is weaker evidence than a detection.
SPURIOUS_SCORE = 0.5
_SCORE_TOL = 5e-7  # scores are stored to 6 decimals


@dataclass(frozen=True, slots=True)
class Params:
    """Matching thresholds; the reviewer may change both."""

    iou: float = 0.5  # a prediction matches a label of its class at this IoU or more
    min_score: float = 0.5  # a prediction is "confident" (may suggest missing / wrong class)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One disagreement between the model and the labels of an image.

    ``label`` is the index of the label in the boxes the suggestion was computed from (None for
    ``missing``), ``label_box`` that label; ``prediction`` is the model's box with the project's
    class id (None for ``spurious``); ``score`` the model's confidence (for ``spurious``, which
    has no prediction, the fixed :data:`SPURIOUS_SCORE`); ``iou`` between label and prediction
    where both exist.
    """

    kind: Kind
    label: int | None
    label_box: Box | None
    prediction: Box | None
    score: float
    iou: float
    reason: str
    model: str | None = None  # the model id whose run the suggestion comes from

    @property
    def cls(self) -> int:
        """The class the suggestion is about: the model's where it has a box, else the label's."""
        if self.prediction is not None:
            return self.prediction.cls
        assert self.label_box is not None
        return self.label_box.cls

    @property
    def box(self) -> Box:
        """The box to draw: the model's where it has one, else the label."""
        b = self.prediction if self.prediction is not None else self.label_box
        assert b is not None
        return b


def reason_text(kind: str, label: str, predicted: str, score: float, overlap: float) -> str:
    """The words for a suggestion (class names of the label and of the prediction)."""
    if kind == "wrong_class":
        return f"labelled {label}, the model says {predicted} ({score:.2f}, IoU {overlap:.2f})"
    if kind == "loose":
        return f"{label}: the model's box overlaps it only at IoU {overlap:.2f} ({score:.2f})"
    if kind == "missing":
        return f"the model sees a {predicted} ({score:.2f}) that has no label"
    return f"no prediction overlaps this {label} at any confidence"


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a.w * a.h + b.w * b.h - inter)


def as_boxes(
    preds: Iterable[Prediction], class_ids: Mapping[str, int], model: str | None = None
) -> list[Box]:
    """Stored predictions as undecided model boxes with project class ids; predictions of a
    class the project does not have are left out (they are reported when the model runs)."""
    out = []
    for p in preds:
        cid = class_ids.get(p.name)
        if cid is None:
            continue
        out.append(
            Box(
                cid, p.x, p.y, p.w, p.h, origin="model", state="pending", score=p.score, model=model
            )
        )
    return out


def _same_prediction(b: Box, p: Box) -> bool:
    """Whether record box ``b`` is the reviewer's decision on prediction ``p``: scores survive
    every decision (they are 6-decimal values), and a model box keeps the model's score."""
    return (
        b.origin == "model"
        and b.score is not None
        and p.score is not None
        and abs(b.score - p.score) <= _SCORE_TOL
    )


def undecided(boxes: Sequence[Box], preds: Sequence[Box]) -> list[Box]:
    """``preds`` minus those the record ``boxes`` already decided on (one-to-one, by score,
    then the closest box), so a dismissed or accepted suggestion is not offered again."""
    decided = [b for b in boxes if b.origin == "model" and b.state != "pending"]
    if not decided:
        return list(preds)
    free = list(range(len(preds)))
    for b in decided:
        best, best_v = -1, -1.0
        for j in free:
            p = preds[j]
            if _same_prediction(b, p):
                v = iou(b, p)
                if v > best_v:
                    best, best_v = j, v
        if best >= 0:
            free.remove(best)
    return [preds[j] for j in free]


def match(labels: Sequence[Box], preds: Sequence[Box], threshold: float) -> list[int | None]:
    """COCO-style greedy matching: for each prediction (by descending score), the index of the
    label it matches (same class, IoU >= ``threshold``, highest IoU among free labels) or None."""
    out: list[int | None] = [None] * len(preds)
    taken = [False] * len(labels)
    order = sorted(range(len(preds)), key=lambda j: -(preds[j].score or 0.0))
    for j in order:
        p = preds[j]
        best, best_v = -1, threshold
        for i, lab in enumerate(labels):
            if taken[i] or lab.cls != p.cls:
                continue
            v = iou(lab, p)
            if v >= best_v:
                best, best_v = i, v
        if best >= 0:
            taken[best] = True
            out[j] = best
    return out


def suggest(
    boxes: Sequence[Box],
    preds: Sequence[Box],
    params: Params = Params(),
    class_names: Mapping[int, str] | None = None,
    model: str | None = None,
) -> list[Suggestion]:
    """The suggestions for one image.

    ``boxes`` is the image's record as the reviewer sees it (labels, plus decided or pending
    model boxes); ``preds`` the stored predictions as boxes (see :func:`as_boxes`) of run
    ``model``. Labels are
    the live boxes of ``boxes``; indexes in the result refer to ``boxes``. Sorted by kind, then
    by descending score.
    """
    names = class_names or {}

    def name(cls: int) -> str:
        return names.get(cls, f"class {cls}")

    label_idx = [i for i, b in enumerate(boxes) if b.state not in ("rejected", "pending")]
    labels = [boxes[i] for i in label_idx]
    all_preds = list(preds)
    preds = undecided(boxes, all_preds)
    matched = match(labels, preds, params.iou)
    label_taken = [False] * len(labels)
    for m in matched:
        if m is not None:
            label_taken[m] = True
    settled = [b.origin == "model" or b.state == "accepted" for b in labels]
    out: list[Suggestion] = []
    pred_used = [m is not None for m in matched]
    order = sorted(range(len(preds)), key=lambda j: -(preds[j].score or 0.0))

    # wrong class: a confident unmatched prediction whose best overlap is a free label of
    # another class (each label gets at most one such suggestion, the highest-scored one)
    for j in order:
        p = preds[j]
        if pred_used[j] or (p.score or 0.0) < params.min_score:
            continue
        best, best_v = -1, params.iou
        for i, lab in enumerate(labels):
            if label_taken[i] or lab.cls == p.cls:
                continue
            v = iou(lab, p)
            if v >= best_v:
                best, best_v = i, v
        if best < 0:
            continue
        pred_used[j] = True
        label_taken[best] = True
        if settled[best]:
            continue
        lab = labels[best]
        out.append(
            Suggestion(
                "wrong_class",
                label_idx[best],
                lab,
                p,
                p.score or 0.0,
                best_v,
                reason_text("wrong_class", name(lab.cls), name(p.cls), p.score or 0.0, best_v),
                model,
            )
        )

    # loose box: a free label that a free prediction of its class overlaps, but poorly
    for i, lab in enumerate(labels):
        if label_taken[i]:
            continue
        best, best_v = -1, 0.0
        for j in order:
            p = preds[j]
            if pred_used[j] or p.cls != lab.cls:
                continue
            v = iou(lab, p)
            if v > best_v:
                best, best_v = j, v
        if best < 0:
            continue
        pred_used[best] = True
        label_taken[i] = True
        if settled[i]:
            continue
        p = preds[best]
        out.append(
            Suggestion(
                "loose",
                label_idx[i],
                lab,
                p,
                p.score or 0.0,
                best_v,
                reason_text("loose", name(lab.cls), name(p.cls), p.score or 0.0, best_v),
                model,
            )
        )

    # possibly missing: a confident prediction left over that is not a duplicate detection
    for j in order:
        p = preds[j]
        if pred_used[j] or (p.score or 0.0) < params.min_score:
            continue
        # Overlapping a label already (a duplicate of a matched one, or a second opinion on a
        # label another prediction questions): not a missing object.
        if any(iou(lab, p) >= params.iou for lab in labels):
            continue
        out.append(
            Suggestion(
                "missing",
                None,
                None,
                p,
                p.score or 0.0,
                0.0,
                reason_text("missing", "", name(p.cls), p.score or 0.0, 0.0),
                model,
            )
        )

    # possibly spurious: a label no prediction overlaps at any confidence (decided ones count:
    # the model did see something there)
    for i, lab in enumerate(labels):
        if label_taken[i] or settled[i]:
            continue
        if any(iou(lab, p) > 0 for p in all_preds):
            continue
        out.append(
            Suggestion(
                "spurious",
                label_idx[i],
                lab,
                None,
                SPURIOUS_SCORE,
                0.0,
                reason_text("spurious", name(lab.cls), "", SPURIOUS_SCORE, 0.0),
                model,
            )
        )
    rank = {k: n for n, k in enumerate(KINDS)}
    out.sort(key=lambda s: (rank[s.kind], -s.score))
    return out
