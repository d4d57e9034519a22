"""Review rules: what each reviewer action does to an image's boxes, without Qt.

Every function takes the image's boxes as the reviewer sees them and returns the new list (the
input is never changed), so the window only turns a key or a drag into one call and pushes the
result as an undoable edit. States follow :mod:`labeldesk.core.boxes`: a pre-label someone keeps
is ``accepted``, one they change is ``edited``, one they throw away is ``rejected`` and stays in
the record (agreement counts it); a box a person drew is ``added`` and stays ``added`` when
moved or re-classed; a label a person deletes is gone.

Suggestion decisions (:mod:`labeldesk.core.review.suggestions`) are recorded with the same
states, so agreement counts them like pre-labels (docs/prelabel.md, "Suggestions"):

============  =========================================  =========================================
kind          accept                                     dismiss
============  =========================================  =========================================
missing       the model's box added, ``accepted``        the model's box kept ``rejected``
wrong_class   the label becomes the model's box of the   the label ``accepted`` (confirmed), the
              model's class on the label's geometry,     model's box kept ``rejected``
              ``accepted``
loose         the label replaced by the model's box,     the label ``accepted`` (confirmed), the
              ``accepted``                               model's box kept ``rejected``
spurious      the label kept ``rejected`` (not a label   the label ``accepted`` (confirmed)
              any more), with the model named
============  =========================================  =========================================

API: :func:`accept`, :func:`accept_box`, :func:`accept_all`, :func:`reject`,
:func:`reject_all`, :func:`reclass`, :func:`move`, :func:`draw`, :func:`accept_suggestion`,
:func:`dismiss_suggestion`, :func:`is_decided`.
"""

from __future__ import annotations

from collections.abc import Sequence

from labeldesk.core.boxes import Box
from labeldesk.core.review.suggestions import Suggestion, iou


def accept_box(b: Box, user: str | None) -> Box:
    """A pending pre-label becomes ``accepted``; any other box is left as it is."""
    return b.with_(state="accepted", author=user) if b.state == "pending" else b


def accept(boxes: Sequence[Box], index: int, user: str | None) -> list[Box]:
    """Accept the box at ``index`` (a no-op on boxes that are not pending)."""
    out = list(boxes)
    out[index] = accept_box(out[index], user)
    return out


def accept_all(boxes: Sequence[Box], user: str | None) -> list[Box]:
    """Accept every pending pre-label (Space)."""
    return [accept_box(b, user) for b in boxes]


def reject(boxes: Sequence[Box], index: int, user: str | None) -> list[Box]:
    """Reject a model box (kept in the record as ``rejected``) or delete a person's box."""
    out = list(boxes)
    b = out[index]
    if b.origin == "model":
        out[index] = b.with_(state="rejected", author=user)
    else:
        del out[index]
    return out


def reject_all(boxes: Sequence[Box], user: str | None) -> list[Box]:
    """Reject every pending pre-label; decided boxes stay as they are."""
    return [b.with_(state="rejected", author=user) if b.state == "pending" else b for b in boxes]


def _changed_state(b: Box) -> str:
    # A person's own box stays "added" whatever they do to it; anything else they change was
    # proposed by someone else (model or import) and is now "edited".
    return "added" if b.state == "added" else "edited"


def reclass(boxes: Sequence[Box], index: int, cls: int, user: str | None) -> list[Box]:
    """Give the box at ``index`` class ``cls`` (unchanged when it already has it)."""
    out = list(boxes)
    b = out[index]
    if b.cls != cls:
        out[index] = b.with_(cls=cls, state=_changed_state(b), author=user)
    return out


def move(
    boxes: Sequence[Box], index: int, rect: tuple[float, float, float, float], user: str | None
) -> list[Box]:
    """Move or resize the box at ``index`` to ``rect`` = (x, y, w, h)."""
    out = list(boxes)
    b = out[index]
    x, y, w, h = rect
    out[index] = b.with_(x=x, y=y, w=w, h=h, state=_changed_state(b), author=user)
    return out


def draw(
    boxes: Sequence[Box], cls: int, rect: tuple[float, float, float, float], user: str | None
) -> list[Box]:
    """Add a box a person drew; it goes last (the window selects ``len(result) - 1``)."""
    x, y, w, h = rect
    return [*boxes, Box(cls, x, y, w, h, origin="human", state="added", author=user)]


# -- suggestions -------------------------------------------------------------------------------
def _label_at(boxes: Sequence[Box], s: Suggestion) -> int:
    """Where the suggestion's label is now: its index if unchanged, else the equal box."""
    assert s.label_box is not None
    if s.label is not None and s.label < len(boxes) and boxes[s.label] == s.label_box:
        return s.label
    for i, b in enumerate(boxes):
        if b == s.label_box:
            return i
    raise ValueError("the suggestion's label is no longer among the image's boxes")


def _confirmed(b: Box, user: str | None) -> Box:
    return b.with_(state="accepted", author=user)


def accept_suggestion(boxes: Sequence[Box], s: Suggestion, user: str | None) -> list[Box]:
    """Do what the suggestion proposes (see the table in the module docstring)."""
    out = list(boxes)
    if s.kind == "missing":
        assert s.prediction is not None
        out.append(s.prediction.with_(state="accepted", author=user))
        return out
    i = _label_at(out, s)
    lab = out[i]
    if s.kind == "wrong_class":
        assert s.prediction is not None
        # The person's geometry, the model's class: the label was right where it was.
        out[i] = s.prediction.with_(
            x=lab.x, y=lab.y, w=lab.w, h=lab.h, state="accepted", author=user
        )
    elif s.kind == "loose":
        assert s.prediction is not None
        out[i] = s.prediction.with_(state="accepted", author=user)
    elif s.kind == "spurious":
        out[i] = lab.with_(state="rejected", author=user, model=s.model)
    else:  # pragma: no cover - Kind is closed
        raise ValueError(f"unknown suggestion kind {s.kind!r}")
    return out


def dismiss_suggestion(boxes: Sequence[Box], s: Suggestion, user: str | None) -> list[Box]:
    """Keep the labels as they are, and record that a person said so."""
    out = list(boxes)
    if s.label_box is not None:
        i = _label_at(out, s)
        out[i] = _confirmed(out[i], user)
    if s.prediction is not None:
        out.append(s.prediction.with_(state="rejected", author=user))
    return out


def is_decided(boxes: Sequence[Box], s: Suggestion) -> bool:
    """Whether ``boxes`` already hold a decision on ``s`` (its model box decided, or its label
    confirmed or removed)."""
    if s.prediction is not None:
        p = s.prediction
        for b in boxes:
            if (
                b.origin == "model"
                and b.state != "pending"
                and b.score is not None
                and p.score is not None
                and abs(b.score - p.score) <= 5e-7
                and (iou(b, p) > 0 or s.kind == "wrong_class")
            ):
                return True
        return False
    assert s.label_box is not None
    return s.label_box not in boxes
