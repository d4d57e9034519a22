"""push, fetch, pull and clone: versions through an S3 bucket with no lost update.

Order of a push: objects (image bytes), then the rows as create-only records (images,
annotation sets, buckets, trees, versions parents first, decisions), then the refs by
compare-and-swap. Each step starts only when the one before is confirmed, so a ref on the
remote never names something missing, whenever a push is killed; and what the remote is known
to hold is recorded locally as it is confirmed, so the next push sends only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CancelledError, LabelDeskError, RefMovedError
from ..packed import pack_labels, put_label_copies
from ..progress import CancelFn
from ..project import Project, now_iso
from ..versions import MAIN, SHORT, get_version, head, set_ref
from . import layout as L
from .client import Bucket, PreconditionFailed, RemoteError
from .config import Remote, add_remote, get_remote
from .probe import ensure_probed

#: Keys confirmed between two writes of ``remote_has``: a killed push re-sends at most these.
CHUNK = 2048

Progress = Callable[[str, int, int], None]


def _check(cancel: CancelFn | None, what: str) -> None:
    if cancel is not None and cancel():
        raise CancelledError(what)


_PUSH_CANCELLED = "push cancelled: nothing was published; what was sent is kept, not sent again"
_FETCH_CANCELLED = "fetch cancelled; the project is unchanged"


class RemoteMovedError(RefMovedError, RemoteError):
    """The remote's ``main`` is not an ancestor of ours: fetch and merge first."""


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


@dataclass
class FetchResult:
    remote: str
    main: str | None
    versions: list[str] = field(default_factory=list)
    objects: int = 0
    decisions: int = 0
    tags_added: list[str] = field(default_factory=list)
    tags_differ: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def open_remote(project: Project, name: str | None) -> tuple[Remote, Bucket]:
    remote = get_remote(project, name)
    assert remote is not None
    bucket = Bucket(remote.url, remote.endpoint_url)
    ensure_probed(project, remote, bucket)
    return remote, bucket


def _known(project: Project, remote: str) -> set[str]:
    return {
        r[0] for r in project.db.execute("SELECT key FROM remote_has WHERE remote = ?", [remote])
    }


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


# -- push ---------------------------------------------------------------------------------------


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


_KINDS = {
    "objects": "objects",
    "annset": "annotation sets",
    "bucket": "buckets",
    "tree": "trees",
    "decision": "decisions",
}


def _kind(key: str) -> str:
    parts = key.split("/")
    return _KINDS.get(parts[0] if parts[0] == "objects" else parts[1], parts[0])


def _send(
    project: Project,
    remote: str,
    bucket: Bucket,
    items: Sequence[tuple[str, Callable[[], bytes]]],
    what: str,
    progress: Progress | None,
    sent: dict[str, int],
    cancel: CancelFn | None = None,
) -> None:
    """Create-only writes of ``items``, recording each confirmed key every CHUNK keys."""
    total = len(items)
    for start in range(0, total, CHUNK):
        _check(cancel, _PUSH_CANCELLED)
        chunk = items[start : start + CHUNK]
        confirmed: list[str] = []
        try:
            bucket.create_many(chunk, confirmed.append)
        finally:
            _record_known(project, remote, confirmed)  # what got there, even on failure
        for key, _ in chunk:
            sent[_kind(key)] = sent.get(_kind(key), 0) + 1
        if progress:
            progress(what, min(start + CHUNK, total), total)


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
    known = _known(project, remote.name)
    wanted = _ancestors(project, [local_main, *tags.values()])
    new_versions = {v for v in wanted if L.version_key(v) not in known}
    result = PushResult(remote.name, local_main, moved=False)

    # What the new versions need that the remote is not known to hold.
    trees: dict[str, str] = {}
    for vid in new_versions:
        t = db.execute("SELECT tree FROM version WHERE id = ?", [vid]).fetchone()[0]
        if L.tree_key(t) not in known:
            trees[t] = db.execute(
                "SELECT buckets FROM manifest_tree WHERE hash = ?", [t]
            ).fetchone()[0]
    buckets: set[str] = set()
    for text in trees.values():
        buckets.update(h for h in json.loads(text).values() if L.bucket_key(h) not in known)
    images: set[str] = set()
    annsets: set[str] = set()
    for b in buckets:
        entries = json.loads(
            db.execute("SELECT entries FROM manifest_bucket WHERE hash = ?", [b]).fetchone()[0]
        )
        for image, entry in entries.items():
            if L.object_key(image) not in known:
                images.add(image)
            if L.annset_key(entry[0]) not in known:
                annsets.add(entry[0])
    del trees  # only the hashes are needed from here

    objects = project.objects

    def obj(sha: str) -> Callable[[], bytes]:
        return lambda: objects.read_bytes(sha)

    def row(sql: str, key: str, fields: Sequence[str]) -> Callable[[], bytes]:
        def make() -> bytes:
            r = db.execute(sql, [key]).fetchone()
            return L.encode(dict(zip(fields, r, strict=True)))

        return make

    image_fields = (
        "format", "width", "height", "orientation", "raw_width", "raw_height", "mode", "byte_size"
    )  # fmt: skip
    image_sql = f"SELECT sha256, {', '.join(image_fields)} FROM image WHERE sha256 IN "

    def bucket_record(h: str) -> Callable[[], bytes]:
        # A bucket carries the rows of its images (size, orientation, format: what a clone
        # needs before it has the bytes), so a push costs one request per bucket, not per image.
        def make() -> bytes:
            text, n_images, n_boxes = db.execute(
                "SELECT entries, n_images, n_boxes FROM manifest_bucket WHERE hash = ?", [h]
            ).fetchone()
            shas = list(json.loads(text))
            rows = db.execute(f"{image_sql}({','.join('?' * len(shas))})", shas).fetchall()
            images = {r[0]: dict(zip(image_fields, r[1:], strict=True)) for r in rows}
            return L.encode(
                {"text": text, "n_images": n_images, "n_boxes": n_boxes, "images": images}
            )

        return make

    steps: list[tuple[str, list[tuple[str, Callable[[], bytes]]]]] = [
        (
            "objects",
            [(L.object_key(s), obj(s)) for s in sorted(images)],
        ),
        (
            "annotation sets",
            [
                (
                    L.annset_key(h),
                    row(
                        "SELECT boxes AS text, n_boxes FROM annotation_set WHERE hash = ?",
                        h,
                        ("text", "n_boxes"),
                    ),
                )
                for h in sorted(annsets)
            ],
        ),
        ("buckets", [(L.bucket_key(h), bucket_record(h)) for h in sorted(buckets)]),
    ]
    tree_hashes = sorted(
        {
            db.execute("SELECT tree FROM version WHERE id = ?", [v]).fetchone()[0]
            for v in new_versions
        }
        - {k.split("/")[-1] for k in known if k.startswith("records/tree/")}
    )
    steps.append(
        (
            "trees",
            [
                (
                    L.tree_key(h),
                    row(
                        "SELECT buckets, n_images, n_boxes FROM manifest_tree WHERE hash = ?",
                        h,
                        ("text", "n_images", "n_boxes"),
                    ),
                )
                for h in tree_hashes
            ],
        )
    )
    # Objects and annotation sets name nothing, so they go up together; buckets name them,
    # trees name buckets: each of those waits for the step before.
    leaves = [item for _, items in steps[:2] for item in items]
    phases = [("objects", leaves), *steps[2:]]
    for what, items in phases:
        if items:
            _send(project, remote.name, bucket, items, what, progress, result.sent, cancel)

    # Versions one at a time, parents first: a version record never names a missing parent.
    version_items = []
    for vid in _topo(project, new_versions):
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
        version_items.append((L.version_key(vid), L.encode(body)))
    for i, (key, data) in enumerate(version_items, 1):
        _check(cancel, _PUSH_CANCELLED)
        bucket.create(key, data)
        _record_known(project, remote.name, [key])
        if progress:
            progress("versions", i, len(version_items))
    if version_items:
        result.sent["versions"] = len(version_items)

    # Decisions: append-only records of versions the remote now holds.
    decisions = []
    for vid, decision, by, at, note in db.execute(
        "SELECT version, decision, by, at, note FROM decision ORDER BY at"
    ):
        if vid in wanted:
            key, data = L.decision_record(vid, decision, by, at, note)
            if key not in known:
                decisions.append((key, (lambda d=data: d)))
    if decisions:
        _send(project, remote.name, bucket, decisions, "decisions", progress, result.sent, cancel)
    _check(cancel, _PUSH_CANCELLED)  # the last moment: after the ref moves, it is published

    # The ref, last, by compare-and-swap.
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

    for tag_name, vid in sorted(tags.items()):
        tracked = db.execute(
            "SELECT version FROM remote_ref WHERE remote = ? AND name = ?",
            [remote.name, f"tags/{tag_name}"],
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
            _set_tracking(project, remote.name, f"tags/{tag_name}", vid, tag_etag)
    return result


# -- fetch --------------------------------------------------------------------------------------


def _has_version(project: Project, vid: str) -> bool:
    return bool(project.db.execute("SELECT 1 FROM version WHERE id = ?", [vid]).fetchone())


def _has_row(project: Project, table: str, column: str, key: str) -> bool:
    return bool(project.db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", [key]).fetchone())


def fetch(
    project: Project,
    name: str | None = None,
    progress: Progress | None = None,
    cancel: CancelFn | None = None,
    *,
    objects: bool | None = None,
) -> FetchResult:
    """Bring the remote's versions, tags and decisions in; local refs other than new tags stay.

    ``objects=False`` brings only the rows (a lazy clone); the default fetches image bytes
    unless the remote was registered as lazy. Everything is verified against its name before it
    is stored, and all rows are written in one transaction after the bytes they need.
    """
    remote, bucket = open_remote(project, name)
    if objects is None:
        objects = not remote.lazy
    main = _read_ref(bucket, L.MAIN_REF)
    tag_refs: dict[str, tuple[str, str]] = {}
    for key in bucket.list(L.TAG_REFS):
        got = _read_ref(bucket, key)
        if got is not None:
            tag_refs[key[len(L.TAG_REFS) :]] = got
    result = FetchResult(remote.name, main[0] if main else None)
    fetched: set[str] = set()

    # Versions: breadth first from the refs to what this project already has.
    records: dict[str, dict[str, Any]] = {}
    frontier = {v for v, _ in ([main] if main else []) + list(tag_refs.values())}
    while frontier:
        todo = [v for v in frontier if v not in records and not _has_version(project, v)]
        version_data = bucket.get_many([L.version_key(v) for v in todo])
        frontier = set()
        for vid in todo:
            key = L.version_key(vid)
            rec = L.check_version(key, vid, L.decode(key, version_data[key]))
            records[vid] = rec
            fetched.add(key)
            frontier.update(p for p in rec["parents"] if isinstance(p, str))
    if progress:
        progress("versions", len(records), len(records))

    def fetch_hashed(
        kind: str, keyf: Callable[[str], str], names: Iterable[str]
    ) -> dict[str, dict]:
        names = sorted(set(names))
        out: dict[str, dict] = {}
        for start in range(0, len(names), CHUNK):
            _check(cancel, _FETCH_CANCELLED)
            part = names[start : start + CHUNK]
            got = bucket.get_many([keyf(n) for n in part])
            for n in part:
                key = keyf(n)
                rec = L.decode(key, got[key])
                L.check_hashed(key, n, rec.get("text"))
                out[n] = rec
                fetched.add(key)
            if progress:
                progress(kind, min(start + CHUNK, len(names)), len(names))
        return out

    trees = fetch_hashed(
        "trees",
        L.tree_key,
        (
            r["tree"]
            for r in records.values()
            if not _has_row(project, "manifest_tree", "hash", r["tree"])
        ),
    )
    bucket_names: set[str] = set()
    for rec in trees.values():
        for h in json.loads(rec["text"]).values():
            if not _has_row(project, "manifest_bucket", "hash", h):
                bucket_names.add(h)
    buckets = fetch_hashed("buckets", L.bucket_key, bucket_names)
    need_images: set[str] = set()
    need_annsets: set[str] = set()
    for rec in buckets.values():
        for image, entry in json.loads(rec["text"]).items():
            if not _has_row(project, "image", "sha256", image):
                need_images.add(image)
            if not _has_row(project, "annotation_set", "hash", entry[0]):
                need_annsets.add(entry[0])
    annsets = fetch_hashed("annotation sets", L.annset_key, need_annsets)
    # Image rows come with their buckets; then the bytes (verified, stored and made durable
    # before the transaction that writes the rows naming them).
    image_rows: dict[str, dict] = {}
    for rec in buckets.values():
        rows = rec.get("images") or {}
        for image in json.loads(rec["text"]):
            if image in need_images:
                if image not in rows:
                    raise RemoteError(f"a bucket on the remote lacks the row of image {image}")
                image_rows[image] = rows[image]
    names = sorted(need_images)
    journal = _Journal(project)
    try:
        if objects:
            result.objects = _fetch_objects(project, bucket, names, progress, cancel, journal)
            fetched.update(L.object_key(s) for s in names)
        _commit_fetch(
            project, remote, result, records, trees, buckets, annsets, image_rows,
            main, tag_refs, fetched, bucket, journal, cancel,
        )  # fmt: skip
    except BaseException:
        journal.abort()
        raise
    return result


def _commit_fetch(
    project: Project,
    remote: Remote,
    result: FetchResult,
    records: dict[str, dict[str, Any]],
    trees: dict[str, dict],
    buckets: dict[str, dict],
    annsets: dict[str, dict],
    image_rows: dict[str, dict],
    main: tuple[str, str] | None,
    tag_refs: dict[str, tuple[str, str]],
    fetched: set[str],
    bucket: Bucket,
    journal: _Journal,
    cancel: CancelFn | None,
) -> None:
    """Read the decisions, then write every row of the fetch in one transaction."""
    db = project.db

    # Decisions: the whole (small, append-only) list; only the unknown ones are read.
    known = _known(project, remote.name)
    decision_keys = [k for k in bucket.list(L.DECISIONS) if k not in known]
    decision_recs = []
    if decision_keys:
        got = bucket.get_many(decision_keys)
        for k in decision_keys:
            decision_recs.append(L.decode(k, got[k]))
        fetched.update(decision_keys)

    _check(cancel, _FETCH_CANCELLED)
    with project.transaction():
        journal.done()
        for s, r in image_rows.items():
            db.execute(
                "INSERT OR IGNORE INTO image (sha256, format, width, height, orientation, "
                "raw_width, raw_height, mode, byte_size, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    s, r["format"], r["width"], r["height"], r["orientation"], r["raw_width"],
                    r["raw_height"], r["mode"], r["byte_size"], now_iso(),
                ],
            )  # fmt: skip
        for h, r in annsets.items():
            db.execute(
                "INSERT OR IGNORE INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, ?)",
                [h, r["text"], r["n_boxes"]],
            )
        put_label_copies(db, ((h, pack_labels(r["text"])) for h, r in annsets.items()))
        for h, r in buckets.items():
            db.execute(
                "INSERT OR IGNORE INTO manifest_bucket (hash, entries, n_images, n_boxes) "
                "VALUES (?, ?, ?, ?)",
                [h, r["text"], r["n_images"], r["n_boxes"]],
            )
        for h, r in trees.items():
            db.execute(
                "INSERT OR IGNORE INTO manifest_tree (hash, buckets, n_images, n_boxes) "
                "VALUES (?, ?, ?, ?)",
                [h, r["text"], r["n_images"], r["n_boxes"]],
            )
        for vid in _topo_records(records):
            r = records[vid]
            if _has_version(project, vid):
                continue
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM version").fetchone()[0]
            db.execute(
                "INSERT INTO version (id, seq, parents, kind, author, message, created, tree, "
                "classes, provenance, n_images, n_boxes, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'committed')",
                [
                    vid, seq, json.dumps(r["parents"]), r["kind"], r["author"], r["message"],
                    r["created"], r["tree"], json.dumps(r["classes"], ensure_ascii=False),
                    json.dumps(r["provenance"], ensure_ascii=False, sort_keys=True),
                    r["n_images"], r["n_boxes"],
                ],
            )  # fmt: skip
            result.versions.append(vid)
        result.decisions = _apply_decisions(project, decision_recs)
        if main:
            _set_tracking(project, remote.name, MAIN, main[0], main[1])
        for tag_name, (vid, etag) in tag_refs.items():
            _set_tracking(project, remote.name, f"tags/{tag_name}", vid, etag)
            here = db.execute("SELECT version FROM ref WHERE name = ?", [tag_name]).fetchone()
            if here is None and tag_name != MAIN:
                set_ref(db, tag_name, vid, None, kind="tag", user=project.user)
                result.tags_added.append(tag_name)
            elif here is not None and here[0] != vid:
                result.tags_differ.append(tag_name)
        db.conn.executemany(
            "INSERT OR IGNORE INTO remote_has (remote, key) VALUES (?, ?)",
            [(remote.name, k) for k in fetched],
        )
        # Versions this project already had are on the remote too: known from now on.
        for vid, _ in [main] if main else []:
            db.conn.executemany(
                "INSERT OR IGNORE INTO remote_has (remote, key) VALUES (?, ?)",
                [(remote.name, L.version_key(v)) for v in _ancestors(project, [vid])],
            )


def _topo_records(records: dict[str, dict[str, Any]]) -> list[str]:
    return parents_first(records, lambda v: records[v]["parents"])


def _fetch_objects(
    project: Project,
    bucket: Bucket,
    shas: Sequence[str],
    progress: Progress | None,
    cancel: CancelFn | None = None,
    journal: _Journal | None = None,
) -> int:
    """Download, verify and store the bytes of ``shas`` not held yet; how many came.

    With a ``journal`` each object is journaled before its file is written (as imports do), so
    a fetch that dies before its rows are committed leaves no orphan behind.
    """
    missing = [s for s in shas if not project.objects.has_file(s)]
    for start in range(0, len(missing), CHUNK):
        _check(cancel, _FETCH_CANCELLED)
        part = missing[start : start + CHUNK]
        got = bucket.get_many([L.object_key(s) for s in part])
        if journal is not None:
            journal.add(part)
        for s in part:
            data = got.pop(L.object_key(s))
            if hashlib.sha256(data).hexdigest() != s:
                raise RemoteError(f"object {s} on the remote has other content: refused")
            if project.objects.put_bytes(data, s, durable=False) and journal is not None:
                journal.created.append(s)
        project.objects.sync()  # before the rows that name them
        if progress:
            progress("objects", min(start + CHUNK, len(missing)), len(missing))
    return len(missing)


class _Journal:
    """Objects a fetch wrote before its rows, in ``pending_object``: undone if it fails, and
    cleaned by the next open (``Project.recover``) if it is killed."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.op = f"fetch-{os.getpid()}-{secrets.token_hex(4)}"
        self.created: list[str] = []

    def add(self, shas: Sequence[str]) -> None:
        host, pid, at = socket.gethostname(), os.getpid(), now_iso()
        with self.project.transaction():
            self.project.db.conn.executemany(
                "INSERT OR IGNORE INTO pending_object (sha256, op, pid, host, started) "
                "VALUES (?, ?, ?, ?, ?)",
                [(s, self.op, pid, host, at) for s in shas],
            )

    def done(self) -> None:
        """Inside the transaction that writes the rows."""
        self.project.db.execute("DELETE FROM pending_object WHERE op = ?", [self.op])

    def abort(self) -> None:
        db = self.project.db
        for sha in self.created:
            if not db.execute("SELECT 1 FROM image WHERE sha256 = ?", [sha]).fetchone():
                self.project.objects.remove(sha)
        with self.project.transaction():
            self.done()


def _apply_decisions(project: Project, recs: list[dict[str, Any]]) -> int:
    """Apply remote decisions newer than the local status, oldest first; an approval is final."""
    db = project.db
    applied = 0
    for r in sorted(recs, key=lambda r: str(r.get("at"))):
        vid = r.get("version")
        row = db.execute("SELECT status, status_at FROM version WHERE id = ?", [vid]).fetchone()
        if row is None or r.get("decision") not in ("approved", "rejected"):
            continue
        status, status_at = row
        if status == "approved" or (status_at is not None and status_at >= r["at"]):
            continue
        db.execute(
            "UPDATE version SET status = ?, status_by = ?, status_at = ?, status_note = ? "
            "WHERE id = ?",
            [r["decision"], r["by"], r["at"], r["note"], vid],
        )
        db.execute(
            "INSERT INTO decision (version, decision, by, at, note) VALUES (?, ?, ?, ?, ?)",
            [vid, r["decision"], r["by"], r["at"], r["note"]],
        )
        applied += 1
    return applied


# -- clone --------------------------------------------------------------------------------------


def clone(
    url: str,
    directory: str,
    *,
    endpoint_url: str | None = None,
    lazy: bool = False,
    user: str | None = None,
    progress: Progress | None = None,
) -> tuple[Project, FetchResult]:
    """A new project in ``directory`` holding the remote's history, ``main`` at the remote's.

    With ``lazy`` only the rows come; image bytes are fetched (and verified) when first used.
    A clone that fails leaves no project behind.
    """
    import shutil
    from pathlib import Path

    root = Path(directory).absolute()
    if root.exists() and any(root.iterdir()):
        raise LabelDeskError(f"{root} exists and is not empty; clone into a new folder")
    existed = root.exists()
    project = Project.init(root, user=user)
    try:
        add_remote(project, "origin", url, endpoint_url, lazy=lazy)
        result = fetch(project, "origin", progress)
        if result.main:
            with project.transaction():
                set_ref(project.db, MAIN, result.main, None, kind="branch", user=project.user)
    except BaseException:
        project.close()
        if existed:
            for child in root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(root, ignore_errors=True)
        raise
    if lazy:
        from .lazy import install_lazy_fetcher

        install_lazy_fetcher(project)
    return project, result


# -- ahead / behind -----------------------------------------------------------------------------


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
