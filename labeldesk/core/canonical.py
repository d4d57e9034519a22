"""Canonical serialisation and hashing.

Content addressing only works if equal content always gives equal bytes: keys sorted, no
whitespace, floats rounded to a fixed precision so that 0.1 + 0.2 and 0.3 hash the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Box coordinates are kept to 1/10000 of a pixel: far below any annotator's precision, and
#: coarse enough that float noise from format conversions does not change a hash.
COORD_DECIMALS = 4


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys and no whitespace; the one form we hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def hash_json(value: Any) -> tuple[str, str]:
    """Return ``(hash, text)`` of the canonical JSON of ``value``."""
    text = canonical_json(value)
    return sha256_hex(text), text


def round_coord(value: float) -> float:
    """Round a pixel coordinate to the canonical precision (and turn -0.0 into 0.0)."""
    r = round(float(value), COORD_DECIMALS)
    return r + 0.0  # -0.0 + 0.0 == 0.0
