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

API: :func:`pack_labels`, :func:`pack_predictions`, :func:`put_label_copies`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from typing import Any

from .boxes import NOT_LABELS, Box
from .canonical import canonical_json

LABEL_FIELDS = 6
PRED_FIELDS = 6
#: bytes of one packed box
LABEL_SIZE = 8 * LABEL_FIELDS
PRED_SIZE = 8 * PRED_FIELDS
_PRED_KEYS = {"name", "x", "y", "w", "h", "score"}


def pack_labels(text: str) -> bytes | None:
    """The packed copy of an annotation set's canonical JSON ``text``; None when the arrays
    cannot represent it exactly (the per-image rule ranks its images)."""
    values: list[float] = []
    try:
        for d in json.loads(text):
            b = Box.from_dict(d)  # exactly the box the per-image path reads
            if b.crowd or b.state in NOT_LABELS:
                return None
            score = math.nan if b.score is None else float(b.score)
            flags = 4 * b.cls + (2 if b.origin == "model" else 0) + (b.state == "accepted")
            values += (float(flags), b.x, b.y, b.w, b.h, score)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # not a set of valid boxes: fsck reports it, the per-image path raises
    return struct.pack(f"<{len(values)}d", *values)


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
            b = Box(0, d["x"], d["y"], d["w"], d["h"], origin="model", state="pending")
            values += (float(names.setdefault(d["name"], len(names))), b.x, b.y, b.w, b.h, score)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return struct.pack(f"<{len(values)}d", *values), canonical_json(list(names))


def put_label_copies(db: Any, rows: Iterable[tuple[str, str]]) -> None:
    """Store the packed copies of annotation sets ``(hash, JSON text)`` that have none yet.
    Call in the transaction that inserts the sets."""
    db.conn.executemany(
        "INSERT OR IGNORE INTO annotation_set_packed (hash, packed) VALUES (?, ?)",
        ((h, pack_labels(text)) for h, text in rows),
    )
