"""Review agreement: how often reviewers kept, corrected or threw away the model's pre-labels.

This is the human-in-the-loop signal that mAP cannot give: a model can score well on a frozen
test set while reviewers quietly fix a third of its boxes. For each committed review session
that had a model's pre-labels, per class, it counts what the reviewer did with them (from the
review record in ``session_edit``, which keeps rejected and undecided pre-labels):

* **accepted**: a pre-label kept unchanged (state ``accepted``);
* **edited**: a pre-label moved, resized or re-classed (state ``edited``), with the mean IoU
  between the original prediction and the final box;
* **rejected**: a pre-label thrown away (state ``rejected``);
* **pending**: a pre-label nobody decided on before the commit (state ``pending``);
* **added**: a box a person drew on an image that had the model's pre-labels in play (the
  model had predicted for it), i.e. an object the model missed.

Suggestions on labelled images (:mod:`labeldesk.core.review.suggestions`) are decided with the same
states (:mod:`labeldesk.app.rules`), so they count the same way: accepting a *possibly missing*,
*possibly wrong class* or *loose box* suggestion leaves the model's box ``accepted``, dismissing
one leaves it ``rejected``. A *possibly spurious* suggestion has no model box; its decisions
count on their own:

* **removed**: a label removed on the model's word (a human box kept ``rejected`` and naming
  the model): the model was right that nothing is there;
* **kept**: a label a person confirmed (human box ``accepted``) that no prediction overlaps:
  an object the model missed, so it counts against recall like ``added``.

Boxes an image already had in the session's base version are carried over, not decided in the
session, and are left out (multiset difference of the canonical boxes). A session counts only
when at least one image it reviewed had the model's predictions in play: a session whose source
never covered what was reviewed is manual work.

Why the original prediction is looked up in the prediction cache: an edited box keeps its score
and model but not its old geometry. The session records which model and parameters its
pre-labels came from (``review_session.prelabel_model``/``prelabel_params``), and the cache is
keyed by exactly that, so the predictions the reviewer saw can be read back. Each model box of
an image is matched to one cached prediction, greedily and one-to-one, in three passes: (1) the
same class, geometry and score (accepted, rejected and pending boxes are unchanged copies);
(2) the same score (scores survive an edit and are 6-decimal values, so this almost always
identifies the prediction), highest IoU first; (3) the highest positive IoU. Counts are filed
under the class the model predicted (an edit may have changed it: ``reclassed``). An edited box
with no match (no cache row, say) counts as edited but not in the IoU mean
(``edited_unmatched``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..boxes import Box
from ..canonical import canonical_json
from ..errors import LabelDeskError
from ..store.annotation_sets import load_annotation_set
from ..store.project import Project
from ..store.sessions import ReviewSession

_SCORE_TOL = 5e-7  # scores are stored to 6 decimals


#: The per-session figures of the trend, with the words charts label them by.
TREND_LABELS = {
    "acceptance_rate": "accepted as predicted",
    "precision": "precision (kept, maybe corrected)",
    "recall": "recall (found by the model)",
    "mean_iou": "mean IoU of edited boxes",
}


@dataclass
class Counts:
    """What happened to the pre-labels of one class (or of all classes) in a session."""

    accepted: int = 0
    edited: int = 0
    rejected: int = 0
    pending: int = 0
    added: int = 0
    reclassed: int = 0
    edited_unmatched: int = 0
    removed: int = 0  # labels removed on the model's word ("possibly spurious" accepted)
    kept: int = 0  # labels confirmed although no prediction overlaps ("spurious" dismissed)
    iou_sum: float = 0.0
    iou_n: int = 0

    @property
    def decided(self) -> int:
        return self.accepted + self.edited + self.rejected

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU between an edited box and the prediction it came from."""
        return self.iou_sum / self.iou_n if self.iou_n else None

    @property
    def acceptance_rate(self) -> float | None:
        """Share of the decided pre-labels kept exactly as predicted."""
        return self.accepted / self.decided if self.decided else None

    @property
    def precision(self) -> float | None:
        """Share of the decided pre-labels that were real objects (kept, perhaps corrected)."""
        return (self.accepted + self.edited) / self.decided if self.decided else None

    @property
    def recall(self) -> float | None:
        """Share of the objects found by the model rather than drawn (or kept) by a person."""
        found = self.accepted + self.edited
        missed = self.added + self.kept
        return found / (found + missed) if found + missed else None

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "edited": self.edited,
            "rejected": self.rejected,
            "pending": self.pending,
            "added": self.added,
            "reclassed": self.reclassed,
            "edited_unmatched": self.edited_unmatched,
            "removed": self.removed,
            "kept": self.kept,
            "mean_iou": self.mean_iou,
            "acceptance_rate": self.acceptance_rate,
            "precision": self.precision,
            "recall": self.recall,
        }


@dataclass
class SessionAgreement:
    """The agreement figures of one committed review session."""

    session: int
    version: str
    seq: int  # the version's sequence number: commit order
    committed: str
    author: str
    model: str | None
    model_name: str | None
    params: str | None
    images: int = 0
    classes: dict[str, Counts] = field(default_factory=dict)
    totals: Counts = field(default_factory=Counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "version": self.version,
            "seq": self.seq,
            "committed": self.committed,
            "author": self.author,
            "model": self.model,
            "model_name": self.model_name,
            "params": json.loads(self.params) if self.params else None,
            "images": self.images,
            "totals": self.totals.to_json(),
            "classes": {k: v.to_json() for k, v in sorted(self.classes.items())},
        }


@dataclass
class AgreementReport:
    sessions: list[SessionAgreement]

    def trend(self) -> list[dict[str, Any]]:
        """One point per session in commit order: the rates a lead watches over time."""
        return [
            {
                "session": s.session,
                "version": s.version,
                "committed": s.committed,
                "model": s.model_name or s.model,
                "decided": s.totals.decided,
                "acceptance_rate": s.totals.acceptance_rate,
                "precision": s.totals.precision,
                "recall": s.totals.recall,
                "mean_iou": s.totals.mean_iou,
            }
            for s in self.sessions
        ]

    def totals(self) -> Counts:
        out = Counts()
        for s in self.sessions:
            out.add(s.totals)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": [s.to_json() for s in self.sessions],
            "trend": self.trend(),
            "totals": self.totals().to_json(),
        }


def resolve_model(project: Project, ref: str) -> tuple[str, str]:
    """A registered model by id, name or unique id prefix: ``(id, name)``."""
    models = project.db.execute("SELECT id, name FROM model ORDER BY name").fetchall()
    hits = [m for m in models if ref in m] or [m for m in models if m[0].startswith(ref)]
    if len(hits) == 1:
        return hits[0][0], hits[0][1]
    if not hits:
        known = ", ".join(m[1] for m in models) or "none"
        raise LabelDeskError(f"no model {ref!r}; registered models: {known}")
    raise LabelDeskError(f"{ref!r} names more than one model: {', '.join(m[1] for m in hits)}")


def iou(a: Box, b: tuple[float, float, float, float]) -> float:
    """Intersection over union of a box and an (x, y, w, h) rectangle."""
    bx, by, bw, bh = b
    iw = min(a.x + a.w, bx + bw) - max(a.x, bx)
    ih = min(a.y + a.h, by + bh) - max(a.y, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a.w * a.h + bw * bh - inter)


def agreement(project: Project, model: str | None = None) -> AgreementReport:
    """Agreement of every committed session that had pre-labels, in commit order.

    ``model`` (id, id prefix or name) keeps only the sessions whose pre-labels came from it.
    """
    model_id = resolve_model(project, model)[0] if model else None
    names = dict(project.db.execute("SELECT id, name FROM model").fetchall())
    rows = project.db.execute(
        "SELECT s.id, s.version, v.seq, v.created, s.author, s.prelabel_model, "
        "s.prelabel_params FROM review_session s JOIN version v ON v.id = s.version "
        "WHERE s.status = 'committed' ORDER BY v.seq"
    ).fetchall()
    out = []
    for sid, vid, seq, created, author, pmodel, pparams in rows:
        s = _session(project, sid, pmodel, pparams)
        if s is None:
            continue
        s.version, s.seq, s.committed, s.author = vid, seq, created, author
        s.model_name = names.get(s.model) if s.model else None
        if model_id is None or s.model == model_id:
            out.append(s)
    return AgreementReport(out)


def _session(
    project: Project, sid: int, model: str | None, params: str | None
) -> SessionAgreement | None:
    """Count one session, or None when no model's pre-labels were involved."""
    db = project.db
    session = ReviewSession(project, sid)
    class_names = session.classes()
    result = SessionAgreement(sid, "", 0, "", "", model, None, params)
    box_models: Counter[str] = Counter()
    for image, text in db.execute(
        "SELECT image, boxes FROM session_edit WHERE session = ? ORDER BY seq", [sid]
    ):
        boxes = _decided_here(session, image, [Box.from_dict(d) for d in json.loads(text)])
        preds = _cached(project, model, params, image)
        counted = _count_image(boxes, preds, class_names, result)
        box_models.update(b.model for b in boxes if b.origin == "model" and b.model)
        result.images += counted
    if model is None:
        if not box_models:
            return None
        result.model = box_models.most_common(1)[0][0]
    elif result.images == 0:
        return None  # a source was recorded, but no image reviewed here had its predictions
    for c in result.classes.values():
        result.totals.add(c)
    return result


def _decided_here(session: ReviewSession, image: str, boxes: list[Box]) -> list[Box]:
    """The boxes of an edit minus those carried over unchanged from the base version."""
    entry = session.base_entry(image)
    base = load_annotation_set(session.project.db, entry.annset) if entry else []
    if not base:
        return boxes
    left = Counter(canonical_json(b.to_dict()) for b in base)
    out = []
    for b in boxes:
        key = canonical_json(b.to_dict())
        if left[key] > 0:
            left[key] -= 1
        else:
            out.append(b)
    return out


def _cached(
    project: Project, model: str | None, params: str | None, image: str
) -> list[dict[str, Any]] | None:
    """The cached predictions the session showed for ``image`` (None: none were cached)."""
    if not model or params is None:
        return None
    row = project.db.execute(
        "SELECT boxes FROM prediction WHERE model = ? AND params = ? AND image = ?",
        [model, params, image],
    ).fetchone()
    return json.loads(row[0]) if row else None


def _count_image(
    boxes: list[Box],
    preds: list[dict[str, Any]] | None,
    class_names: dict[int, str],
    out: SessionAgreement,
) -> int:
    """Add one image's decisions to ``out``; returns 1 if the image had pre-labels in play."""
    model_boxes = [b for b in boxes if b.origin == "model"]
    in_play = preds is not None or bool(model_boxes)

    def counts(name: str) -> Counts:
        return out.classes.setdefault(name, Counts())

    def name_of(cls: int) -> str:
        return class_names.get(cls, f"class {cls}")

    match = _match(model_boxes, preds or [], name_of)
    for b, pred in zip(model_boxes, match, strict=True):
        predicted = pred["name"] if pred else name_of(b.cls)
        c = counts(predicted)
        if b.state == "accepted":
            c.accepted += 1
        elif b.state == "edited":
            c.edited += 1
            if pred is None:
                c.edited_unmatched += 1
            else:
                c.iou_sum += iou(b, (pred["x"], pred["y"], pred["w"], pred["h"]))
                c.iou_n += 1
                c.reclassed += pred["name"] != name_of(b.cls)
        elif b.state == "rejected":
            c.rejected += 1
        elif b.state == "pending":
            c.pending += 1
    if in_play:
        for b in boxes:
            if b.origin != "human":
                continue
            if b.state == "added":
                counts(name_of(b.cls)).added += 1
            elif b.state == "rejected" and b.model:
                counts(name_of(b.cls)).removed += 1
            elif b.state == "accepted" and not any(
                iou(b, (p["x"], p["y"], p["w"], p["h"])) > 0 for p in preds or []
            ):
                counts(name_of(b.cls)).kept += 1
    return int(in_play)


def _match(
    boxes: list[Box], preds: list[dict[str, Any]], name_of: Any
) -> list[dict[str, Any] | None]:
    """Each model box's original prediction (or None), one-to-one; see the module docstring."""
    found: list[dict[str, Any] | None] = [None] * len(boxes)
    free = set(range(len(preds)))
    for i, b in enumerate(boxes):  # pass 1: unchanged copies
        for j in sorted(free):
            p = preds[j]
            same = (p["x"], p["y"], p["w"], p["h"]) == (b.x, b.y, b.w, b.h)
            if same and p["name"] == name_of(b.cls) and _same_score(p, b):
                found[i] = p
                free.discard(j)
                break
    for need_score in (True, False):  # pass 2: same score; pass 3: any
        pairs = []
        for i, b in enumerate(boxes):
            if found[i] is not None:
                continue
            for j in free:
                p = preds[j]
                if need_score and not _same_score(p, b):
                    continue
                v = iou(b, (p["x"], p["y"], p["w"], p["h"]))
                if v > 0 or need_score:
                    pairs.append((-v, i, j))
        for _, i, j in sorted(pairs):
            if found[i] is None and j in free:
                found[i] = preds[j]
                free.discard(j)
    return found


def _same_score(p: dict[str, Any], b: Box) -> bool:
    return b.score is not None and abs(float(p["score"]) - float(b.score)) <= _SCORE_TOL
