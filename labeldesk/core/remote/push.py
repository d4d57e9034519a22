"""push: publish local ``main`` (and tags, decisions) to a remote, never overwriting one.

Order: image bytes (create-only, many at once), then the records in packs (packs.py: the
annotation sets, buckets with their image rows, trees, versions parents first), then the
decisions, then ``refs/main`` by compare-and-swap. Each step starts only when the one before is
confirmed, and what the remote holds is recorded as it is confirmed, so a killed push leaves
the remote naming nothing missing and the next one sends only what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LabelDeskError
from ..progress import CancelFn
from ..store.project import Project
from ..store.versions import MAIN, SHORT, get_version, head
from . import layout as L
from .client import Bucket, PreconditionFailed
from .common import (
    _PUSH_CANCELLED,
    CHUNK,
    Progress,
    RemoteMovedError,
    _ancestors,
    _check,
    _read_ref,
    _record_known,
    _ref_body,
    _set_tracking,
    _topo,
    is_ancestor,
    open_remote,
)
from .packs import write_packs


@dataclass
class PushResult:
    remote: str
    main: str | None
    moved: bool
    sent: dict[str, int] = field(default_factory=dict)
    tags_pushed: list[str] = field(default_factory=list)
    tags_differ: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


_KINDS = {
    "objects": "objects",
    "annset": "annotation sets",
    "bucket": "buckets",
    "tree": "trees",
    "version": "versions",
    "decision": "decisions",
}


def _kind(key: str) -> str:
    parts = key.split("/")
    return _KINDS.get(parts[0] if parts[0] == "objects" else parts[1], parts[0])


def _send(
    project: Project,
    remote: str,
    bucket: Bucket,
    items: Iterable[tuple[str, Callable[[], bytes]]],
    total: int,
    what: str,
    progress: Progress | None,
    sent: dict[str, int],
    cancel: CancelFn | None = None,
) -> None:
    """Create-only writes of ``items`` as one stream of requests, recording the confirmed keys
    every CHUNK (and whatever got there when it fails), checking ``cancel`` between."""
    _check(cancel, _PUSH_CANCELLED)
    confirmed: list[str] = []
    done = 0

    def flush() -> None:
        nonlocal done
        _record_known(project, remote, confirmed)
        for key in confirmed:
            sent[_kind(key)] = sent.get(_kind(key), 0) + 1
        done += len(confirmed)
        confirmed.clear()

    def on_done(key: str) -> None:
        confirmed.append(key)
        if len(confirmed) >= CHUNK:
            flush()
            if progress:
                progress(done, total, what)
            _check(cancel, _PUSH_CANCELLED)

    try:
        bucket.create_many(items, on_done)
    finally:
        flush()  # what got there, even on failure
    if progress:
        progress(done, total, what)


_IMAGE_FIELDS = (
    "format", "width", "height", "orientation", "raw_width", "raw_height", "mode", "byte_size"
)  # fmt: skip
_IMAGE_SQL = f"SELECT sha256, {', '.join(_IMAGE_FIELDS)} FROM image WHERE sha256 IN "


def _records(
    project: Project,
    annsets: Iterable[str],
    buckets: Sequence[str],
    trees: Sequence[str],
    versions: Sequence[str],
    counts: dict[str, int],
) -> Iterator[tuple[str, bytes]]:
    """The records to pack, made one at a time, each after those it names: annotation sets,
    buckets, trees, then versions parents first. ``counts`` counts them by kind."""
    db = project.db

    def row(sql: str, key: str, fields: Sequence[str]) -> bytes:
        r = db.execute(sql, [key]).fetchone()
        return L.encode(dict(zip(fields, r, strict=True)))

    for h in annsets:
        counts["annotation sets"] = counts.get("annotation sets", 0) + 1
        yield (
            L.annset_key(h),
            row(
                "SELECT boxes AS text, n_boxes FROM annotation_set WHERE hash = ?",
                h,
                ("text", "n_boxes"),
            ),
        )
    for h in buckets:
        # A bucket carries the rows of its images (size, orientation, format: what a clone
        # needs before it has the bytes), so images cost no record of their own.
        text, n_images, n_boxes = db.execute(
            "SELECT entries, n_images, n_boxes FROM manifest_bucket WHERE hash = ?", [h]
        ).fetchone()
        shas = list(json.loads(text))
        rows = db.execute(f"{_IMAGE_SQL}({','.join('?' * len(shas))})", shas).fetchall()
        images = {r[0]: dict(zip(_IMAGE_FIELDS, r[1:], strict=True)) for r in rows}
        counts["buckets"] = counts.get("buckets", 0) + 1
        yield (
            L.bucket_key(h),
            L.encode({"text": text, "n_images": n_images, "n_boxes": n_boxes, "images": images}),
        )
    for h in trees:
        counts["trees"] = counts.get("trees", 0) + 1
        yield (
            L.tree_key(h),
            row(
                "SELECT buckets, n_images, n_boxes FROM manifest_tree WHERE hash = ?",
                h,
                ("text", "n_images", "n_boxes"),
            ),
        )
    for vid in versions:
        v = get_version(db, vid)
        body = {
            "tree": v.tree,
            "classes": v.classes,
            "parents": v.parents,
            "kind": v.kind,
            "author": v.author,
            "message": v.message,
            "created": v.created,
            "provenance": v.provenance,
            "n_images": v.n_images,
            "n_boxes": v.n_boxes,
        }
        counts["versions"] = counts.get("versions", 0) + 1
        yield L.version_key(vid), L.encode(body)


class _PushStage:
    """What a push is to send that the remote is not known to hold, in temporary tables (the
    connection's own, on disk), read a page at a time: memory stays the same however many
    images there are."""

    def __init__(self, project: Project, remote: str) -> None:
        self.db = project.db
        self.remote = remote
        for table in ("push_image", "push_annset"):
            self.db.execute(f"DROP TABLE IF EXISTS temp.{table}")
            self.db.execute(f"CREATE TEMP TABLE {table} (name TEXT PRIMARY KEY) WITHOUT ROWID")

    def close(self) -> None:
        for table in ("push_image", "push_annset"):
            self.db.execute(f"DROP TABLE IF EXISTS temp.{table}")

    def known(self, key: str) -> bool:
        return bool(
            self.db.execute(
                "SELECT 1 FROM remote_has WHERE remote = ? AND key = ?", [self.remote, key]
            ).fetchone()
        )

    def add_bucket(self, h: str) -> None:
        """Stage the images and annotation sets of bucket ``h`` the remote is not known to hold."""
        self.db.execute(
            "INSERT OR IGNORE INTO temp.push_image (name) SELECT j.key "
            "FROM manifest_bucket b, json_each(b.entries) j WHERE b.hash = ? AND NOT EXISTS "
            "(SELECT 1 FROM remote_has r WHERE r.remote = ? AND r.key = "
            "'objects/sha256/' || substr(j.key, 1, 2) || '/' || substr(j.key, 3))",
            [h, self.remote],
        )
        self.db.execute(
            "INSERT OR IGNORE INTO temp.push_annset (name) SELECT json_extract(j.value, '$[0]') "
            "FROM manifest_bucket b, json_each(b.entries) j WHERE b.hash = ? AND NOT EXISTS "
            "(SELECT 1 FROM remote_has r WHERE r.remote = ? AND r.key = "
            "'records/annset/' || json_extract(j.value, '$[0]'))",
            [h, self.remote],
        )

    def count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM temp.{table}").fetchone()[0])

    def names(self, table: str) -> Iterator[str]:
        """The staged names in order, a page (one query) at a time, so the caller may write
        between pages."""
        last = ""
        while True:
            page = [
                r[0]
                for r in self.db.execute(
                    f"SELECT name FROM temp.{table} WHERE name > ? ORDER BY name LIMIT ?",
                    [last, CHUNK],
                )
            ]
            if not page:
                return
            yield from page
            last = page[-1]


def _push_content(
    project: Project,
    remote: str,
    bucket: Bucket,
    stage: _PushStage,
    wanted: set[str],
    result: PushResult,
    progress: Progress | None,
    cancel: CancelFn | None,
) -> None:
    """Steps 1 and 2 of a push: the image bytes, then the records in packs, of the versions in
    ``wanted`` that the remote is not known to hold."""
    db = project.db
    new_versions = {v for v in wanted if not stage.known(L.version_key(v))}
    # The trees and buckets of the new versions (at most 4,096 buckets a tree, whatever the
    # number of images), then their images and annotation sets, staged.
    trees: set[str] = set()
    buckets: set[str] = set()
    for vid in new_versions:
        t = db.execute("SELECT tree FROM version WHERE id = ?", [vid]).fetchone()[0]
        if t not in trees and not stage.known(L.tree_key(t)):
            trees.add(t)
            text = db.execute("SELECT buckets FROM manifest_tree WHERE hash = ?", [t]).fetchone()
            buckets.update(
                h for h in json.loads(text[0]).values() if not stage.known(L.bucket_key(h))
            )
    for b in buckets:
        stage.add_bucket(b)

    # 1. The image bytes: one stream of create-only writes, as many in flight as s5cmd has.
    objects = project.objects

    def obj(sha: str) -> Callable[[], bytes]:
        return lambda: objects.read_bytes(sha)

    n_images = stage.count("push_image")
    if n_images:
        _send(
            project, remote, bucket,
            ((L.object_key(s), obj(s)) for s in stage.names("push_image")),
            n_images, "objects", progress, result.sent, cancel,
        )  # fmt: skip

    # 2. The records, in packs written one after another: each pack's records come after
    # those they name, so whatever a killed push leaves indexed names nothing missing.
    versions = _topo(project, new_versions)
    n_annsets = stage.count("push_annset")
    n_records = n_annsets + len(buckets) + len(trees) + len(versions)
    counts: dict[str, int] = {}
    records = _records(
        project, stage.names("push_annset"), sorted(buckets), sorted(trees), versions, counts
    )

    def packed(keys: list[str]) -> None:
        _record_known(project, remote, keys)
        if progress:
            progress(sum(counts.values()), n_records, "records")

    n_packs = write_packs(bucket, records, packed, lambda: _check(cancel, _PUSH_CANCELLED))
    if n_packs:
        result.sent.update(counts)
        result.sent["packs"] = n_packs


def push(
    project: Project,
    name: str | None = None,
    progress: Progress | None = None,
    cancel: CancelFn | None = None,
) -> PushResult:
    """Publish local ``main`` (and tags, decisions) to the remote; see the module docstring.

    Raises :class:`RemoteMovedError` ("fetch and merge first") when the remote's ``main`` is
    not an ancestor of the local one: a push never overwrites someone else's work.
    """
    remote, bucket = open_remote(project, name)
    db = project.db
    local_main = head(db)
    if local_main is None:
        raise LabelDeskError("nothing to push: this project has no versions yet")
    current = _read_ref(bucket, L.MAIN_REF)
    if (
        current is not None
        and current[0] != local_main
        and not is_ancestor(project, current[0], local_main)
    ):
        # (a version this project does not have is no ancestor either)
        raise RemoteMovedError(
            f"the remote {remote.name}'s main moved to {current[0][:SHORT]}, which this "
            f"project's main does not contain: fetch and merge first (`labeldesk pull "
            f"{remote.name}`), then push"
        )
    tags = dict(db.execute("SELECT name, version FROM ref WHERE kind = 'tag'").fetchall())
    wanted = _ancestors(project, [local_main, *tags.values()])
    result = PushResult(remote.name, local_main, moved=False)
    stage = _PushStage(project, remote.name)
    try:
        _push_content(project, remote.name, bucket, stage, wanted, result, progress, cancel)
    finally:
        stage.close()

    # 3. Decisions: append-only records of versions the remote now holds, one key each (a
    # fetch lists them, and a decision may come long after its version was pushed).
    known_decisions = {
        r[0]
        for r in db.execute(
            "SELECT key FROM remote_has WHERE remote = ? AND key >= ? AND key < ?",
            [remote.name, L.DECISIONS, L.DECISIONS[:-1] + "0"],  # '0' sorts just after '/'
        )
    }
    decisions = []
    for vid, decision, by, at, note in db.execute(
        "SELECT version, decision, by, at, note FROM decision ORDER BY at"
    ):
        if vid in wanted:
            key, data = L.decision_record(vid, decision, by, at, note)
            if key not in known_decisions:
                decisions.append((key, (lambda d=data: d)))
    if decisions:
        _send(
            project, remote.name, bucket, decisions, len(decisions), "decisions", progress,
            result.sent, cancel,
        )  # fmt: skip
    _check(cancel, _PUSH_CANCELLED)  # the last moment: after the ref moves, it is published

    # 4. The ref, last, by compare-and-swap.
    if current is None or current[0] != local_main:
        ref_body = _ref_body(project, local_main, current[0] if current else None)
        try:
            if current is None:
                etag = bucket.create_or_fail(L.MAIN_REF, ref_body)
            else:
                etag = bucket.replace(L.MAIN_REF, ref_body, current[1])
        except PreconditionFailed:
            raise RemoteMovedError(
                f"the remote {remote.name}'s main moved while this push ran: fetch and merge "
                f"first (`labeldesk pull {remote.name}`), then push; everything sent is kept "
                "and will not be sent again"
            ) from None
        result.moved = True
    else:
        etag = current[1]
    with project.transaction():
        _set_tracking(project, remote.name, MAIN, local_main, etag)
    _push_tags(project, remote.name, bucket, tags, result)
    return result


def _push_tags(
    project: Project, remote: str, bucket: Bucket, tags: dict[str, str], result: PushResult
) -> None:
    """Create each tag the remote lacks (tags are made once); note those that differ there."""
    db = project.db
    for tag_name, vid in sorted(tags.items()):
        tracked = db.execute(
            "SELECT version FROM remote_ref WHERE remote = ? AND name = ?",
            [remote, f"tags/{tag_name}"],
        ).fetchone()
        if tracked and tracked[0] == vid:
            continue
        key = L.tag_key(tag_name)
        try:
            tag_etag = bucket.create_or_fail(key, _ref_body(project, vid, None))
            result.tags_pushed.append(tag_name)
        except PreconditionFailed:
            there = _read_ref(bucket, key)
            if there is None or there[0] != vid:
                result.tags_differ.append(tag_name)
                continue
            tag_etag = there[1]
        with project.transaction():
            _set_tracking(project, remote, f"tags/{tag_name}", vid, tag_etag)
