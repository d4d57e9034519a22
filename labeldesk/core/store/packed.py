"""Packed numeric copies of boxes, stored beside their canonical JSON, for the review queue.

Ranking 100,000 images reads about 4.5 million numbers; parsing them out of JSON took longer
than all of the matching. So every annotation set (table ``annotation_set_packed``) and every
prediction row (columns ``prediction.packed``, ``prediction.packed_names``) also holds its boxes
as little-endian float64 rows that :func:`numpy.frombuffer` reads without parsing.

The JSON stays the truth: a packed copy is *derived*, written in the same statement batch as its
JSON and computed from it by the functions here (through :class:`~labeldesk.core.boxes.Box`, so
its numbers are exactly the ones the per-image path sees), re-derivable at any time, and
``labeldesk fsck`` (check ``packed_boxes``) recomputes every one and reports a copy that does not
match its JSON. A reader meeting a row without a copy derives it from the JSON.

Label rows (:data:`LABEL_FIELDS` numbers a box): ``4 * class + 2 * (it came from a model) +
(its state is accepted)``, x, y, w, h, score (NaN: none): 48 bytes a box, half its JSON. A set
the arrays cannot represent exactly (a crowd region, or a box that is not a label: ``rejected``
or ``pending``) has a NULL copy: its images are ranked by the per-image rule.

Prediction rows (:data:`PRED_FIELDS` numbers a box): the index of its class name in
``packed_names`` (the row's distinct names, canonical JSON, in order of first use), x, y, w, h,
score.

No numpy here (``struct``), so the modules that write boxes stay fast to import.

API: :func:`pack_labels`, :func:`pack_predictions`, :func:`label_set`, :func:`put_label_copies`.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from ..boxes import NOT_LABELS, ORIGINS, STATES, Box, ImportedKey, canonical_boxes, count_boxes
from ..canonical import COORD_DECIMALS, canonical_json, hash_json

LABEL_FIELDS = 6
PRED_FIELDS = 6
#: bytes of one packed box
LABEL_SIZE = 8 * LABEL_FIELDS
PRED_SIZE = 8 * PRED_FIELDS
_PRED_KEYS = {"name", "x", "y", "w", "h", "score"}


#: the keys of a label box whose numbers :func:`_label_numbers` reads without a Box
_PLAIN_KEYS = frozenset(
    {"class", "x", "y", "w", "h", "origin", "state", "score", "model", "author"}
)


def _coords(x: Any, y: Any, w: Any, h: Any) -> tuple[float, float, float, float] | None:
    """x, y, w, h rounded as :class:`Box` rounds them, for finite floats with a positive size;
    None for anything else (then Box itself decides: same numbers, or its error)."""
    floats = type(x) is float and type(y) is float and type(w) is float and type(h) is float
    # (a NaN or an infinity anywhere makes the sum one)
    if floats and math.isfinite(x + y + w + h):
        w, h = round(w, COORD_DECIMALS) + 0.0, round(h, COORD_DECIMALS) + 0.0
        if w > 0 and h > 0:
            return round(x, COORD_DECIMALS) + 0.0, round(y, COORD_DECIMALS) + 0.0, w, h
    return None


def _label_numbers(d: Any) -> tuple[float, ...] | None:
    """The packed numbers of one box dict, exactly those of ``Box.from_dict(d)`` (which the
    per-image path builds); None for a box the arrays do not represent. Canonical boxes (the
    ones LabelDesk writes) are read directly, for speed: a labelled import packs millions."""
    if type(d) is dict and d.keys() <= _PLAIN_KEYS:
        cls, origin, state = d["class"], d.get("origin", "human"), d.get("state", "added")
        score = d.get("score")
        xywh = _coords(d["x"], d["y"], d["w"], d["h"])
        if (
            xywh is not None
            and type(cls) is int
            and origin in ORIGINS
            and state in STATES
            and (score is None or type(score) is float or type(score) is int)
        ):
            if state in NOT_LABELS:
                return None
            flags = 4 * cls + (2 if origin == "model" else 0) + (state == "accepted")
            return (float(flags), *xywh, math.nan if score is None else float(score))
    b = Box.from_dict(d)  # anything else: exactly the box the per-image path reads, or its error
    if b.crowd or b.state in NOT_LABELS:
        return None
    flags = 4 * b.cls + (2 if b.origin == "model" else 0) + (b.state == "accepted")
    return (float(flags), b.x, b.y, b.w, b.h, math.nan if b.score is None else float(b.score))


def pack_labels(text: str) -> bytes | None:
    """The packed copy of an annotation set's canonical JSON ``text``; None when the arrays
    cannot represent it exactly (the per-image rule ranks its images). The definition: what
    fsck compares every stored copy with."""
    try:
        return _pack_dicts(json.loads(text))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # not a set of valid boxes: fsck reports it, the per-image path raises


def pack_imported(keys: list[ImportedKey]) -> bytes | None:
    """The packed copy of an imported set from :func:`~labeldesk.core.boxes.imported_set`'s
    sorted rows: the numbers :func:`pack_labels` reads from its text (origin human, state
    imported and no score: flags ``4 * class``, score NaN; a crowd region: no copy). The rows
    are in the text's order, so no parse is needed (tests/core/store/test_packed.py checks the
    two agree)."""
    if any(k[5] for k in keys):
        return None
    values: list[float] = []
    nan = math.nan
    for cls, x, y, w, h, _crowd, _area in keys:
        values += (4.0 * cls, x, y, w, h, nan)
    return struct.pack(f"<{len(values)}d", *values)


def _pack_dicts(dicts: Iterable[Any]) -> bytes | None:
    values: list[float] = []
    for d in dicts:
        numbers = _label_numbers(d)
        if numbers is None:
            return None
        values += numbers
    return struct.pack(f"<{len(values)}d", *values)


def label_set(boxes: Iterable[Box]) -> tuple[str, str, int, bytes | None]:
    """:func:`~labeldesk.core.boxes.annotation_set` (hash, canonical JSON, n_boxes) and the
    packed copy of that JSON, made from the dicts the JSON is written from: ``json.loads``
    gives them back exactly (floats as repr writes them, ints as ints), so the copy is
    ``pack_labels(text)`` without parsing the text again. For the writers of new sets."""
    dicts = canonical_boxes(boxes)
    h, text = hash_json(dicts)
    try:
        copy = _pack_dicts(dicts)
    except (AttributeError, KeyError, TypeError, ValueError):
        copy = None
    return h, text, count_boxes(dicts), copy


def pack_predictions(text: str) -> tuple[bytes, str] | None:
    """(packed boxes, their distinct class names as canonical JSON) of a prediction row's
    canonical JSON ``text``; None when a box is not one the per-image path can read."""
    names: dict[str, int] = {}
    values: list[float] = []
    try:
        for d in json.loads(text):
            if d.keys() != _PRED_KEYS:  # Prediction(**d) takes exactly these
                return None
            # as the per-image path reads a row: Prediction(**d), then a Box (rounded coords)
            score = float(d["score"])
            xywh = _coords(d["x"], d["y"], d["w"], d["h"])
            if xywh is None:
                b = Box(0, d["x"], d["y"], d["w"], d["h"], origin="model", state="pending")
                xywh = (b.x, b.y, b.w, b.h)
            values += (float(names.setdefault(d["name"], len(names))), *xywh, score)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return struct.pack(f"<{len(values)}d", *values), _names_json(tuple(names))


@functools.lru_cache(maxsize=1024)
def _names_json(names: tuple[str, ...]) -> str:
    """A row's class names as canonical JSON (a model has few, and rows repeat them)."""
    return canonical_json(list(names))


def put_label_copies(db: Any, copies: Iterable[tuple[str, bytes | None]]) -> None:
    """Store the packed copies ``(annotation set hash, copy)`` of sets that have none yet.
    Call in the transaction that inserts the sets. ``copies`` is streamed, never held whole:
    a clone passes a generator over every set it fetched."""
    sql = "INSERT OR IGNORE INTO annotation_set_packed (hash, packed) VALUES (?, ?)"
    if isinstance(copies, Sequence) and len(copies) == 1:
        db.conn.execute(sql, copies[0])  # one set (a session's commit): no executemany
    else:
        db.conn.executemany(sql, copies)
