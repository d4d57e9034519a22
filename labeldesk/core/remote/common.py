"""What push and fetch share: the remote's refs, the ancestry of versions, and what the remote
is known to hold (``remote_has``), recorded as each key is confirmed so nothing is sent twice.

Order of a push (push.py): image bytes, then the records in packs (packs.py), then the
decisions, then the refs by compare-and-swap. Each step starts only when the one before is
confirmed, so a ref on the remote never names something missing, whenever a push is killed.
A fetch (fetch.py) verifies every record and object against its name before it writes one row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from ..errors import CancelledError, RefMovedError
from ..progress import CancelFn, ProgressFn
from ..store.project import Project, now_iso
from ..store.versions import MAIN, head
from . import layout as L
from .client import Bucket, RemoteError
from .config import Remote, get_remote
from .probe import ensure_probed

#: Keys confirmed between two writes of ``remote_has``: a killed push re-sends at most these.
CHUNK = 2048

#: The one progress type (``progress(done, total, what)``), named as the remote has used it.
Progress = ProgressFn


def _check(cancel: CancelFn | None, what: str) -> None:
    if cancel is not None and cancel():
        raise CancelledError(what)


_PUSH_CANCELLED = "push cancelled: nothing was published; what was sent is kept, not sent again"
_FETCH_CANCELLED = "fetch cancelled; the project is unchanged"


class RemoteMovedError(RefMovedError, RemoteError):
    """The remote's ``main`` is not an ancestor of ours: fetch and merge first."""


def open_remote(project: Project, name: str | None) -> tuple[Remote, Bucket]:
    remote = get_remote(project, name)
    assert remote is not None
    bucket = Bucket(remote.url, remote.endpoint_url)
    ensure_probed(project, remote, bucket)
    return remote, bucket


def _record_known(project: Project, remote: str, keys: Iterable[str]) -> None:
    rows = [(remote, k) for k in keys]
    if not rows:
        return
    with project.transaction():
        project.db.conn.executemany(
            "INSERT OR IGNORE INTO remote_has (remote, key) VALUES (?, ?)", rows
        )


def _set_tracking(project: Project, remote: str, name: str, version: str, etag: str) -> None:
    project.db.execute(
        "INSERT INTO remote_ref (remote, name, version, etag, seen_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(remote, name) DO UPDATE SET version = excluded.version, "
        "etag = excluded.etag, seen_at = excluded.seen_at",
        [remote, name, version, etag, now_iso()],
    )


def _ancestors(project: Project, starts: Iterable[str]) -> set[str]:
    """Every version reachable from ``starts`` through all parents (``starts`` included)."""
    seen: set[str] = set()
    todo = [s for s in starts if s]
    while todo:
        vid = todo.pop()
        if vid in seen:
            continue
        seen.add(vid)
        row = project.db.execute("SELECT parents FROM version WHERE id = ?", [vid]).fetchone()
        if row:
            todo.extend(json.loads(row[0]))
    return seen


def is_ancestor(project: Project, maybe: str, of: str) -> bool:
    return maybe in _ancestors(project, [of])


def _read_ref(bucket: Bucket, key: str) -> tuple[str, str] | None:
    got = bucket.get(key)
    if got is None:
        return None
    record = L.decode(key, got[0])
    vid = record.get("version")
    if not isinstance(vid, str):
        raise RemoteError(f"{key} on the remote names no version")
    return vid, got[1]


def _ref_body(project: Project, version: str, previous: str | None) -> bytes:
    return L.encode({"version": version, "previous": previous, "by": project.user, "at": now_iso()})


def parents_first(vids: Iterable[str], parents_of: Callable[[str], Iterable[str]]) -> list[str]:
    """``vids`` ordered so that every version comes after those of its parents among them (an
    iterative depth-first walk: histories are far deeper than Python's recursion limit)."""
    wanted = set(vids)
    order: list[str] = []
    done: set[str] = set()
    for start in sorted(wanted):
        stack = [(start, False)]
        while stack:
            cur, expanded = stack.pop()
            if cur in done:
                continue
            if expanded:
                done.add(cur)
                order.append(cur)
                continue
            stack.append((cur, True))
            stack.extend((p, False) for p in parents_of(cur) if p in wanted and p not in done)
    return order


def _topo(project: Project, vids: set[str]) -> list[str]:
    """``vids`` ordered parents first."""

    def parents(v: str) -> list[str]:
        row = project.db.execute("SELECT parents FROM version WHERE id = ?", [v]).fetchone()
        return json.loads(row[0]) if row else []

    return parents_first(vids, parents)


def ahead_behind(project: Project, name: str | None = None) -> tuple[int, int] | None:
    """(versions on local main not on the remote's, and the reverse) as last seen; no network."""
    remote = get_remote(project, name)
    assert remote is not None
    row = project.db.execute(
        "SELECT version FROM remote_ref WHERE remote = ? AND name = ?", [remote.name, MAIN]
    ).fetchone()
    local = head(project.db)
    if row is None or local is None:
        return None
    ours = _ancestors(project, [local])
    theirs = _ancestors(project, [row[0]])
    return len(ours - theirs), len(theirs - ours)
