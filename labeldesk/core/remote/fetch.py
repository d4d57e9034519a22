"""fetch and clone: bring a remote's versions, tags and decisions into a project.

Every record is verified against its name as it is read (packs.RecordReader), every image's
bytes re-hashed as they arrive, and all the rows are written in one transaction after the
bytes they name are on disk: a fetch that fails or is cancelled leaves the project as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LabelDeskError
from ..progress import CancelFn
from ..store.packed import pack_labels, put_label_copies
from ..store.project import Project, now_iso
from ..store.versions import MAIN, set_ref
from . import layout as L
from .client import Bucket, RemoteError
from .common import (
    _FETCH_CANCELLED,
    CHUNK,
    Progress,
    _ancestors,
    _check,
    _read_ref,
    _set_tracking,
    open_remote,
    parents_first,
)
from .config import Remote, add_remote
from .packs import RecordReader


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


def _has_version(project: Project, vid: str) -> bool:
    return bool(project.db.execute("SELECT 1 FROM version WHERE id = ?", [vid]).fetchone())


def _has_row(project: Project, table: str, column: str, key: str) -> bool:
    return bool(project.db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", [key]).fetchone())


#: Temporary tables (the connection's own, on disk) that hold what a fetch has read until the
#: one transaction that writes it: a fetch holds a page of rows in memory, however many come.
_STAGE = {
    "fetch_tree": "hash TEXT PRIMARY KEY, buckets TEXT, n_images INTEGER, n_boxes INTEGER",
    "fetch_bucket": "hash TEXT PRIMARY KEY, entries TEXT, n_images INTEGER, n_boxes INTEGER",
    "fetch_annset": "hash TEXT PRIMARY KEY, boxes TEXT, n_boxes INTEGER",
    "fetch_image": (
        "sha256 TEXT PRIMARY KEY, format TEXT, width INTEGER, height INTEGER, orientation "
        "INTEGER, raw_width INTEGER, raw_height INTEGER, mode TEXT, byte_size INTEGER"
    ),
    # what is still to be read, by kind ('bucket', 'annset', 'image'), paged in name order
    "fetch_need": "kind TEXT, name TEXT, PRIMARY KEY (kind, name)",
    # the keys read, for remote_has
    "fetch_key": "key TEXT PRIMARY KEY",
}
#: Records read (parsed and verified) at a time: a bucket holds the rows of its images, so a
#: page of them is what a fetch holds in memory. A page of a pack is one ranged request.
RECORD_PAGE = 256
_IMAGE_COLUMNS = (
    "format", "width", "height", "orientation", "raw_width", "raw_height", "mode", "byte_size"
)  # fmt: skip


class _Stage:
    """The staging tables of one fetch (see ``_STAGE``), made fresh and dropped after."""

    def __init__(self, project: Project) -> None:
        self.db = project.db
        for table, columns in _STAGE.items():
            self.db.execute(f"DROP TABLE IF EXISTS temp.{table}")
            self.db.execute(f"CREATE TEMP TABLE {table} ({columns}) WITHOUT ROWID")

    def close(self) -> None:
        for table in _STAGE:
            self.db.execute(f"DROP TABLE IF EXISTS temp.{table}")

    def insert(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            marks = ",".join("?" * len(rows[0]))
            self.db.conn.executemany(f"INSERT OR IGNORE INTO temp.{table} VALUES ({marks})", rows)

    def need(self, kind: str, select: str) -> int:
        """Add the names ``select`` gives as still to be read; how many are to be read."""
        self.db.execute(f"INSERT OR IGNORE INTO temp.fetch_need (kind, name) {select}")
        return int(
            self.db.execute("SELECT COUNT(*) FROM temp.fetch_need WHERE kind = ?", [kind])
            .fetchone()[0]
        )  # fmt: skip

    def pages(self, kind: str, size: int) -> Iterator[list[str]]:
        """The names still to be read of ``kind``, ``size`` at a time (each page a query of its
        own, so the caller may write between pages)."""
        last = ""
        while True:
            page = [
                r[0]
                for r in self.db.execute(
                    "SELECT name FROM temp.fetch_need WHERE kind = ? AND name > ? "
                    "ORDER BY name LIMIT ?",
                    [kind, last, size],
                )
            ]
            if not page:
                return
            yield page
            last = page[-1]


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
    stage = _Stage(project)
    journal = _Journal(project)
    try:
        with contextlib.closing(RecordReader(bucket)) as reader:  # its index: on disk till closed
            records = _stage_records(project, reader, stage, main, tag_refs, progress, cancel)
        if objects:
            result.objects = _fetch_objects(project, bucket, stage, progress, cancel, journal)
        _commit_fetch(
            project, remote, result, records, main, tag_refs, stage, objects, bucket, journal,
            cancel,
        )  # fmt: skip
    except BaseException:
        journal.abort()
        raise
    finally:
        stage.close()
    return result


def _stage_records(
    project: Project,
    reader: RecordReader,
    stage: _Stage,
    main: tuple[str, str] | None,
    tag_refs: dict[str, tuple[str, str]],
    progress: Progress | None,
    cancel: CancelFn | None,
) -> dict[str, dict[str, Any]]:
    """Read (and verify) every record the refs lead to that this project lacks: the versions
    are returned (one per commit: few), the rest staged. Nothing is written to the project."""
    # One reader for the fetch: the pack indexes are read once; records a pack does not hold
    # are read loose (a remote written before packs). Every record is verified as it is read.

    def read(kind: str, keyf: Callable[[str], str], names: Iterable[str]) -> dict[str, dict]:
        _check(cancel, _FETCH_CANCELLED)
        wanted = {keyf(n): n for n in sorted(set(names))}
        got = reader.read(wanted)
        return {wanted[k]: rec for k, rec in got.items()}

    # Versions: breadth first from the refs to what this project already has. The packed
    # version records are small and few, so all those this project lacks are read at once:
    # a long history then costs one request, not one per generation.
    vk = len(L.version_key(""))
    packed = [k[vk:] for k in reader.packed(L.version_key("")) if not _has_version(project, k[vk:])]
    in_packs = read("versions", L.version_key, packed)
    records: dict[str, dict[str, Any]] = {}
    frontier = {v for v, _ in ([main] if main else []) + list(tag_refs.values())}
    while frontier:
        todo = [v for v in frontier if v not in records and not _has_version(project, v)]
        loose = read("versions", L.version_key, [v for v in todo if v not in in_packs])
        frontier = set()
        for vid in todo:
            rec = in_packs.get(vid) or loose[vid]
            records[vid] = rec
            frontier.update(p for p in rec["parents"] if isinstance(p, str))
    # (the orphans read above, of pushes refused or killed before their ref moved, are dropped)
    del in_packs
    stage.insert("fetch_key", [(L.version_key(v),) for v in records])
    if progress:
        progress(len(records), len(records), "versions")

    trees = read(
        "trees",
        L.tree_key,
        {r["tree"] for r in records.values()}
        - {r[0] for r in project.db.execute("SELECT hash FROM manifest_tree")},
    )
    stage.insert(
        "fetch_tree", [(h, r["text"], r["n_images"], r["n_boxes"]) for h, r in trees.items()]
    )
    stage.insert("fetch_key", [(L.tree_key(h),) for h in trees])
    del trees

    # Buckets, a page at a time; each carries the rows of its images.
    total = stage.need(
        "bucket",
        "SELECT 'bucket', j.value FROM temp.fetch_tree t, json_each(t.buckets) j "
        "WHERE NOT EXISTS (SELECT 1 FROM manifest_bucket m WHERE m.hash = j.value)",
    )
    done = 0
    for page in stage.pages("bucket", RECORD_PAGE):
        got = read("buckets", L.bucket_key, page)
        images: list[tuple[Any, ...]] = []
        for rec in got.values():
            rows = rec.get("images") or {}
            for image in json.loads(rec["text"]):
                if image not in rows:
                    raise RemoteError(f"a bucket on the remote lacks the row of image {image}")
                r = rows[image]
                images.append((image, *(r[c] for c in _IMAGE_COLUMNS)))
        stage.insert("fetch_image", images)
        stage.insert(
            "fetch_bucket",
            [(h, r["text"], r["n_images"], r["n_boxes"]) for h, r in got.items()],
        )
        stage.insert("fetch_key", [(L.bucket_key(h),) for h in got])
        done += len(page)
        if progress:
            progress(done, total, "buckets")

    # Annotation sets, a page at a time.
    total = stage.need(
        "annset",
        "SELECT DISTINCT 'annset', json_extract(j.value, '$[0]') "
        "FROM temp.fetch_bucket b, json_each(b.entries) j WHERE NOT EXISTS "
        "(SELECT 1 FROM annotation_set a WHERE a.hash = json_extract(j.value, '$[0]'))",
    )
    done = 0
    for page in stage.pages("annset", RECORD_PAGE):
        got = read("annotation sets", L.annset_key, page)
        stage.insert("fetch_annset", [(h, r["text"], r["n_boxes"]) for h, r in got.items()])
        stage.insert("fetch_key", [(L.annset_key(h),) for h in got])
        done += len(page)
        if progress:
            progress(done, total, "annotation sets")

    # The images whose bytes are to come (rows this project lacks).
    stage.need(
        "image",
        "SELECT 'image', i.sha256 FROM temp.fetch_image i "
        "WHERE NOT EXISTS (SELECT 1 FROM image m WHERE m.sha256 = i.sha256)",
    )
    return records


def _commit_fetch(
    project: Project,
    remote: Remote,
    result: FetchResult,
    records: dict[str, dict[str, Any]],
    main: tuple[str, str] | None,
    tag_refs: dict[str, tuple[str, str]],
    stage: _Stage,
    objects: bool,
    bucket: Bucket,
    journal: _Journal,
    cancel: CancelFn | None,
) -> None:
    """Read the decisions, then write every row of the fetch in one transaction."""
    db = project.db

    # Decisions: the whole (small, append-only) list; only the unknown ones are read.
    known = {
        r[0]
        for r in db.execute(
            "SELECT key FROM remote_has WHERE remote = ? AND key >= ? AND key < ?",
            [remote.name, L.DECISIONS, L.DECISIONS[:-1] + "0"],  # '0' sorts just after '/'
        )
    }
    decision_keys = [k for k in bucket.list(L.DECISIONS) if k not in known]
    decision_recs = []
    if decision_keys:
        got = bucket.get_many(decision_keys)
        for k in decision_keys:
            decision_recs.append(L.decode(k, got[k]))
        stage.insert("fetch_key", [(k,) for k in decision_keys])

    _check(cancel, _FETCH_CANCELLED)
    columns = ", ".join(_IMAGE_COLUMNS)
    with project.transaction():
        journal.done()
        db.execute(
            f"INSERT OR IGNORE INTO image (sha256, {columns}, added_at) "
            f"SELECT sha256, {columns}, ? FROM temp.fetch_image",
            [now_iso()],
        )
        db.execute(
            "INSERT OR IGNORE INTO annotation_set (hash, boxes, n_boxes) "
            "SELECT hash, boxes, n_boxes FROM temp.fetch_annset"
        )
        # The sets' packed copies (what ranking reads), streamed: a clone of a large project
        # must not hold every set in memory.
        fetched = db.execute("SELECT hash, boxes FROM temp.fetch_annset")
        put_label_copies(db, ((h, pack_labels(text)) for h, text in fetched))
        db.execute(
            "INSERT OR IGNORE INTO manifest_bucket (hash, entries, n_images, n_boxes) "
            "SELECT hash, entries, n_images, n_boxes FROM temp.fetch_bucket"
        )
        db.execute(
            "INSERT OR IGNORE INTO manifest_tree (hash, buckets, n_images, n_boxes) "
            "SELECT hash, buckets, n_images, n_boxes FROM temp.fetch_tree"
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
        db.execute(
            "INSERT OR IGNORE INTO remote_has (remote, key) SELECT ?, key FROM temp.fetch_key",
            [remote.name],
        )
        if objects:
            db.execute(
                "INSERT OR IGNORE INTO remote_has (remote, key) "
                "SELECT ?, 'objects/sha256/' || substr(name, 1, 2) || '/' || substr(name, 3) "
                "FROM temp.fetch_need WHERE kind = 'image'",
                [remote.name],
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
    stage: _Stage,
    progress: Progress | None,
    cancel: CancelFn | None = None,
    journal: _Journal | None = None,
) -> int:
    """Download, verify and store the bytes of the staged images not held yet; how many came.

    With a ``journal`` each page of objects is journaled before its files are written (as
    imports do), so a fetch that dies before its rows are committed leaves no orphan behind.
    The objects stream through one pool of requests, each written as it arrives.
    """
    store = project.objects
    total = int(
        project.db.execute("SELECT COUNT(*) FROM temp.fetch_need WHERE kind = 'image'")
        .fetchone()[0]
    )  # fmt: skip
    done = came = 0

    def report() -> None:
        if progress:
            progress(done, total, "objects")
        _check(cancel, _FETCH_CANCELLED)

    def keys() -> Iterator[str]:
        # Read lazily by the request pool: a page is journaled just before its first request.
        nonlocal done
        for page in stage.pages("image", CHUNK):
            missing = [s for s in page if not store.has_file(s)]
            done += len(page) - len(missing)
            if journal is not None and missing:
                journal.add(missing)
            yield from (L.object_key(s) for s in missing)

    def arrived(key: str, data: bytes) -> None:
        # Each object is checked and written as it arrives, so only those in flight are held.
        nonlocal done, came
        parts = key.rsplit("/", 2)
        sha = parts[-2] + parts[-1]
        if hashlib.sha256(data).hexdigest() != sha:
            raise RemoteError(f"object {sha} on the remote has other content: refused")
        store.put_bytes(data, sha, durable=False)
        done += 1
        came += 1
        if done % CHUNK == 0:
            report()

    _check(cancel, _FETCH_CANCELLED)
    try:
        bucket.get_each(keys(), arrived)
    finally:
        store.sync()  # before the rows that name them (and before an abort looks at them)
    if total and done % CHUNK:
        report()
    return came


class _Journal:
    """Objects a fetch wrote before its rows, in ``pending_object``: undone if it fails (as a
    failed import is: Project.drop_pending), and cleaned by the next open
    (``Project.recover``) if it is killed."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.op = f"fetch-{os.getpid()}-{secrets.token_hex(4)}"

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
        self.project.drop_pending([self.op])


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
