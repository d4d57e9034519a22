"""The review queue: images ranked by how likely their labels are wrong.

Each image gets reasons, each with a kind, a class, a box and a score:

* the suggestions of :mod:`labeldesk.core.suggestions` on a labelled image (``missing``,
  ``wrong_class``, ``loose``, ``spurious``), from the source run (the session's, or the
  newest run covering the version);
* ``low_confidence``: a pending pre-label on an unlabelled image scoring below
  ``Params.low_score`` (a confident pre-label is probably right; a doubtful one needs a look);
* ``disagreement``: where two or more models have runs, a confident box of one model that the
  newest run of another model does not have (same class, IoU >= ``Params.iou``).

A reason weighs ``KIND_WEIGHT[kind] * evidence`` where evidence is the model's score (for
``low_confidence``, 1 - score: the less sure, the more likely wrong); an image's priority is the
chance that at least one reason is a real error if each were independent,
``1 - prod(1 - weight)``, in [0, 1]. So one confident "missing" outranks several weak hints, and
the more reasons, the higher. Ties go to the image name.

:func:`rank` is a plain function on its own connection's project: the window runs it off the
GUI thread. ``bench/queue_quality.py`` measures how well it finds injected errors (and compares
cleanlab's object-detection label-quality score) and how long 100,000 images take.

API: :data:`KIND_WEIGHT`, :class:`Params`, :class:`Reason`, :class:`QueueItem`,
:func:`weight`, :func:`priority`, :func:`image_reasons`, :func:`source_run`, :func:`rank`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import predictions
from . import suggestions as sg
from .boxes import Box
from .errors import LabelDeskError
from .manifest import ManifestStore
from .project import Project
from .versions import MAIN, resolve

#: How much each kind of reason counts, times its evidence. Suggestions backed by a confident
#: detection count fully; silence ("spurious") and one model's word against another's less.
KIND_WEIGHT: dict[str, float] = {
    "missing": 1.0,
    "wrong_class": 1.0,
    "loose": 0.9,
    "spurious": 0.6,
    "low_confidence": 0.5,
    "disagreement": 0.5,
}
KIND_WORDS: dict[str, str] = {
    **sg.KIND_WORDS,
    "low_confidence": "low-confidence pre-label",
    "disagreement": "models disagree",
}


@dataclass(frozen=True, slots=True)
class Params:
    iou: float = 0.5  # matching threshold (suggestions and model-vs-model)
    min_score: float = 0.5  # a confident prediction
    low_score: float = 0.5  # pending pre-labels below this are a reason to look

    def suggestion_params(self) -> sg.Params:
        return sg.Params(iou=self.iou, min_score=self.min_score)


@dataclass(frozen=True, slots=True)
class Reason:
    kind: str
    cls: str  # class name
    box: tuple[float, float, float, float]  # x, y, w, h of the box to look at
    score: float  # the model's confidence (spurious: sg.SPURIOUS_SCORE)
    model: str | None
    text: str

    @property
    def weight(self) -> float:
        return weight(self.kind, self.score)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "class": self.cls,
            "box": list(self.box),
            "score": round(self.score, 6),
            "model": self.model,
            "text": self.text,
        }


@dataclass(slots=True)
class QueueItem:
    image: str
    name: str
    priority: float
    reasons: list[Reason]

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "name": self.name,
            "priority": round(self.priority, 6),
            "reasons": [r.to_json() for r in self.reasons],
        }


def weight(kind: str, score: float) -> float:
    evidence = 1.0 - score if kind == "low_confidence" else score
    return KIND_WEIGHT[kind] * min(1.0, max(0.0, evidence))


def priority(reasons: Iterable[Reason]) -> float:
    keep = 1.0
    for r in reasons:
        keep *= 1.0 - r.weight
    return 1.0 - keep


def _xywh(b: Box) -> tuple[float, float, float, float]:
    return (b.x, b.y, b.w, b.h)


def image_reasons(
    labels: Sequence[Box],
    preds: Sequence[Box],
    *,
    labelled: bool,
    class_names: Mapping[int, str],
    params: Params = Params(),
    model: str | None = None,
    others: Mapping[str, Sequence[Box]] | None = None,
) -> list[Reason]:
    """The reasons of one image, strongest first.

    ``labels``: the image's record (base labels, or the session's edit); ``preds``: the source
    run's predictions as boxes; ``labelled``: whether the base version has labels for it (else
    the predictions are pending pre-labels, and ``labels`` may hold them decided or pending);
    ``others``: model id -> boxes of other models' runs, for disagreement.
    """

    def name(cls: int) -> str:
        return class_names.get(cls, f"class {cls}")

    out: list[Reason] = []
    if labelled:
        for s in sg.suggest(labels, preds, params.suggestion_params(), class_names, model):
            out.append(Reason(s.kind, name(s.cls), _xywh(s.box), s.score, model, s.reason))
    else:
        record = [b for b in labels if b.origin == "model"]
        pending = [b for b in record if b.state == "pending"] if record else list(preds)
        for b in pending:
            score = b.score if b.score is not None else 0.0
            if score < params.low_score:
                out.append(
                    Reason(
                        "low_confidence",
                        name(b.cls),
                        _xywh(b),
                        score,
                        model,
                        f"pending {name(b.cls)} pre-label at {score:.2f}",
                    )
                )
    if others:
        runs = {model or "": list(preds), **{m: list(v) for m, v in others.items()}}
        for a, a_boxes in runs.items():
            for b, b_boxes in runs.items():
                if a == b:
                    continue
                out.extend(_disagreement(a, a_boxes, b, b_boxes, params, name))
    out.sort(key=lambda r: -r.weight)
    return out


def _disagreement(
    a: str, a_boxes: Sequence[Box], b: str, b_boxes: Sequence[Box], params: Params, name: Any
) -> list[Reason]:
    """Confident boxes of model ``a`` that model ``b`` does not have."""
    out = []
    for p in a_boxes:
        score = p.score or 0.0
        if score < params.min_score:
            continue
        if any(q.cls == p.cls and sg.iou(p, q) >= params.iou for q in b_boxes):
            continue
        out.append(
            Reason(
                "disagreement",
                name(p.cls),
                _xywh(p),
                score,
                a or None,
                f"{name(p.cls)} ({score:.2f}) found by one model and not by the other",
            )
        )
    return out


def source_run(
    project: Project, version_id: str, model: str | None = None
) -> predictions.Run | None:
    """The run the queue ranks by: the newest run of ``model`` (name, id or id prefix)
    covering the version, else the default source of a new session (the newest committed
    session's, else the newest run)."""
    from .agreement import resolve_model
    from .sessions import default_source

    db = project.db
    covering = predictions.runs(db, predictions.version_images(db, version_id))
    if model is not None:
        model_id = resolve_model(project, model)[0]
        mine = [r for r in covering if r.model == model_id]
        if not mine:
            raise LabelDeskError(
                f"model {model!r} has no stored predictions for this version; "
                "run `labeldesk prelabel --model ...` first"
            )
        return mine[0]
    source = default_source(project, version_id)
    if source is None:
        return None
    return next(r for r in covering if (r.model, r.params) == source)


def rank(
    project: Project,
    version: str = MAIN,
    *,
    model: str | None = None,
    params: Params = Params(),
    limit: int | None = None,
    edits: Mapping[str, Sequence[Box]] | None = None,
    include_empty: bool = False,
) -> list[QueueItem]:
    """Every image of ``version`` with at least one reason, highest priority first.

    ``model`` picks the source run (see :func:`source_run`); ``edits`` (image -> boxes, e.g. a
    review session's record and the window's unsaved edits) replace the version's labels of
    those images; ``include_empty`` keeps images without reasons (priority 0) at the end.
    Reads only: safe on a worker thread with its own connection.
    """
    db = project.db
    v = resolve(db, version)
    run = source_run(project, v.id, model)
    class_names = dict(v.class_names)
    by_name = {n: c for c, n in class_names.items()}
    store = ManifestStore(db)
    tree = store.tree(v.tree)
    entries = {
        sha: raw
        for bucket in tree.buckets.values()
        for sha, raw in store.raw_bucket(bucket).items()
    }
    names = dict(db.execute("SELECT sha256, path FROM image_source ORDER BY id"))
    preds: dict[str, list[Box]] = {}
    others: dict[str, dict[str, list[Box]]] = {}
    if run is not None:
        preds = _load_run(db, run, by_name, entries)
        newest_per_model: dict[str, predictions.Run] = {}
        for r in predictions.runs(db, set(entries)):
            if r.model != run.model:
                newest_per_model.setdefault(r.model, r)
        for r in newest_per_model.values():
            for sha, boxes in _load_run(db, r, by_name, entries).items():
                others.setdefault(sha, {})[r.model] = boxes
    annsets = {raw[0] for sha, raw in entries.items() if sha in preds or sha in others}
    labels_of = _annotation_sets(db, annsets)
    out: list[QueueItem] = []
    edits = edits or {}
    for sha, raw in entries.items():
        base = labels_of.get(raw[0], [])
        p = preds.get(sha)
        o = others.get(sha)
        reasons: list[Reason] = []
        if p is not None or o:
            record = list(edits[sha]) if sha in edits else base
            reasons = image_reasons(
                record,
                p or [],
                labelled=bool(base),
                class_names=class_names,
                params=params,
                model=run.model if run else None,
                others=o,
            )
        if not reasons and not include_empty:
            continue
        meta = raw[3] if len(raw) > 3 else {}
        name = meta.get("file_name") or names.get(sha, sha).rsplit("/", 1)[-1]
        out.append(QueueItem(sha, name, priority(reasons), reasons))
    out.sort(key=lambda q: (-q.priority, q.name, q.image))
    return out[:limit] if limit is not None else out


def _load_run(
    db: Any, run: predictions.Run, by_name: Mapping[str, int], images: Mapping[str, Any]
) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    for image, text in db.execute(
        "SELECT image, boxes FROM prediction WHERE model = ? AND params = ?",
        [run.model, predictions.params_key(run.params)],
    ):
        if image not in images:
            continue
        out[image] = sg.as_boxes(
            (predictions.Prediction(**d) for d in json.loads(text)), by_name, run.model
        )
    return out


def _annotation_sets(db: Any, hashes: set[str]) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    wanted = sorted(hashes)
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for h, text in db.execute(
            f"SELECT hash, boxes FROM annotation_set WHERE hash IN ({marks})", chunk
        ):
            out[h] = [Box.from_dict(d) for d in json.loads(text)]
    return out
