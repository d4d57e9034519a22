"""The review queue's vectorised path: the rules of :func:`.queue.image_reasons` on every image
of a (version, run) at once, on numpy columns.

Ranking 100,000 images must take about a second, which rules out one Box object per box: the boxes
are read from their packed copies (:mod:`labeldesk.core.store.packed`, one :func:`numpy.frombuffer`
per table instead of parsing 4.5 million numbers out of JSON) and the matching stages of
:func:`labeldesk.core.review.suggestions.suggest` run on all images at once. Greedy matching is
sequential only where a prediction or a label has two candidates at some stage; such images, and
those whose boxes the arrays cannot represent exactly, are handed back to the exact per-image path,
so the result is always the one ``image_reasons`` gives (tested).

Private to :mod:`labeldesk.core.review.queue`, which calls :func:`arrays` and
:func:`array_reasons`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..inference import predictions
from ..store import packed
from . import suggestions as sg
from .queue import KIND_WEIGHT, Params, Reason

_KIND_RANK: dict[str, int] = {k: n for n, k in enumerate(sg.KINDS)}


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
class Arrays:
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
    #: images of the run the arrays leave out: their boxes need the exact path
    unsure: set[str] = field(default_factory=set)
    #: thresholds -> (reasons by image, priority by image), exact-path images included
    by_params: dict[Params, tuple[dict[str, list[Reason]], dict[str, float]]] = field(
        default_factory=dict
    )


#: (database, version, run, its size and newest row) -> arrays. A version never changes and a
#: run's rows change only by adding images or replacing rows (which moves ``created``), so the
#: key says when they must be read again; recomputing the queue after an edit or a threshold
#: change then costs only the matching stages.
_CACHE: dict[tuple, Arrays] = {}
CACHE_SIZE = 2


def _run_copies(
    db: Any, run: predictions.Run, entries: Mapping[str, Any], by_name: Mapping[str, int]
) -> tuple[list[str], list[bytes], list[int], list[int], list[int], set[str]]:
    """The packed predictions of the run's images in the version: (images, their copies, each
    one's offset into the class table and its number of names there, the class table: name
    -> project class id or -1, images whose rows cannot be packed)."""
    shas: list[str] = []
    blobs: list[bytes] = []
    offsets: list[int] = []
    table: list[int] = []
    table_at: dict[str, int] = {}
    sizes: dict[int, int] = {}  # offset -> how many names start there
    unsure: set[str] = set()
    # One query; the JSON is read only for a row without a copy (written outside LabelDesk).
    # A run that is a good part of the table is read by scanning it: twice as fast as 100,000
    # lookups through the key's index (rowids only grow, so the largest bounds the row count).
    rows = db.execute("SELECT MAX(rowid) FROM prediction").fetchone()[0] or 0
    scan = "NOT INDEXED" if run.images * 4 >= rows else ""
    for image, blob, names, text in db.execute(
        "SELECT image, packed, packed_names, "
        f"CASE WHEN packed IS NULL OR length(packed) % {packed.PRED_SIZE} THEN boxes END "
        f"FROM prediction {scan} WHERE model = ? AND params = ?",
        [run.model, predictions.params_key(run.params)],
    ):
        if image not in entries:
            continue
        if blob is None or names is None or len(blob) % packed.PRED_SIZE:
            copy = packed.pack_predictions(text if text is not None else "null")
            if copy is None:
                unsure.add(image)
                continue
            blob, names = copy
        at = table_at.get(names)
        if at is None:  # a row's distinct names: a handful of lists over the whole run
            at = table_at[names] = len(table)
            table.extend(by_name.get(n, -1) for n in json.loads(names))
            sizes[at] = len(table) - at
        shas.append(image)
        blobs.append(blob)
        offsets.append(at)
    names_of = [sizes[at] for at in offsets]
    return shas, blobs, offsets, names_of, table, unsure


def _label_copies(db: Any, hashes: set[str]) -> dict[str, bytes | None]:
    """The packed copies of annotation sets ``hashes`` (derived from the JSON where a set has
    none; a set that does not exist has no boxes, as the exact path reads it)."""
    out: dict[str, bytes | None] = {}
    if len(hashes) > 5000:  # one pass over the table beats thousands of IN (...) lookups
        for h, blob in db.execute("SELECT hash, packed FROM annotation_set_packed"):
            if h in hashes:
                out[h] = blob
    else:
        ordered = sorted(hashes)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                db.execute(
                    f"SELECT hash, packed FROM annotation_set_packed WHERE hash IN ({marks})",
                    chunk,
                )
            )
    # a copy whose length is not whole boxes (changed by hand: fsck reports it) would shift
    # every box after it: derived again from the JSON, like a missing one
    missing = (hashes - out.keys()) | {
        h for h, blob in out.items() if blob is not None and len(blob) % packed.LABEL_SIZE
    }
    if missing:
        from ..store.annotation_sets import annotation_set_texts

        for h, text in annotation_set_texts(db, missing):
            out[h] = packed.pack_labels(text)
    return out


def _columns(blobs: list[bytes], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed rows of ``width`` numbers laid end to end: (columns, one contiguous array per
    field; rows per blob)."""
    flat = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(-1, width)
    counts = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // (8 * width)
    return np.ascontiguousarray(flat.T), counts


def arrays(
    db: Any, version_id: str, run: predictions.Run, entries: Mapping[str, Any], by_name: Any
) -> Arrays:
    """The arrays of ``run`` on the version (cached)."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    key = (path, version_id, run.model, predictions.params_key(run.params), run.images, run.created)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    shas, pblobs, offsets, n_names, table, unsure = _run_copies(db, run, entries, by_name)
    annsets = [entries[sha][0] for sha in shas]
    copies = _label_copies(db, set(annsets))
    if any(c is None for c in copies.values()):  # sets only the exact path reads right
        keep = [i for i, a in enumerate(annsets) if copies.get(a, b"") is not None]
        unsure |= set(shas) - {shas[i] for i in keep}
        shas = [shas[i] for i in keep]
        pblobs = [pblobs[i] for i in keep]
        offsets = [offsets[i] for i in keep]
        n_names = [n_names[i] for i in keep]
        annsets = [annsets[i] for i in keep]
    k = len(shas)
    # labels, one copy per image (images may share an annotation set)
    lab, l_n = _columns([copies.get(a) or b"" for a in annsets], packed.LABEL_FIELDS)
    flags = lab[0].astype(np.int64)  # 4 * class + 2 * model box + accepted
    L = {
        "cls": flags >> 2,
        "x": lab[1],
        "y": lab[2],
        "w": lab[3],
        "h": lab[4],
        "score": lab[5],
        "model": (flags & 2) != 0,
        "accepted": (flags & 1) != 0,
    }
    l_img, l_pos = _ranges(l_n)
    l_start = np.cumsum(l_n) - l_n
    # predictions of project classes only, in stored order (as suggestions.as_boxes keeps them)
    pred, p_n = _columns(pblobs, packed.PRED_FIELDS)
    name = pred[0].astype(np.int64)
    # a name index outside its row's names (a copy changed by hand: fsck reports it) drops
    # the box rather than read another row's name
    bad = (name != pred[0]) | (name < 0) | (name >= np.repeat(np.array(n_names, np.int64), p_n))
    at = np.repeat(np.array(offsets, dtype=np.int64), p_n) + name
    at[bad] = len(table)
    p_cls = np.array([*table, -1], dtype=np.int64)[at]
    p_img_all, _ = _ranges(p_n)
    keep_p = p_cls >= 0
    P = {
        "cls": p_cls[keep_p],
        "x": pred[1][keep_p],
        "y": pred[2][keep_p],
        "w": pred[3][keep_p],
        "h": pred[4][keep_p],
        "score": pred[5][keep_p],
    }
    p_img = p_img_all[keep_p]
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
    out = Arrays(
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
        unsure,
    )
    while len(_CACHE) >= CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = out
    return out


def array_reasons(
    arrays: Arrays, class_names: Mapping[int, str], params: Params, model: str
) -> tuple[dict[str, list[Reason]], set[str], dict[str, float]]:
    """The matching stages of suggestions.suggest on every image at once: (reasons by image,
    images the arrays cannot settle, priority by image)."""
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

    # Every reason as columns, kind by kind in the order the exact path emits them; then one
    # sort (the exact path's order within an image: weight, kind, score, position, emission)
    # and one pass that makes the Reason objects, image by image.
    cols: list[tuple] = []
    for sel, kind in ((c2, "wrong_class"), (c3, "loose")):
        q = np.flatnonzero(sel)
        i, j = pair_l[q], pair_p[q]
        ok = ~excluded[p_img[j]] & ~settled[i]
        q, i, j = q[ok], i[ok], j[ok]
        tie = p_pos[j] if kind == "wrong_class" else l_pos[i]
        cols.append((kind, p_img[j], j, P, P["score"][j], tie, L["cls"][i], iou[q]))
    for sel, kind in ((missing, "missing"), (low, "low_confidence")):
        j = np.flatnonzero(sel & ~excluded[p_img])
        cols.append((kind, p_img[j], j, P, P["score"][j], p_pos[j], None, None))
    i = np.flatnonzero(spurious & ~excluded[l_img])
    score = np.full(len(i), sg.SPURIOUS_SCORE)
    cols.append(("spurious", l_img[i], i, L, score, l_pos[i], None, None))
    kinds = [c[0] for c in cols]
    kind_of = np.concatenate([np.full(len(c[1]), n, dtype=np.int64) for n, c in enumerate(cols)])
    img = np.concatenate([c[1] for c in cols])
    sc = np.concatenate([c[4] for c in cols])
    ev = np.where(kind_of == kinds.index("low_confidence"), 1.0 - sc, sc)
    weights = np.array([KIND_WEIGHT[k] for k in kinds])[kind_of] * np.clip(ev, 0.0, 1.0)
    k_rank = np.array([_KIND_RANK.get(k, 9) for k in kinds])[kind_of]
    tie = np.concatenate([c[5] for c in cols])
    order = np.lexsort((np.arange(len(img)), tie, -sc, k_rank, -weights, img))

    def take(name: str) -> np.ndarray:
        return np.concatenate([c[3][name][c[2]] for c in cols])

    cls = take("cls")[order].tolist()
    x, y, w, h = (take(n)[order].tolist() for n in ("x", "y", "w", "h"))
    labels, overlap = (
        np.concatenate([np.zeros(len(c[1])) if c[n] is None else c[n] for c in cols])
        for n in (6, 7)
    )
    names = {int(c): class_names.get(int(c), f"class {int(c)}") for c in set(cls)}
    names.update(
        {int(c): class_names.get(int(c), f"class {int(c)}") for c in np.unique(labels.astype(int))}
    )
    out: dict[str, list[Reason]] = {}
    priorities: dict[str, float] = {}
    last, keep = -1, 1.0
    current: list[Reason] = []
    rows = zip(
        img[order].tolist(),
        kind_of[order].tolist(),
        cls,
        sc[order].tolist(),
        x,
        y,
        w,
        h,
        labels[order].astype(np.int64).tolist(),
        overlap[order].tolist(),
        weights[order].tolist(),
        strict=True,
    )
    for m, kn, c, s, bx, by, bw, bh, lc, ov, wt in rows:
        if m != last:
            if last >= 0:
                priorities[shas[last]] = 1.0 - keep
            last, current, keep = m, [], 1.0
            out[shas[m]] = current
        kind, cname = kinds[kn], names[c]
        if kind == "low_confidence":
            text = f"pending {cname} pre-label at {s:.2f}"
        elif kind == "missing":
            text = f"the model sees a {cname} ({s:.2f}) that has no label"
        elif kind == "spurious":
            text = f"no prediction overlaps this {cname} at any confidence"
        else:
            text = sg.reason_text(kind, names[lc], cname, s, ov)
        current.append(Reason(kind, cname, (bx, by, bw, bh), s, model, text))
        keep *= 1.0 - wt  # queue.priority, in the same order: the same float
    if last >= 0:
        priorities[shas[last]] = 1.0 - keep
    return out, {shas[m] for m in np.flatnonzero(conflict)}, priorities
