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

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
            skip = exact | done
            fast, unsure = _vector_reasons(
                db, v.id, run, entries, skip, class_names, by_name, params
            )
            reasons_of.update(fast)
            exact |= unsure
        else:
            exact = set(entries)
        reasons_of.update(
            _exact_reasons(
                db, run, others_runs, entries, exact, edits, class_names, by_name, params
            )
        )
    names: dict[str, str] = {}
    for sha, path in db.execute("SELECT sha256, path FROM image_source ORDER BY id DESC"):
        names[sha] = path  # the first path it was imported from, as the window shows it
    out: list[QueueItem] = []
    for sha, raw in entries.items():
        reasons = reasons_of.get(sha, [])
        if not reasons and not include_empty:
            continue
        meta = raw[3] if len(raw) > 3 else {}
        name = meta.get("file_name") or os.path.basename(names.get(sha, sha))
        out.append(QueueItem(sha, name, priority(reasons), reasons))
    out.sort(key=lambda q: (-q.priority, q.name, q.image))
    return out[:limit] if limit is not None else out


_ENTRIES: dict[tuple[str, str], dict[str, list]] = {}


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
    from ..store.versions import annotation_set_texts

    return {
        h: [Box.from_dict(d) for d in json.loads(text)]
        for h, text in annotation_set_texts(db, hashes)
    }


# -- the vectorised path -----------------------------------------------------------------------
# Ranking 100,000 images must take about a second, which rules out one Box object per box:
# boxes are read straight from their canonical JSON into numpy columns and the matching rules
# of suggestions.suggest run on all images at once. Greedy matching is sequential only where a
# prediction or a label has two candidates at some stage; such images are handed back to the
# exact path, so the result is always the one image_reasons gives.

_JSTR = r'"(?:[^"\\]|\\.)*"'
_LABEL_RE = re.compile(
    r'\{(?:"author":' + _JSTR + r',)?"class":(-?\d+),"h":([^,]+),(?:"model":' + _JSTR + r",)?"
    r'"origin":"(\w+)",(?:"score":([^,]+),)?"state":"(\w+)","w":([^,]+),"x":([^,]+),'
    r'"y":([^,}]+)\}'
)
_PRED_RE = re.compile(
    r'\{"h":([^,]+),"name":(' + _JSTR + r'),"score":([^,]+),"w":([^,]+),"x":([^,]+),'
    r'"y":([^,}]+)\}'
)
_KIND_RANK: dict[str, int] = {k: n for n, k in enumerate(sg.KINDS)}


_NUM_RE = re.compile(r'":(-?[0-9][^,}]*)')
_NAME_RE = re.compile(r'"name":("(?:[^"\\]|\\.)*")')


def _label_columns(texts: list[str], total: int) -> dict[str, np.ndarray] | None:
    """cls, x, y, w, h, score (nan without), model (origin), accepted of every box, in order;
    None when the text is not in the canonical form the patterns expect."""
    text = "".join(texts)
    if '"score":' not in text:
        # The common case (imported or drawn labels): five numbers a box, in key order
        # class, h, w, x, y, read by one simple pattern; string fields are skipped by it.
        nums = _NUM_RE.findall(text)
        if len(nums) == 5 * total:
            m = np.array(nums, dtype=float).reshape(-1, 5)
            model = np.zeros(total, dtype=bool)
            if '"origin":"model"' in text:
                model = np.array(re.findall(r'"origin":"(\w)', text)) == "m"
            accepted = np.zeros(total, dtype=bool)
            if '"state":"accepted"' in text:
                accepted = np.array(re.findall(r'"state":"(\w\w)', text)) == "ac"
            if len(model) == len(accepted) == total:
                return {
                    "cls": m[:, 0].astype(np.int64),
                    "x": m[:, 3],
                    "y": m[:, 4],
                    "w": m[:, 2],
                    "h": m[:, 1],
                    "score": np.full(total, np.nan),
                    "model": model,
                    "accepted": accepted,
                }
    found = _LABEL_RE.findall(text)
    if len(found) != total:
        return None
    cols = list(zip(*found, strict=True)) if found else [()] * 8
    cls, h, origin, score, state, w, x, y = cols
    return {
        "cls": np.array(cls, dtype=np.int64),
        "x": np.array(x, dtype=float),
        "y": np.array(y, dtype=float),
        "w": np.array(w, dtype=float),
        "h": np.array(h, dtype=float),
        "score": np.array([v or "nan" for v in score], dtype=float),
        "model": np.array([o == "model" for o in origin], dtype=bool),
        "accepted": np.array([st == "accepted" for st in state], dtype=bool),
    }


def _pred_columns(
    texts: list[str], total: int, by_name: Mapping[str, int]
) -> dict[str, np.ndarray] | None:
    """cls (-1: not a project class), x, y, w, h, score of every prediction, in order."""
    text = "".join(texts)
    nums = _NUM_RE.findall(text)  # h, score, w, x, y: the name is a string
    names = _NAME_RE.findall(text)
    if len(nums) != 5 * total or len(names) != total:
        return None
    m = np.array(nums, dtype=float).reshape(-1, 5)
    ids = {lit: by_name.get(json.loads(lit), -1) for lit in set(names)}
    return {
        "cls": np.array([ids[n] for n in names], dtype=np.int64),
        "x": m[:, 3],
        "y": m[:, 4],
        "w": m[:, 2],
        "h": m[:, 0],
        "score": m[:, 1],
    }


def _order(r: tuple) -> tuple:
    return r[:4]


def _ranges(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of ``counts`` items laid end to end: each item's group and its position."""
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return group, pos


def _twice(index: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Items (of ``n``) that appear in two or more pairs selected by ``mask``."""
    return np.bincount(index[mask], minlength=n) >= 2


@dataclass
class _Arrays:
    """A run's predictions and the labels of the images it covers, as numpy columns, with
    every same-image (label, prediction) pair and its IoU: what ranking needs whatever the
    thresholds. Built once per (version, run) and kept (see ``_CACHE``)."""

    shas: list[str]
    L: dict[str, np.ndarray]  # labels, one copy per image
    P: dict[str, np.ndarray]  # predictions of project classes, in stored order
    l_img: np.ndarray
    l_pos: np.ndarray
    p_img: np.ndarray
    p_pos: np.ndarray
    labelled: np.ndarray  # per image: the version has labels for it
    pair_l: np.ndarray
    pair_p: np.ndarray
    iou: np.ndarray
    same: np.ndarray
    #: thresholds -> (reasons by image, images for the exact path)
    by_params: dict[Params, tuple[dict[str, list[Reason]], set[str]]] = field(default_factory=dict)


#: (database, version, run, its size and newest row) -> arrays. A version never changes and a
#: run's rows change only by adding images or replacing rows (which moves ``created``), so the
#: key says when they must be read again; recomputing the queue after an edit or a threshold
#: change then costs only the matching stages.
_CACHE: dict[tuple, _Arrays] = {}
_CACHE_SIZE = 2


def _arrays(
    db: Any, version_id: str, run: predictions.Run, entries: Mapping[str, Any], by_name: Any
) -> _Arrays | None:
    """The arrays of ``run`` on the version (cached); None when some stored text is not in the
    canonical form (then every image goes through the exact path)."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    key = (path, version_id, run.model, predictions.params_key(run.params), run.images, run.created)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    shas: list[str] = []
    ptexts: list[str] = []
    pcounts: list[int] = []
    for image, text in db.execute(
        "SELECT image, boxes FROM prediction WHERE model = ? AND params = ?",
        [run.model, predictions.params_key(run.params)],
    ):
        if image in entries:
            shas.append(image)
            ptexts.append(text)
            # a key only: a quote inside a class name is escaped in JSON
            pcounts.append(text.count('"score":'))
    annsets = [entries[sha][0] for sha in shas]
    ltext: dict[str, tuple[int, str]] = {}
    wanted = set(annsets)
    if len(wanted) > 5000:  # one pass over the table beats thousands of IN (...) lookups
        for h, n, text in db.execute("SELECT hash, n_boxes, boxes FROM annotation_set"):
            if h in wanted:
                ltext[h] = (n, text)
    else:
        ordered = sorted(wanted)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for h, n, text in db.execute(
                f"SELECT hash, n_boxes, boxes FROM annotation_set WHERE hash IN ({marks})", chunk
            ):
                ltext[h] = (n, text)
    order = list(ltext)
    set_start = {}
    at = 0
    for h in order:
        set_start[h] = at
        at += ltext[h][0]
    lab_all = _label_columns([ltext[h][1] for h in order], at)
    pred_all = _pred_columns(ptexts, sum(pcounts), by_name)
    if lab_all is None or pred_all is None:
        return None
    k = len(shas)
    # labels, one copy per image (images may share an annotation set)
    l_n = np.array([ltext[a][0] if a in ltext else 0 for a in annsets], dtype=np.int64)
    l_from = np.array([set_start.get(a, 0) for a in annsets], dtype=np.int64)
    l_img, l_pos = _ranges(l_n)
    src = np.repeat(l_from, l_n) + l_pos
    L = {name: col[src] for name, col in lab_all.items()}
    l_start = np.cumsum(l_n) - l_n
    # predictions of project classes only, in stored order (as suggestions.as_boxes keeps them)
    p_img_all, _ = _ranges(np.array(pcounts, dtype=np.int64))
    keep = pred_all["cls"] >= 0
    P = {name: col[keep] for name, col in pred_all.items()}
    p_img = p_img_all[keep]
    _, p_pos = _ranges(np.bincount(p_img, minlength=k))
    # every (prediction, label) pair of the same image, with suggestions.iou's arithmetic
    cnt = l_n[p_img]
    pair_p, off = _ranges(cnt)
    pair_l = np.repeat(l_start[p_img], cnt) + off
    ax, ay, aw, ah = L["x"][pair_l], L["y"][pair_l], L["w"][pair_l], L["h"][pair_l]
    bx, by, bw, bh = P["x"][pair_p], P["y"][pair_p], P["w"][pair_p], P["h"][pair_p]
    iw = np.minimum(ax + aw, bx + bw) - np.maximum(ax, bx)
    ih = np.minimum(ay + ah, by + bh) - np.maximum(ay, by)
    inter = iw * ih
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where((iw > 0) & (ih > 0), inter / (aw * ah + bw * bh - inter), 0.0)
    arrays = _Arrays(
        shas,
        L,
        P,
        l_img,
        l_pos,
        p_img,
        p_pos,
        l_n > 0,
        pair_l,
        pair_p,
        iou,
        L["cls"][pair_l] == P["cls"][pair_p],
    )
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = arrays
    return arrays


def _vector_reasons(
    db: Any,
    version_id: str,
    run: predictions.Run,
    entries: Mapping[str, Any],
    skip: set[str],
    class_names: Mapping[int, str],
    by_name: Mapping[str, int],
    params: Params,
) -> tuple[dict[str, list[Reason]], set[str]]:
    """Reasons of the run's images (but ``skip``), and the images left to the exact path.

    Images are independent of each other, so the reasons of every image are computed once per
    thresholds and kept with the arrays; leaving out ``skip`` (edited images) is a filter.
    """
    arrays = _arrays(db, version_id, run, entries, by_name)
    if arrays is None:
        cached = predictions.cached_images(db, run.model, run.params)
        return {}, {sha for sha in cached if sha in entries} - skip
    hit = arrays.by_params.get(params)
    if hit is None:
        found, unsure = _array_reasons(arrays, class_names, params, run.model)
        # The ambiguous images, as the version has them, through the exact rule, kept too.
        # (Those with edits or other models' runs are in ``skip`` and are redone by rank.)
        found.update(_exact_reasons(db, run, {}, entries, unsure, {}, class_names, by_name, params))
        hit = (found, unsure)
        if len(arrays.by_params) >= 4:
            arrays.by_params.clear()
        arrays.by_params[params] = hit
    found, unsure = hit
    unsure = set()  # settled above
    # fresh lists: a caller may edit its queue's reasons, never the kept ones
    return {sha: list(r) for sha, r in found.items() if sha not in skip}, unsure - skip


def _array_reasons(
    arrays: _Arrays, class_names: Mapping[int, str], params: Params, model: str
) -> tuple[dict[str, list[Reason]], set[str]]:
    """The matching stages of suggestions.suggest on every image at once."""
    shas, L, P = arrays.shas, arrays.L, arrays.P
    l_img, l_pos, p_img, p_pos = arrays.l_img, arrays.l_pos, arrays.p_img, arrays.p_pos
    pair_l, pair_p, iou, same = arrays.pair_l, arrays.pair_p, arrays.iou, arrays.same
    labelled = arrays.labelled
    k, n_l, n_p = len(shas), len(l_img), len(p_img)
    settled = L["model"] | L["accepted"]
    conflict = np.zeros(k, dtype=bool)

    def flag(mask: np.ndarray) -> None:
        bad_l = _twice(pair_l, mask, n_l)
        bad_p = _twice(pair_p, mask, n_p)
        conflict[l_img[bad_l]] = True
        conflict[p_img[bad_p]] = True

    # 0. predictions already decided: a model box of the record with the same score
    c0 = L["model"][pair_l] & (np.abs(L["score"][pair_l] - P["score"][pair_p]) <= 5e-7)
    flag(c0)
    removed = np.zeros(n_p, dtype=bool)
    removed[pair_p[c0]] = True
    valid = ~removed[pair_p]
    # 1. COCO matching: same class, IoU >= threshold
    c1 = valid & same & (iou >= params.iou)
    flag(c1)
    used = np.zeros(n_p, dtype=bool)
    taken = np.zeros(n_l, dtype=bool)
    used[pair_p[c1]] = True
    taken[pair_l[c1]] = True
    confident = P["score"] >= params.min_score
    # 2. wrong class
    c2 = valid & ~same & (iou >= params.iou) & ~used[pair_p] & confident[pair_p] & ~taken[pair_l]
    flag(c2)
    used[pair_p[c2]] = True
    taken[pair_l[c2]] = True
    # 3. loose box
    c3 = valid & same & (iou > 0) & ~used[pair_p] & ~taken[pair_l]
    flag(c3)
    used[pair_p[c3]] = True
    taken[pair_l[c3]] = True
    # 4. possibly missing: confident, unused, overlapping no label at the threshold
    big = np.bincount(pair_p[iou >= params.iou], minlength=n_p) > 0
    missing = ~removed & ~used & confident & ~big & labelled[p_img]
    # 5. possibly spurious: no prediction overlaps at all
    touched = np.bincount(pair_l[iou > 0], minlength=n_l) > 0
    spurious = ~taken & ~settled & ~touched
    # unlabelled images: doubtful pending pre-labels
    low = ~labelled[p_img] & (P["score"] < params.low_score)
    excluded = conflict

    def name(cls: int) -> str:
        return class_names.get(cls, f"class {cls}")

    found: dict[int, list[tuple]] = {}
    names = {int(c): name(int(c)) for c in np.unique(np.concatenate([L["cls"], P["cls"]]))}

    def emit(kind: str, img, cls, score, tie, x, y, w, h, labels=None, overlap=None) -> None:
        """One reason per element of the arrays (plain lists from here: numpy scalars are
        slow one at a time)."""
        k_rank = _KIND_RANK.get(kind, 9)
        k_weight = KIND_WEIGHT[kind]
        rows = zip(
            img.tolist(),
            cls.tolist(),
            score.tolist(),
            tie.tolist(),
            x.tolist(),
            y.tolist(),
            w.tolist(),
            h.tolist(),
            (labels.tolist() if labels is not None else [0] * len(img)),
            (overlap.tolist() if overlap is not None else [0.0] * len(img)),
            strict=True,
        )
        for m, c, sc, t, bx_, by_, bw_, bh_, lc, ov in rows:
            cname = names[c]
            if kind == "low_confidence":
                text = f"pending {cname} pre-label at {sc:.2f}"
            elif kind == "spurious":
                text = sg.reason_text(kind, cname, "", sc, 0.0)
            elif kind == "missing":
                text = sg.reason_text(kind, "", cname, sc, 0.0)
            else:
                text = sg.reason_text(kind, names[lc], cname, sc, ov)
            reason = Reason(kind, cname, (bx_, by_, bw_, bh_), sc, model, text)
            # weight() inlined: this runs once per reason, ~100,000 times at scale
            w = k_weight * min(1.0, max(0.0, 1.0 - sc if kind == "low_confidence" else sc))
            found.setdefault(m, []).append((-w, k_rank, -sc, t, reason))

    for sel, kind in ((c2, "wrong_class"), (c3, "loose")):
        q = np.flatnonzero(sel)
        i, j = pair_l[q], pair_p[q]
        ok = ~excluded[p_img[j]] & ~settled[i]
        q, i, j = q[ok], i[ok], j[ok]
        tie = p_pos[j] if kind == "wrong_class" else l_pos[i]
        emit(
            kind, p_img[j], P["cls"][j], P["score"][j], tie,
            P["x"][j], P["y"][j], P["w"][j], P["h"][j], L["cls"][i], iou[q],
        )  # fmt: skip
    for sel, kind in ((missing, "missing"), (low, "low_confidence")):
        j = np.flatnonzero(sel & ~excluded[p_img])
        emit(
            kind, p_img[j], P["cls"][j], P["score"][j], p_pos[j],
            P["x"][j], P["y"][j], P["w"][j], P["h"][j],
        )  # fmt: skip
    i = np.flatnonzero(spurious & ~excluded[l_img])
    emit(
        "spurious", l_img[i], L["cls"][i], np.full(len(i), sg.SPURIOUS_SCORE), l_pos[i],
        L["x"][i], L["y"][i], L["w"][i], L["h"][i],
    )  # fmt: skip
    out = {
        shas[img]: [rs[0][-1]] if len(rs) == 1 else [r[-1] for r in sorted(rs, key=_order)]
        for img, rs in found.items()
    }
    return out, {shas[img] for img in np.flatnonzero(conflict)}
