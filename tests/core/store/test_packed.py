"""Packed copies of boxes hold exactly the numbers the per-image path reads from the JSON."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

from labeldesk.core.boxes import NOT_LABELS, Box, annotation_set
from labeldesk.core.canonical import canonical_json
from labeldesk.core.inference.predictions import Prediction
from labeldesk.core.store.packed import label_set, pack_labels, pack_predictions


def _by_box(text: str) -> bytes | None:
    """The copy as the per-image path sees the set: Box.from_dict on every dict."""
    try:
        boxes = [Box.from_dict(d) for d in json.loads(text)]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if any(b.crowd or b.state in NOT_LABELS for b in boxes):
        return None
    values: list[float] = []
    for b in boxes:
        flags = 4 * b.cls + 2 * (b.origin == "model") + (b.state == "accepted")
        score = math.nan if b.score is None else float(b.score)
        values += (float(flags), b.x, b.y, b.w, b.h, score)
    return struct.pack(f"<{len(values)}d", *values)


def _box_dict(rng: random.Random) -> dict:
    d: dict = {
        "class": rng.choice([0, 1, 7, -2, True]),
        "x": rng.choice([0.0, -0.0, 3, 12.34567, 1e300, rng.uniform(-5, 500)]),
        "y": rng.choice([0.0, 2, rng.uniform(0, 400)]),
        "w": rng.choice([0.00004, 0.00005, 10.0, 25, rng.uniform(0.1, 90)]),
        "h": rng.choice([0.0, 4.0, rng.uniform(0.1, 90)]),
        "origin": rng.choice(["human", "model", "model", "robot"]),
        "state": rng.choice(["imported", "accepted", "edited", "added", "rejected", "pending"]),
    }
    if rng.random() < 0.4:
        d["score"] = rng.choice([0.5, 1, round(rng.random(), 6)])
    if rng.random() < 0.1:
        d["iscrowd"] = 1
    if rng.random() < 0.1:
        d["area"] = rng.choice([12.5, -1.0])
    if rng.random() < 0.05:
        d["x"] = rng.choice([math.nan, math.inf, "3"])
    if rng.random() < 0.05:
        del d[rng.choice(["origin", "state", "x"])]
    return d


@pytest.mark.parametrize("seed", range(4))
def test_label_copies_hold_the_numbers_of_the_boxes(seed) -> None:
    rng = random.Random(seed)
    kinds = set()
    for _ in range(1500):
        sets = [_box_dict(rng) for _ in range(rng.choice([0, 1, 1, 2, 4]))]
        text = json.dumps(sets)  # also what no LabelDesk writes: ints, NaN, odd keys
        want = _by_box(text)
        assert pack_labels(text) == want, text
        kinds.add(want is None)
    assert kinds == {True, False}


def test_labels_written_by_labeldesk_pack_directly() -> None:
    boxes = [
        Box(1, 10.123456, 4, 20, 8.5, state="imported"),
        Box(2, 0, 0, 5, 5, origin="model", state="accepted", score=0.91234567, model="m"),
    ]
    text = canonical_json([b.to_dict() for b in boxes])
    copy = pack_labels(text)
    assert copy == _by_box(text)
    assert copy is not None
    got = struct.unpack("<12d", copy)
    assert got[:5] == (4.0, 10.1235, 4.0, 20.0, 8.5) and math.isnan(got[5])
    assert got[6:] == (11.0, 0.0, 0.0, 5.0, 5.0, 0.912346)  # 4 * 2 + model + accepted


def test_prediction_copies_hold_the_numbers_of_the_boxes() -> None:
    preds = [Prediction("cat", 1.23456789, 2, 3, 4, 0.5), Prediction("dog", 0, 0, 9, 9, 0.25)]
    preds.append(Prediction("cat", 5, 5, 1, 1, 0.75))
    text = canonical_json([p.to_dict() for p in preds])
    copy = pack_predictions(text)
    assert copy is not None
    blob, names = copy
    assert names == '["cat","dog"]'
    got = struct.unpack(f"<{len(blob) // 8}d", blob)
    assert got == (
        0.0, 1.2346, 2.0, 3.0, 4.0, 0.5,
        1.0, 0.0, 0.0, 9.0, 9.0, 0.25,
        0.0, 5.0, 5.0, 1.0, 1.0, 0.75,
    )  # fmt: skip
    # what Prediction(**d) cannot read has no copy (the per-image path raises on it)
    assert pack_predictions('[{"name": "cat", "x": 1, "y": 1, "w": 1, "h": 1}]') is None
    assert pack_predictions('[{"name": "cat", "x": 1, "y": 1, "w": 0, "h": 1, "score": 1}]') is None


def test_a_new_set_gets_the_copy_of_its_json() -> None:
    """Writers pack the dicts they write (label_set) instead of parsing the JSON back: the
    copy must be the one fsck derives from the JSON."""
    rng = random.Random(7)
    for _ in range(500):
        boxes = [
            Box(
                rng.randint(0, 5),
                rng.choice([0, 3, rng.uniform(0, 500)]),
                rng.uniform(0, 300),
                rng.choice([1, rng.uniform(0.001, 90)]),
                rng.uniform(0.001, 90),
                origin=(origin := rng.choice(["human", "model"])),
                state=rng.choice(["imported", "accepted", "edited", "added", "rejected"]),
                score=rng.random() if origin == "model" else None,
                crowd=rng.random() < 0.05,
                area=rng.choice([None, None, 12.25]),
            )
            for _ in range(rng.choice([0, 1, 3]))
        ]
        h, text, n, copy = label_set(boxes)
        assert (h, text, n) == annotation_set(boxes)
        assert copy == pack_labels(text)


@pytest.mark.parametrize("seed", [1, 2])
def test_an_imported_set_brings_the_copy_of_its_json(seed) -> None:
    """COCO and YOLO imports pack their sets from the numbers (no parse at commit): the copy
    must be the one pack_labels reads from the same set's text, crowd regions giving none."""
    from labeldesk.core.boxes import PackedSet, imported_set
    from labeldesk.core.store.packed import pack_imported

    rng = random.Random(seed)
    for _ in range(500):
        rows = [
            (
                rng.randrange(5),
                rng.choice([rng.uniform(-5, 500), float(rng.randrange(100)), 0.1 + 0.2]),
                rng.uniform(0, 500),
                rng.choice([rng.uniform(0.001, 80), 3.0000004]),
                rng.uniform(0.001, 80),
                rng.random() < 0.05,
                rng.choice([None, None, rng.uniform(0, 900)]),
            )
            for _ in range(rng.randrange(6))
        ]
        made = imported_set(rows, pack=pack_imported)
        assert isinstance(made, PackedSet) and made == imported_set(rows)
        assert made.packed == pack_labels(made.text), rows
