"""fetch and clone: bring a remote's versions, tags and decisions into a project.

Every record is verified against its name as it is read (packs.RecordReader), every image's
bytes re-hashed as they arrive, and all the rows are written in one transaction after the
bytes they name are on disk: a fetch that fails or is cancelled leaves the project as it was.
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

from ..errors import LabelDeskError
from ..progress import CancelFn
from ..project import Project, now_iso
from ..versions import MAIN, set_ref
from . import layout as L
from .client import TRANSFER_CONCURRENCY, Bucket, RemoteError
from .common import (
    _FETCH_CANCELLED,
    CHUNK,
    Progress,
    _ancestors,
    _check,
    _known,
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

    # One reader for the fetch: the pack indexes are read once; records a pack does not hold
    # are read loose (a remote written before packs). Every record is verified as it is read.
    reader = RecordReader(bucket)

    def read(kind: str, keyf: Callable[[str], str], names: Iterable[str]) -> dict[str, dict]:
        _check(cancel, _FETCH_CANCELLED)
        wanted = {keyf(n): n for n in sorted(set(names))}
        got = reader.read(wanted)
        fetched.update(got)
        if progress:
            progress(kind, len(got), len(got))
        return {wanted[k]: rec for k, rec in got.items()}

    # Versions: breadth first from the refs to what this project already has. The packed
    # version records are small and few, so all those this project lacks are read at once:
    # a long history then costs one request, not one per generation.
    packed = {
        k: k[len(L.version_key("")) :]
        for k in reader.packed(L.version_key(""))
        if not _has_version(project, k[len(L.version_key("")) :])
    }
    known_versions = read("versions", L.version_key, packed.values())
    records: dict[str, dict[str, Any]] = {}
    frontier = {v for v, _ in ([main] if main else []) + list(tag_refs.values())}
    while frontier:
        todo = [v for v in frontier if v not in records and not _has_version(project, v)]
        loose = read("versions", L.version_key, [v for v in todo if v not in known_versions])
        frontier = set()
        for vid in todo:
            rec = known_versions.get(vid) or loose[vid]
            records[vid] = rec
            frontier.update(p for p in rec["parents"] if isinstance(p, str))
    # (orphans read above, from pushes refused or killed before their ref moved, are dropped)
    fetched.difference_update(L.version_key(v) for v in known_versions if v not in records)
    del known_versions

    trees = read(
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
    buckets = read("buckets", L.bucket_key, bucket_names)
    need_images: set[str] = set()
    need_annsets: set[str] = set()
    for rec in buckets.values():
        for image, entry in json.loads(rec["text"]).items():
            if not _has_row(project, "image", "sha256", image):
                need_images.add(image)
            if not _has_row(project, "annotation_set", "hash", entry[0]):
                need_annsets.add(entry[0])
    annsets = read("annotation sets", L.annset_key, need_annsets)
    # Image rows come with their buckets; then the bytes (verified, stored and made durable
    # before the transaction that writes the rows naming them).
    image_rows: dict[str, dict] = {}
    for rec in buckets.values():
        rows = rec.pop("images", None) or {}  # held once, in image_rows
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
    if not missing:
        return 0
    _check(cancel, _FETCH_CANCELLED)
    if journal is not None:
        journal.add(missing)  # all at once: one transaction, before any file is written
    store = project.objects
    done = 0

    def arrived(key: str, data: bytes) -> None:
        # Each object is checked and written as it arrives, so only those in flight are held.
        nonlocal done
        s = key.rsplit("/", 2)
        sha = s[-2] + s[-1]
        if hashlib.sha256(data).hexdigest() != sha:
            raise RemoteError(f"object {sha} on the remote has other content: refused")
        if store.put_bytes(data, sha, durable=False) and journal is not None:
            journal.created.append(sha)
        done += 1
        if done % CHUNK == 0 or done == len(missing):
            if progress:
                progress("objects", done, len(missing))
            _check(cancel, _FETCH_CANCELLED)

    try:
        bucket.get_each((L.object_key(s) for s in missing), arrived, TRANSFER_CONCURRENCY)
    finally:
        store.sync()  # before the rows that name them (and before an abort looks at them)
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
