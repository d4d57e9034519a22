"""Annotation sets: the boxes of one image, stored once by the hash of their canonical JSON.

A module of its own (not in ``versions``) because reading versions must not pay for boxes:
``labeldesk log`` lists versions without ever touching a box.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from ..boxes import Box
from .db import ProjectDatabase as Database
from .packed import label_set, put_label_copies


def put_annotation_set(db: Database, boxes: Iterable[Box]) -> str:
    """Store the boxes of one image once, by hash; returns the hash."""
    h, text, n, copy = label_set(boxes)
    db.execute(
        "INSERT OR IGNORE INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, ?)",
        [h, text, n],
    )
    put_label_copies(db, [(h, copy)])  # what the review queue reads (core.packed)
    return h


def load_annotation_set(db: Database, h: str) -> list[Box]:
    row = db.execute("SELECT boxes FROM annotation_set WHERE hash = ?", [h]).fetchone()
    if row is None:
        raise KeyError(f"annotation set {h} is missing")
    return [Box.from_dict(d) for d in json.loads(row[0])]


def annotation_set_texts(db: Database, hashes: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(hash, boxes JSON)`` of many annotation sets, read in batches of 500 (SQLite's limit on
    parameters is not a concern, and one query per set would cost more than the parsing)."""
    wanted = sorted(set(hashes))
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        yield from db.execute(
            f"SELECT hash, boxes FROM annotation_set WHERE hash IN ({marks})", chunk
        )
