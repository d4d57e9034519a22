"""Recompute what a row's name promises, and compare.

Every version id, tree, bucket and annotation-set hash is the SHA-256 of canonical JSON, so each
can be recomputed from the row alone: a row changed behind LabelDesk's back no longer matches
its name. These functions are the one place that says how, used when a version is written
(:func:`version_id`) and by everything that checks (``fsck``, and export as it reads rows).
They return problems as plain sentences and never raise on bad content.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from typing import Any

from ..boxes import Box
from ..canonical import hash_json, sha256_hex


def version_body(
    *,
    tree: str,
    classes: list[dict[str, Any]],
    parents: Sequence[str],
    kind: str,
    author: str,
    message: str,
    created: str,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The content a version id is the hash of: everything but its review status and counts.

    Status changes when a lead decides (and decisions are checked against it separately);
    counts are derived from the tree, which the id already covers.
    """
    return {
        "tree": tree,
        "classes": classes,
        "parents": list(parents),
        "kind": kind,
        "author": author,
        "message": message,
        "created": created,
        "provenance": provenance,
    }


def version_id(**content: Any) -> str:
    """The id of a version with this content (keyword arguments of :func:`version_body`)."""
    return hash_json(version_body(**content))[0]


def version_id_of_row(
    tree: str,
    classes: str,
    parents: str,
    kind: str,
    author: str,
    message: str,
    created: str,
    provenance: str,
) -> str:
    """Recompute a version id from the stored columns (JSON text as the ``version`` table has it).

    Raises ``ValueError`` when a JSON column does not parse.
    """
    return version_id(
        tree=tree,
        classes=json.loads(classes),
        parents=json.loads(parents),
        kind=kind,
        author=author,
        message=message,
        created=created,
        provenance=json.loads(provenance),
    )


def content_hash(text: str) -> str:
    """The hash a content-addressed row's JSON must have: that of its canonical form.

    Raises ``ValueError`` when ``text`` is not JSON.
    """
    return hash_json(json.loads(text))[0]


def row_matches(key: str, text: object) -> bool:
    """Whether a content-addressed row's stored JSON ``text`` hashes to its ``key``.

    LabelDesk stores the canonical text, so hashing the text as it is stored is the fast check;
    text that differs from it only in form (spacing, key order) is judged by its content, as
    ``labeldesk fsck`` does.
    """
    if not isinstance(text, str):
        return False
    if sha256_hex(text) == key:
        return True
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return hash_json(value)[0] == key


def row_hash_problem(what: str, name: str, text: str) -> str | None:
    """``None`` if the JSON ``text`` of row ``name`` hashes to ``name``, else the problem.

    ``what`` names the kind of row for the message: ``annotation set``, ``manifest bucket``,
    ``manifest tree``.
    """
    if not isinstance(text, str):
        return f"{what} {name}: content is not text but {type(text).__name__}"
    try:
        digest = content_hash(text)
    except ValueError as e:
        return f"{what} {name}: content is not valid JSON ({e})"
    if digest != name:
        return f"{what} {name}: content does not match its hash (it hashes to {digest})"
    return None


def box_problems(value: Any) -> list[str]:
    """Why a stored list of box dicts is not a valid set of labels (empty list: it is).

    Each box must be what :class:`~labeldesk.core.boxes.Box` accepts: finite coordinates, a
    positive width and height, a known origin and state.
    """
    if not isinstance(value, list):
        return [f"boxes are not a list but {type(value).__name__}"]
    out = []
    for i, d in enumerate(value):
        try:
            if not isinstance(d, dict):
                raise TypeError(f"not an object but {type(d).__name__}")
            Box.from_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
            out.append(f"box {i}: {detail}")
    return out


class NotARegularFile(OSError):
    """A path that should hold file bytes is a FIFO, device, socket, link or folder."""


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file (never follows a link).

    Opening a FIFO for reading blocks until a writer appears, so a store whose object was
    replaced by one would hang a reader forever: the type is checked with ``lstat`` first, and
    again on the open descriptor (opened non-blocking, without following links) in case the
    path was swapped in between. Raises :class:`NotARegularFile` or ``OSError``.
    """
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile(f"{_kind(st.st_mode)}, not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"{_kind(st.st_mode)}, not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
