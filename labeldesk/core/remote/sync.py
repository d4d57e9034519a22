"""push, fetch, pull and clone: versions through an S3 bucket with no lost update.

The work is split along its seams: common.py (refs, ancestry, what the remote is known to
hold), push.py, fetch.py (fetch and clone), packs.py (records packed per push), merge.py
(pull). This module keeps the names callers import.
"""

from __future__ import annotations

from .common import (
    CHUNK,
    Progress,
    RemoteMovedError,
    ahead_behind,
    is_ancestor,
    open_remote,
    parents_first,
)
from .fetch import FetchResult, clone, fetch
from .push import PushResult, push

__all__ = [
    "CHUNK",
    "FetchResult",
    "Progress",
    "PushResult",
    "RemoteMovedError",
    "ahead_behind",
    "clone",
    "fetch",
    "is_ancestor",
    "open_remote",
    "parents_first",
    "push",
]
