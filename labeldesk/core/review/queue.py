"""The review queue: images ranked by how likely their labels are wrong.

Each image gets reasons, each with a kind, a class, a box and a score:

* the suggestions of :mod:`labeldesk.core.review.suggestions` on a labelled image (``missing``,
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

import gc
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from ..boxes import Box
from ..errors import LabelDeskError
from ..inference import predictions
from ..store.manifest import ManifestStore
from ..store.project import Project
from ..store.versions import MAIN, resolve
from . import suggestions as sg

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
        for a_id, a_boxes in runs.items():
            for b_id, b_boxes in runs.items():
                if a_id != b_id:
                    out.extend(_disagreement(a_id, a_boxes, b_id, b_boxes, params, name))
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
    project: Project,
    version_id: str,
    model: str | None = None,
    covering: list[predictions.Run] | None = None,
) -> predictions.Run | None:
    """The run the queue ranks by: the newest run of ``model`` (name, id or id prefix)
    covering the version, else the default source of a new session (the newest committed
    session's, else the newest run). ``covering``: the runs covering the version, if known."""
    from ..store.sessions import default_source
    from ..validation.agreement import resolve_model

    db = project.db
    if covering is None:
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
    source = default_source(project, version_id, covering)
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
    vectorised: bool = True,
    source: tuple[str, Mapping[str, Any]] | None = None,
) -> list[QueueItem]:
    """Every image of ``version`` with at least one reason, highest priority first.

    ``model`` picks the source run (see :func:`source_run`), or ``source`` gives it exactly
    as ``(model id, params)`` (a review session's); ``edits`` (image -> boxes, e.g. a
    review session's record and the window's unsaved edits) replace the version's labels of
    those images; ``include_empty`` keeps images without reasons (priority 0) at the end.
    Reads only: safe on a worker thread with its own connection.

    Most images are ranked on numpy arrays (``vectorised``); images the arrays cannot settle
    exactly (an ambiguous match, an edit, other models' runs) go through
    :func:`image_reasons`, which defines the result: both give the same ranking (tested).
    """
    with _collector_paused():
        return _rank(
            project, version, model, params, limit, edits, include_empty, vectorised, source
        )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Ranking 100,000 images makes a few hundred thousand objects (entries, reasons, queue
    items) that hold no reference cycles; as they pile up, Python's cyclic collector walks the
    whole heap again and again, which cost a third of the ranking's time. Paused meanwhile
    (process-wide, a second or two; left off if someone else had turned it off)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _rank(
    project: Project,
    version: str,
    model: str | None,
    params: Params,
    limit: int | None,
    edits: Mapping[str, Sequence[Box]] | None,
    include_empty: bool,
    vectorised: bool,
    source: tuple[str, Mapping[str, Any]] | None,
) -> list[QueueItem]:
    db = project.db
    v = resolve(db, version)
    class_names = dict(v.class_names)
    by_name = {n: c for c, n in class_names.items()}
    store = ManifestStore(db)
    entries = _entries(db, store, v)
    covering = predictions.runs(db, set(entries))
    if source is not None:
        wanted_run = (source[0], dict(source[1]))
        run = next((r for r in covering if (r.model, r.params) == wanted_run), None)
    else:
        run = source_run(project, v.id, model, covering)
    edits = {sha: boxes for sha, boxes in (edits or {}).items() if sha in entries}
    reasons_of: dict[str, list[Reason]] = {}
    priority_of: dict[str, float] = {}  # where known already (the same float priority() gives)
    if run is not None:
        others_runs: dict[str, predictions.Run] = {}
        for r in covering:
            if r.model != run.model:
                others_runs.setdefault(r.model, r)  # runs() is newest first
        other_images: set[str] = set()
        for r in others_runs.values():
            other_images |= predictions.cached_images(db, r.model, r.params)
        exact = set(edits) | (other_images & set(entries))
        # Reviewed images without labels in the version and nothing pending left (pre-labels
        # all decided) have no reason unless another model disagrees: skip them outright, so a
        # long session does not push thousands of images through the per-image path.
        counts = store.n_boxes_of(entries[sha][0] for sha in edits) if edits else {}
        done = {
            sha
            for sha, boxes in edits.items()
            if counts[entries[sha][0]] == 0
            and sha not in other_images
            and not any(b.state == "pending" for b in boxes)
        }
        exact -= done
        if vectorised:
            fast, fast_priorities = _vector_reasons(
                db, v.id, run, entries, class_names, by_name, params
            )
            reasons_of.update(fast)
            priority_of.update(fast_priorities)
            for sha in exact | done:  # ranked otherwise below, or without reasons
                reasons_of.pop(sha, None)
                priority_of.pop(sha, None)
        else:
            exact = set(entries)
        reasons_of.update(
            _exact_reasons(
                db, run, others_runs, entries, exact, edits, class_names, by_name, params
            )
        )
    # the first path each image was imported from, as the window shows it (the last row wins)
    names = dict(db.execute("SELECT sha256, path FROM image_source ORDER BY id DESC"))
    out: list[QueueItem] = []
    # (the sort below orders everything: images unique, so which loop runs does not matter)
    for sha in entries if include_empty else reasons_of:
        reasons = reasons_of.get(sha) or []
        if not reasons and not include_empty:
            continue
        raw = entries[sha]
        meta = raw[3] if len(raw) > 3 else {}
        name = meta.get("file_name") or os.path.basename(names.get(sha, sha))
        p = priority_of.get(sha)
        # a fresh list: a caller may edit its queue's reasons, never the kept ones
        out.append(QueueItem(sha, name, priority(reasons) if p is None else p, list(reasons)))
    # by priority, highest first, then name and hash: three stable sorts on plain keys are
    # several times faster than one on tuples at 100,000 images
    out.sort(key=attrgetter("image"))
    out.sort(key=attrgetter("name"))
    out.sort(key=attrgetter("priority"), reverse=True)
    return out[:limit] if limit is not None else out


_ENTRIES: dict[tuple[str, str], dict[str, list]] = {}
_CACHE_SIZE = 2


def _entries(db: Any, store: ManifestStore, v: Any) -> dict[str, list]:
    """image -> stored entry JSON of version ``v``; kept, since a version never changes."""
    key = (db.execute("PRAGMA database_list").fetchone()[2], v.id)
    hit = _ENTRIES.get(key)
    if hit is None:
        tree = store.tree(v.tree)
        hit = {
            sha: raw
            for bucket in tree.buckets.values()
            for sha, raw in store.raw_bucket(bucket).items()
        }
        while len(_ENTRIES) >= _CACHE_SIZE:
            _ENTRIES.pop(next(iter(_ENTRIES)))
        _ENTRIES[key] = hit
    return hit


def _exact_reasons(
    db: Any,
    run: predictions.Run,
    others_runs: Mapping[str, predictions.Run],
    entries: Mapping[str, Any],
    images: set[str],
    edits: Mapping[str, Sequence[Box]],
    class_names: Mapping[int, str],
    by_name: Mapping[str, int],
    params: Params,
) -> dict[str, list[Reason]]:
    """:func:`image_reasons` on Box objects for ``images``: the definition of the ranking."""
    if not images:
        return {}
    wanted = {sha: entries[sha] for sha in images if sha in entries}
    preds = _load_run(db, run, by_name, wanted)
    others: dict[str, dict[str, list[Box]]] = {}
    for r in others_runs.values():
        for sha, boxes in _load_run(db, r, by_name, wanted).items():
            others.setdefault(sha, {})[r.model] = boxes
    labels_of = _annotation_sets(db, {raw[0] for raw in wanted.values()})
    out: dict[str, list[Reason]] = {}
    for sha, raw in wanted.items():
        p, o = preds.get(sha), others.get(sha)
        if p is None and not o:
            continue
        base = labels_of.get(raw[0], [])
        record = list(edits[sha]) if sha in edits else base
        reasons = image_reasons(
            record,
            p or [],
            labelled=bool(base),
            class_names=class_names,
            params=params,
            model=run.model,
            others=o,
        )
        if reasons:
            out[sha] = reasons
    return out


def _load_run(
    db: Any, run: predictions.Run, by_name: Mapping[str, int], images: Mapping[str, Any]
) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    key = predictions.params_key(run.params)
    if len(images) > 5000:
        rows = db.execute(
            "SELECT image, boxes FROM prediction WHERE model = ? AND params = ?", [run.model, key]
        )
    else:  # a few images (the exact path's usual share): look them up by key
        wanted = sorted(images)
        rows = (
            row
            for i in range(0, len(wanted), 500)
            for row in db.execute(
                "SELECT image, boxes FROM prediction WHERE model = ? AND params = ? AND image IN "
                f"({','.join('?' * len(wanted[i : i + 500]))})",
                [run.model, key, *wanted[i : i + 500]],
            )
        )
    for image, text in rows:
        if image not in images:
            continue
        out[image] = sg.as_boxes(
            (predictions.Prediction(**d) for d in json.loads(text)), by_name, run.model
        )
    return out


def _annotation_sets(db: Any, hashes: set[str]) -> dict[str, list[Box]]:
    from ..store.annotation_sets import annotation_set_texts

    return {
        h: [Box.from_dict(d) for d in json.loads(text)]
        for h, text in annotation_set_texts(db, hashes)
    }


def _vector_reasons(
    db: Any,
    version_id: str,
    run: predictions.Run,
    entries: Mapping[str, Any],
    class_names: Mapping[int, str],
    by_name: Mapping[str, int],
    params: Params,
) -> tuple[dict[str, list[Reason]], dict[str, float]]:
    """Reasons and priorities of the run's images as the version has them (kept: the caller
    copies what it hands out and drops what it ranks otherwise, e.g. edited images).

    Images are independent of each other, so the reasons of every image are computed once per
    thresholds and kept with the arrays. Images the arrays cannot settle go through the exact
    rule here, and are kept too.
    """
    from . import queue_arrays  # numpy's share of the work: loaded when a queue is ranked

    arrays = queue_arrays.arrays(db, version_id, run, entries, by_name)
    hit = arrays.by_params.get(params)
    if hit is None:
        found, unsure, priorities = queue_arrays.array_reasons(
            arrays, class_names, params, run.model
        )
        unsure |= arrays.unsure
        exact = _exact_reasons(db, run, {}, entries, unsure, {}, class_names, by_name, params)
        found.update(exact)
        priorities.update((sha, priority(r)) for sha, r in exact.items())
        hit = (found, priorities)
        if len(arrays.by_params) >= 4:
            arrays.by_params.clear()
        arrays.by_params[params] = hit
    return hit


def clear_caches() -> None:
    """Forget every kept entry list and array (as a fresh process starts): for benchmarks."""
    from . import queue_arrays

    _ENTRIES.clear()
    queue_arrays._CACHE.clear()
