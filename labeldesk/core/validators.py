"""The one rule for what counts as a number in user input (files, options, fields).

JSON and YAML readers, the metric engine and the evaluation all check values a user brought;
one definition keeps them from disagreeing about ``true``, ``NaN`` or a numpy scalar. The rule:

* a bool is not a number (``True`` is an ``int`` subclass in Python, but ``"bbox": [true, ...]``
  is a mistake in a file, never a coordinate);
* numpy integer and floating scalars are numbers (a model adapter hands them over);
* a number must be finite: NaN and infinity are refused wherever a figure or a box is expected.

Qt-free and numpy-free at import: the CLI's option parsing uses it too.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TypeGuard


def _numpy_kind(v: Any) -> str:
    """'i' or 'f' for a numpy integer or floating scalar, '' otherwise (numpy is never
    imported here: a value can only be a numpy scalar if numpy is already loaded)."""
    np = sys.modules.get("numpy")
    if np is None:
        return ""
    if isinstance(v, np.integer):
        return "i"
    if isinstance(v, np.floating):
        return "f"
    return ""


def is_int(v: Any) -> TypeGuard[int]:
    """An integer: ``int`` (not ``bool``) or a numpy integer scalar.

    TypeGuard, not TypeIs: False does not mean "not an int" (a bool is one)."""
    t = type(v)
    if t is int:
        return True
    if t is bool:
        return False
    return isinstance(v, int) or _numpy_kind(v) == "i"


def is_number(v: Any) -> bool:
    """A finite number: ``int`` or ``float`` (not ``bool``) or a numpy integer/float scalar."""
    t = type(v)
    if t is float or t is int:
        return math.isfinite(v)
    if t is bool:
        return False
    if isinstance(v, int | float) or _numpy_kind(v):
        return math.isfinite(float(v))
    return False


def parse_number(text: str) -> float | None:
    """The finite number a text field or option holds, or None (``"nan"``, ``"1e999"``, ``""``)."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def number(text: str) -> float:
    """A numeric command-line option: :func:`parse_number`, or ``ValueError``.

    Used as argparse's ``type``: argparse turns the error into "invalid number value: 'nan'"
    and exit status 2, where ``type=float`` let ``nan`` and ``inf`` through to the work.
    """
    value = parse_number(text)
    if value is None:
        raise ValueError(f"not a finite number: {text!r}")
    return value
