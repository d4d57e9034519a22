"""The layout in the bucket and the records kept there (docs/remote.md shows it).

Everything but the refs is content-addressed and written create-only, so writing it twice, or
two pushers writing it at once, is harmless. Each record carries the exact text of the row it
stands for, so the receiver recomputes the name from the content and refuses a mismatch.
"""

from __future__ import annotations

import json
from typing import Any

from ..canonical import canonical_json, hash_json
from ..store.integrity import content_hash, version_id
from .client import RemoteError

MAIN_REF = "refs/main"
TAG_REFS = "refs/tags/"
DECISIONS = "records/decision/"
RECORDS = "records/"
#: Packs of records (packs.py): ``packs/<sha256 of the pack>.pack`` and its ``.idx``.
PACKS = "packs/"


def object_key(sha: str) -> str:
    return f"objects/sha256/{sha[:2]}/{sha[2:]}"


def annset_key(h: str) -> str:
    return f"records/annset/{h}"


def bucket_key(h: str) -> str:
    return f"records/bucket/{h}"


def tree_key(h: str) -> str:
    return f"records/tree/{h}"


def version_key(vid: str) -> str:
    return f"records/version/{vid}"


def pack_key(sha: str) -> str:
    return f"{PACKS}{sha}.pack"


def index_key(sha: str) -> str:
    return f"{PACKS}{sha}.idx"


def tag_key(name: str) -> str:
    return f"{TAG_REFS}{name}"


def decision_record(version: str, decision: str, by: str, at: str, note: str) -> tuple[str, bytes]:
    body = {"version": version, "decision": decision, "by": by, "at": at, "note": note}
    h, text = hash_json(body)
    return f"{DECISIONS}{version}/{h}", text.encode()


def encode(value: Any) -> bytes:
    return canonical_json(value).encode()


def decode(key: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as e:
        raise RemoteError(f"{key} on the remote is not a LabelDesk record ({e})") from None
    if not isinstance(value, dict):
        raise RemoteError(f"{key} on the remote is not a LabelDesk record")
    return value


def check_hashed(key: str, name: str, text: Any) -> str:
    """The row text of a content-addressed record, after checking it hashes to ``name``."""
    if not isinstance(text, str):
        raise RemoteError(f"{key} on the remote has no content")
    try:
        ok = content_hash(text) == name
    except ValueError:
        ok = False
    if not ok:
        raise RemoteError(f"{key} on the remote does not hash to its name: refused")
    return text


VERSION_FIELDS = ("tree", "classes", "parents", "kind", "author", "message", "created")


def check_version(key: str, vid: str, record: dict[str, Any]) -> dict[str, Any]:
    """A version record, after recomputing its id from its content."""
    try:
        body = {f: record[f] for f in (*VERSION_FIELDS, "provenance")}
        ok = version_id(**body) == vid
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise RemoteError(f"{key} on the remote does not hash to its id: refused")
    return record


def check_record(key: str, data: bytes) -> dict[str, Any]:
    """The record stored under ``key`` (a version, tree, bucket or annotation set), after
    recomputing its name from its content; RemoteError if it is not what its name says."""
    record = decode(key, data)
    kind, _, name = key[len(RECORDS) :].partition("/")
    if kind == "version":
        return check_version(key, name, record)
    if kind in ("tree", "bucket", "annset"):
        check_hashed(key, name, record.get("text"))
        return record
    raise RemoteError(f"{key} is not a record LabelDesk reads")
