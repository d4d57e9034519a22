"""``imported_set`` writes the canonical annotation set of imported boxes without building Box
objects: it must give byte for byte what ``annotation_set`` of the Boxes gives (a different
byte would change the hash of every imported set, and so every version id of the same
content), and refuse what a Box refuses, with the same error."""

from __future__ import annotations

import math
import random

import pytest

from labeldesk.core.boxes import EMPTY_SET_HASH, Box, annotation_set, imported_set


def _via_boxes(rows: list[tuple]) -> tuple[str, str, int]:
    return annotation_set(
        Box(c, x, y, w, h, origin="human", state="imported", crowd=crowd, area=area)
        for c, x, y, w, h, crowd, area in rows
    )


def _number(rng: random.Random, positive: bool) -> float | int:
    """A coordinate, often one of the awkward ones: on a rounding edge, -0.0, an int, tiny
    or huge (exponent notation in repr), below the stored precision."""
    pick = rng.random()
    if pick < 0.1:
        return rng.randint(1 if positive else -3, 50)
    if pick < 0.2:
        # half-way at the 5th decimal: the rounding must be Python's round, as in Box
        return rng.randint(1, 999) / 10 + 0.00005
    if pick < 0.25:
        return 1e16 * rng.randint(1, 9) if positive else -0.0
    if pick < 0.3:
        return 1e-4 * rng.randint(1, 3) if positive else 1e-7
    if pick < 0.35:
        return rng.choice([0.1 + 0.2, 1 / 3, 2 / 3, 123456.78905])
    value = rng.uniform(0, 640)
    return value if positive else value - 10


def _row(rng: random.Random, classes: list[int]) -> tuple:
    w, h = _number(rng, True), _number(rng, True)
    area: float | int | None = None
    pick = rng.random()
    if pick < 0.2:
        area = round(round(w, 4) * round(h, 4), 4)  # the default: stored as no area
    elif pick < 0.3:
        area = rng.randint(0, 5000)
    elif pick < 0.4:
        area = rng.uniform(0, 9000)
    elif pick < 0.45:
        area = 0.0
    return (
        rng.choice(classes),
        _number(rng, False),
        _number(rng, False),
        w,
        h,
        rng.random() < 0.15,
        area,
    )


def test_imported_set_is_byte_identical_to_box_canonicalisation_on_random_boxes() -> None:
    rng = random.Random(11)
    for _ in range(400):
        classes = rng.sample(range(0, 90), rng.randint(1, 4))
        rows = [_row(rng, classes) for _ in range(rng.randint(0, 25))]
        if rows and rng.random() < 0.3:
            # ties: the same box twice, and boxes equal up to their last sort field
            c, x, y, w, h, crowd, area = rng.choice(rows)
            rows += [(c, x, y, w, h, crowd, area), (c, x, y, w, h, not crowd, area)]
            rows.append((c, x, y, w, h, crowd, 7.5 if area is None else None))
            rows.append((c, x, y + 1, w, h, crowd, area))
        rng.shuffle(rows)
        assert imported_set(rows) == _via_boxes(rows), rows


def test_imported_set_edge_cases() -> None:
    cases: list[list[tuple]] = [
        [],
        [(1, -0.0, -0.0, 1.0, 1.0, False, None)],
        [(1, -0.00004, 0.00004, 0.00005, 0.0001, False, None)],  # rounds to -0.0, 0.0, 0.0001
        [(2, 0, 0, 5, 5, False, 25)],  # ints; area equal to the default
        [(2, 0, 0, 5, 5, False, 25.00001)],  # not the default: kept exactly
        [(2, 0, 0, 5, 5, True, 0)],  # crowd, given zero area
        [(3, 1e20, 1e-05, 1e16, 1e-4, False, None)],  # exponent notation in repr
        [(0, 1.5, 2.5, 3.5, 4.5, True, None), (0, 1.5, 2.5, 3.5, 4.5, False, None)],
        [(True, 1.0, 1.0, 1.0, 1.0, False, None)],  # bool class: written as 1
    ]
    for rows in cases:
        assert imported_set(rows) == _via_boxes(rows), rows
    assert imported_set([]).hash == EMPTY_SET_HASH
    # crowd regions are kept in the text but not counted
    assert imported_set(cases[7]).n_boxes == 1


@pytest.mark.parametrize(
    "row",
    [
        (1, math.nan, 0.0, 1.0, 1.0, False, None),
        (1, 0.0, math.inf, 1.0, 1.0, False, None),
        (1, 0.0, 0.0, -math.inf, 1.0, False, None),
        (1, 0.0, 0.0, 1.0, 0.0, False, None),
        (1, 0.0, 0.0, 0.00004, 1.0, False, None),  # rounds to zero width
        (1, 0.0, 0.0, 1.0, -2.0, False, None),
        (1, "1.5", 0.0, 1.0, 1.0, False, None),
        (1, None, 0.0, 1.0, 1.0, False, None),
        (1, 0.0, 0.0, 1.0, 1.0, 1, None),
        (1, 0.0, 0.0, 1.0, 1.0, False, -1.0),
        (1, 0.0, 0.0, 1.0, 1.0, False, math.nan),
        (1, 0.0, 0.0, 1.0, 1.0, False, math.inf),
        (1, 0.0, 0.0, 1.0, 1.0, False, True),
        (1, 0.0, 0.0, 1.0, 1.0, False, "3"),
    ],
)
def test_imported_set_refuses_what_a_box_refuses_with_the_same_error(row: tuple) -> None:
    with pytest.raises((ValueError, TypeError)) as via_box:
        _via_boxes([row])
    with pytest.raises(via_box.type) as direct:
        imported_set([(1, 2.0, 2.0, 3.0, 3.0, False, None), row])
    assert str(direct.value) == str(via_box.value)
