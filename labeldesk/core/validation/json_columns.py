"""The numbers of a JSON text of one known layout, read column-wise, exactly as :mod:`json`
reads them; ``None`` for any text this cannot vouch for (the caller then parses it with json).

Why: ``labeldesk validate`` reads about 300,000 numbers from a 5,000-image results file and
185,000 from the version's annotation sets. ``json`` builds a Python object for every value,
list and entry, which the evaluation then converts to arrays again: together twice the metric
engine's time (``bench/eval.py --validate``). Text in the layout LabelDesk and ``json.dumps``
write can instead be taken apart with a few passes over its bytes and its numbers parsed by
numpy.

Nothing is assumed about the text; three checks make the result json's:

1. **Skeleton.** The text with every byte of ``0-9 . -`` deleted must be exactly the layout the
   caller expects (keys in order, separators, brackets): checked by the caller, who knows it.
2. **Slots.** Every maximal run of those bytes must be preceded by a byte of ``before`` and
   followed by one of ``after``. In the caller's skeleton exactly the value slots have such
   neighbours (each caller says why), so with as many runs as slots every slot holds exactly one
   run, in order: the text *is* the skeleton with one number in each slot.
3. **Numbers.** Each run must be a JSON number without exponent, ``-?(0|[1-9][0-9]*)(.[0-9]+)?``,
   of at most 15 characters (a text with an exponent, ``1e-05``, fails the skeleton check: ``e``
   is not deleted). Its value is ``M / 10**f`` with ``M`` its digits as an integer and ``f`` the
   digits after the point: both are exact doubles (``M < 10**15 < 2**53``), so the quotient is
   the correctly rounded value of the decimal, which is what ``float()``, and so ``json``, gives.
   Integers (no point) are ``M`` itself, as ``json``'s ``int`` converted to a double.
"""

from __future__ import annotations

import numpy as np

NUMBER_BYTES = b"0123456789.-"
#: digits and minus kept, every other byte a space; the points are deleted with it
_DIGITS_SPACED = bytes(c if c in b"0123456789-" else 0x20 for c in range(256))
_ONE_IF_NUMBER = bytes(int(c in NUMBER_BYTES) for c in range(256))
_POW10 = 10.0 ** np.arange(16)
_MAX_CHARS = 15


def skeleton(text: bytes) -> bytes:
    """``text`` without its number bytes: what check 1 compares with the expected layout."""
    return text.translate(None, NUMBER_BYTES)


def numbers(text: bytes, before: bytes, after: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """The numbers of ``text`` in order and whether each was written as an integer (no point),
    if checks 2 and 3 hold (see the module); ``None`` otherwise. ``text`` must already have
    passed check 1 (its :func:`skeleton` is the caller's layout, which starts and ends with a
    bracket, so no number touches either end)."""
    a = np.frombuffer(text, np.uint8)
    if len(a) < 2 or _IS_NUMBER[a[0]] or _IS_NUMBER[a[-1]]:
        return None
    # where a run begins or ends; they alternate, a run first (the text starts with a bracket)
    number = np.frombuffer(text.translate(_ONE_IF_NUMBER), np.bool_)
    edges = np.flatnonzero(number[1:] != number[:-1]) + 1  # (nonzero of bools: 4x an int's)
    starts, ends = edges[0::2], edges[1::2]  # a run's first byte, the byte after it
    n = len(starts)
    if n == 0:
        return np.zeros(0), np.zeros(0, bool)
    # check 2: each run sits in a value slot
    if not (_table(before)[a[starts - 1]].all() and _table(after)[a[ends]].all()):
        return None
    # check 3: each run is a JSON number without exponent, of at most 15 characters
    if int((ends - starts).max()) > _MAX_CHARS:
        return None
    neg = a[starts] == 0x2D
    if text.count(b"-") != int(neg.sum()):  # a minus that does not start its run
        return None
    lead = starts + neg  # the first digit; a run is "-" at least, so lead < ends
    if not (_IS_DIGIT[a[lead]] & (lead < ends)).all():  # "-", "-.", ".5"
        return None
    if ((a[lead] == 0x30) & (lead + 1 < ends) & _IS_DIGIT[a[lead + 1]]).any():  # "01", "-01"
        return None
    points = np.flatnonzero(a == 0x2E)
    run = np.searchsorted(starts, points, "right") - 1  # the run each point is in
    if (np.diff(run) == 0).any():  # two points in one number
        return None
    if not (_IS_DIGIT[a[points - 1]] & _IS_DIGIT[a[points + 1]]).all():  # "1.", "-.5"
        return None
    frac = np.zeros(n, np.intp)
    frac[run] = ends[run] - points - 1
    dotted = np.zeros(n, bool)
    dotted[run] = True
    spaced = text.translate(_DIGITS_SPACED, b".")  # the points dropped: digits only
    # Each run is now -?[0-9]+ once its point is dropped (the checks above), so numpy reads the
    # text to its end: no short read, so no warning to silence (warnings.catch_warnings is not
    # thread-safe, and this runs on the predictions thread beside the labels' read).
    try:
        digits = np.fromstring(spaced, dtype=np.int64, sep=" ")
    except ValueError:  # what numpy says it will raise for a short read one day
        return None
    if len(digits) != n:
        return None
    values = digits / _POW10[frac]
    # -0.0 keeps its sign as json's float does (an integer -0 is json's int 0: 0.0)
    values[neg & dotted & (digits == 0)] = -0.0
    return values, ~dotted


def _table(chars: bytes) -> np.ndarray:
    out = np.zeros(256, bool)
    out[list(chars)] = True
    return out


_IS_NUMBER = _table(NUMBER_BYTES)
_IS_DIGIT = _table(b"0123456789")
