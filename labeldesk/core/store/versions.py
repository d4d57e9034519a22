"""Immutable dataset versions, refs and their history.

A version is a tree (the manifest), a class list, parents and metadata; its id is the hash of
all of that, like a git commit. Refs (``main`` and tags) name versions and move only by
compare-and-swap, so two writers can never silently overwrite each other's head.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import (
    ImmutableError,
    LabelDeskError,
    NothingToCommitError,
    PermissionDeniedError,
    RefError,
    RefMovedError,
)
from .db import ProjectDatabase as Database
from .db import named
from .project import Project, now_iso

if TYPE_CHECKING:
    from .manifest import Tree

# Writing a version needs the manifest and the id function (which imports boxes); they are
# imported in the functions that write, so that reading versions (`labeldesk log`, `show`)
# starts without them. Boxes live in .annotation_sets, the diff in .version_diff.

MAIN = "main"
KINDS = ("import", "review", "rollback", "merge")
METHODS = ("manual", "semi-automatic", "automatic")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_ID_RE = re.compile(r"^[0-9a-f]{4,64}$")
SHORT = 12


class Version(NamedTuple):
    """One immutable version, as stored (and, in ``tags``, the tags naming it now).

    A NamedTuple rather than a dataclass: reading versions is what read commands do, and they
    start without importing ``dataclasses`` (see core/errors.py).
    """

    id: str
    seq: int
    parents: list[str]
    kind: str
    author: str
    message: str
    created: str
    tree: str
    classes: list[dict[str, Any]]
    provenance: dict[str, Any]
    n_images: int
    n_boxes: int
    status: str  # committed / approved / rejected
    status_by: str | None
    status_at: str | None
    status_note: str | None
    tags: list[str]

    @property
    def short(self) -> str:
        return self.id[:SHORT]

    @property
    def class_names(self) -> dict[int, str]:
        return {c["id"]: c["name"] for c in self.classes}

    def to_json(self) -> dict[str, Any]:
        """Every field, in their order: what ``--json`` prints for a version."""
        return self._asdict()


_COLUMNS = (
    "id, seq, parents, kind, author, message, created, tree, classes, provenance, "
    "n_images, n_boxes, status, status_by, status_at, status_note"
)


def _row_to_version(row: sqlite3.Row, tags: list[str] | None = None) -> Version:
    """A ``SELECT {_COLUMNS}`` row read with :func:`~.db.named`."""
    return Version(
        id=row["id"],
        seq=row["seq"],
        parents=json.loads(row["parents"]),
        kind=row["kind"],
        author=row["author"],
        message=row["message"],
        created=row["created"],
        tree=row["tree"],
        classes=json.loads(row["classes"]),
        provenance=json.loads(row["provenance"]),
        n_images=row["n_images"],
        n_boxes=row["n_boxes"],
        status=row["status"],
        status_by=row["status_by"],
        status_at=row["status_at"],
        status_note=row["status_note"],
        tags=tags or [],
    )


def tags_by_version(db: Database) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, version in db.execute("SELECT name, version FROM ref WHERE kind = 'tag'"):
        out.setdefault(version, []).append(name)
    return {k: sorted(v) for k, v in out.items()}


def get_version(db: Database, version_id: str) -> Version:
    row = named(db, f"SELECT {_COLUMNS} FROM version WHERE id = ?", [version_id]).fetchone()
    if row is None:
        raise RefError(f"no version {version_id}")
    tags = [
        r[0]
        for r in db.execute(
            "SELECT name FROM ref WHERE kind = 'tag' AND version = ? ORDER BY name", [version_id]
        )
    ]
    return _row_to_version(row, tags)


def ref_target(db: Database, name: str) -> str | None:
    row = db.execute("SELECT version FROM ref WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def head(db: Database) -> str | None:
    """The id ``main`` points at, or None in a project with no versions yet."""
    return ref_target(db, MAIN)


def resolve(db: Database, ref: str) -> Version:
    """Turn a REF into a version.

    REF is ``main``, a tag, a version id or unique id prefix (at least 4 hex digits), each
    optionally followed by ``~N`` (N first-parents back).
    """
    ref = ref.strip()
    m = re.fullmatch(r"(.+?)(?:~(\d*))?", ref)
    assert m is not None
    name, back = m.group(1), m.group(2)
    steps = 0 if back is None else (int(back) if back else 1)
    target = ref_target(db, name)
    if target is None:
        if name == MAIN:
            raise RefError("this project has no versions yet; add images with `labeldesk add`")
        if not _ID_RE.fullmatch(name):
            raise RefError(f"unknown ref {name!r}: not a tag, not main, not a version id")
        matches = [
            r[0]
            for r in db.execute(
                "SELECT id FROM version WHERE id >= ? AND id < ? LIMIT 2", [name, name + "g"]
            )
        ]
        if not matches:
            raise RefError(f"no version matches {name!r}")
        if len(matches) > 1:
            raise RefError(f"{name!r} is ambiguous: it starts more than one version id")
        target = matches[0]
    version = get_version(db, target)
    for i in range(steps):
        if not version.parents:
            raise RefError(f"{ref}: {name} has only {i} ancestor(s)")
        version = get_version(db, version.parents[0])
    return version


def log(db: Database, ref: str = MAIN, limit: int | None = None) -> Iterator[Version]:
    """The first-parent history from ``ref`` back to the first version."""
    tags = tags_by_version(db)
    version: Version | None = resolve(db, ref)
    count = 0
    while version is not None and (limit is None or count < limit):
        yield version._replace(tags=tags.get(version.id, []))
        count += 1
        version = get_version(db, version.parents[0]) if version.parents else None


def all_versions(db: Database) -> list[Version]:
    tags = tags_by_version(db)
    rows = named(db, f"SELECT {_COLUMNS} FROM version ORDER BY seq").fetchall()
    return [_row_to_version(r, tags.get(r["id"], [])) for r in rows]


# -- writing --------------------------------------------------------------------------------


def set_ref(
    db: Database, name: str, new: str, expected: str | None, *, kind: str, user: str
) -> None:
    """Compare-and-swap: point ``name`` at ``new`` only if it still points at ``expected``.

    ``expected=None`` means the ref must not exist yet. Call inside a write transaction.
    """
    current = ref_target(db, name)
    if current != expected:
        raise RefMovedError(
            f"{name} moved: expected {expected[:SHORT] if expected else 'nothing'}, "
            f"found {current[:SHORT] if current else 'nothing'}"
        )
    if current is None:
        db.execute(
            "INSERT INTO ref (name, kind, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)",
            [name, kind, new, now_iso(), user],
        )
    else:
        cur = db.execute(
            "UPDATE ref SET version = ?, updated_at = ?, updated_by = ? "
            "WHERE name = ? AND version = ?",
            [new, now_iso(), user, name, expected],
        )
        if cur.rowcount != 1:
            raise RefMovedError(f"{name} moved while it was being updated")


def normalise_classes(classes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = sorted(
        ({"id": int(c["id"]), "name": str(c["name"])} for c in classes), key=lambda c: c["id"]
    )
    ids = [c["id"] for c in out]
    names = [c["name"] for c in out]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names):
        raise LabelDeskError(f"class list has duplicate ids or names: {out}")
    return out


def write_version(
    project: Project,
    *,
    tree: Tree,
    classes: list[dict[str, Any]],
    parents: list[str],
    kind: str,
    message: str,
    provenance: dict[str, Any],
    move_main_from: str | None,
) -> Version:
    """Record a version and move ``main`` to it (compare-and-swap from ``move_main_from``).

    Must run inside the caller's write transaction, together with the rows the version needs.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    db = project.db
    classes = normalise_classes(classes)
    from .integrity import version_id

    created = now_iso()
    # The one id function: fsck recomputes every stored id with it, so a row rewritten behind
    # LabelDesk's back no longer matches its id.
    vid = version_id(
        tree=tree.hash,
        classes=classes,
        parents=parents,
        kind=kind,
        author=project.user,
        message=message,
        created=created,
        provenance=provenance,
    )
    seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM version").fetchone()[0]
    db.execute(
        f"INSERT INTO version ({_COLUMNS}) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'committed',NULL,NULL,NULL)",
        [
            vid,
            seq,
            json.dumps(parents),
            kind,
            project.user,
            message,
            created,
            tree.hash,
            json.dumps(classes, ensure_ascii=False),
            json.dumps(provenance, ensure_ascii=False, sort_keys=True),
            tree.n_images,
            tree.n_boxes,
        ],
    )
    set_ref(db, MAIN, vid, move_main_from, kind="branch", user=project.user)
    return get_version(db, vid)


def _guard_release_tag(project: Project, name: str, current: str, action: str) -> None:
    """Refuse an annotator moving or deleting a tag that names an approved version.

    ``--version v1.0`` must keep meaning the release a lead approved: a tag on an approved
    version is part of that release, so only a lead may repoint or remove it. Call inside the
    write transaction, so the status read is the one the change is decided on.
    """
    status = project.db.execute("SELECT status FROM version WHERE id = ?", [current]).fetchone()
    if status and status[0] == "approved" and project.role_of() != "lead":
        raise PermissionDeniedError(
            f"tag {name} names approved version {current[:SHORT]}; {project.user} is an "
            f"annotator and only a lead may {action} it"
        )


def tag(project: Project, name: str, ref: str, *, force: bool = False) -> Version:
    """Point tag ``name`` at ``ref``; ``force`` moves an existing tag (leads only when the tag
    names an approved version)."""
    if not _TAG_RE.fullmatch(name) or name == MAIN or _ID_RE.fullmatch(name):
        raise LabelDeskError(
            f"invalid tag name {name!r}: use letters, digits, '.', '_', '-', '/'; "
            "not 'main' and not something that looks like a version id"
        )
    db = project.db
    with project.transaction():
        version = resolve(db, ref)
        current = ref_target(db, name)
        if current is not None and not force:
            raise LabelDeskError(
                f"tag {name} exists (on {current[:SHORT]}); use --force to move it"
            )
        kind = db.execute("SELECT kind FROM ref WHERE name = ?", [name]).fetchone()
        if kind and kind[0] != "tag":
            raise LabelDeskError(f"{name} is a branch, not a tag")
        if current is not None and current != version.id:
            _guard_release_tag(project, name, current, "move")
        set_ref(db, name, version.id, current, kind="tag", user=project.user)
    return get_version(db, version.id)


def delete_tag(project: Project, name: str) -> str:
    """Remove tag ``name``; returns the version id it named. The version itself stays.

    Leads only when the tag names an approved version (see :func:`_guard_release_tag`).
    """
    db = project.db
    with project.transaction():
        row = db.execute("SELECT kind, version FROM ref WHERE name = ?", [name]).fetchone()
        if row is None:
            raise RefError(f"no tag {name!r}")
        kind, current = row
        if kind != "tag":
            raise LabelDeskError(f"{name} is a branch, not a tag; it cannot be deleted")
        _guard_release_tag(project, name, current, "delete")
        cur = db.execute(
            "DELETE FROM ref WHERE name = ? AND kind = 'tag' AND version = ?", [name, current]
        )
        if cur.rowcount != 1:
            raise RefMovedError(f"{name} moved while it was being deleted")
    return current


def decide(project: Project, ref: str, decision: str, note: str) -> Version:
    """Approve or reject a version (leads only). Approved is final; a rejection may be revised."""
    if decision not in ("approved", "rejected"):
        raise ValueError(decision)
    project.require_lead("approve or reject versions")  # fail fast, before taking the lock
    if decision == "rejected" and not note.strip():
        raise LabelDeskError("a rejection needs a note saying why (--note)")
    db = project.db
    with project.transaction():
        # Again under the write lock: a lead demoted by someone else since the check above is
        # no lead now, and must not approve on the strength of a role read before the demotion.
        project.require_lead("approve or reject versions")
        version = resolve(db, ref)
        if version.status == "approved":
            raise ImmutableError(
                f"version {version.short} was approved by {version.status_by} at "
                f"{version.status_at}; an approved version cannot be changed"
            )
        at = now_iso()
        db.execute(
            "UPDATE version SET status = ?, status_by = ?, status_at = ?, status_note = ? "
            "WHERE id = ?",
            [decision, project.user, at, note, version.id],
        )
        db.execute(
            "INSERT INTO decision (version, decision, by, at, note) VALUES (?, ?, ?, ?, ?)",
            [version.id, decision, project.user, at, note],
        )
    return get_version(db, version.id)


def delete_version(project: Project, ref: str) -> None:
    """Delete an unapproved version that nothing depends on (no child, no ref, no session)."""
    db = project.db
    with project.transaction():
        version = resolve(db, ref)
        if version.status == "approved":
            raise ImmutableError(f"version {version.short} is approved and cannot be deleted")
        refs = [r[0] for r in db.execute("SELECT name FROM ref WHERE version = ?", [version.id])]
        if refs:
            raise LabelDeskError(f"version {version.short} is still named by {', '.join(refs)}")
        for (parents,) in db.execute("SELECT parents FROM version"):
            if version.id in json.loads(parents):
                raise LabelDeskError(f"version {version.short} has children; it cannot go")
        if db.execute(
            "SELECT 1 FROM review_session WHERE base = ? OR version = ?", [version.id, version.id]
        ).fetchone():
            raise LabelDeskError(f"a review session refers to version {version.short}")
        db.execute("DELETE FROM decision WHERE version = ?", [version.id])
        db.execute("DELETE FROM version WHERE id = ?", [version.id])


def revert(project: Project, ref: str, message: str | None = None) -> Version:
    """A new version on ``main`` whose content (tree and classes) equals that of ``ref``."""
    db = project.db
    with project.transaction():
        target = resolve(db, ref)
        current = head(db)
        assert current is not None  # resolve() succeeded, so main exists
        head_version = get_version(db, current)
        if head_version.tree == target.tree and head_version.classes == target.classes:
            raise NothingToCommitError(f"main already has the content of {target.short}")
        from .manifest import ManifestStore

        tree = ManifestStore(db).tree(target.tree)
        return write_version(
            project,
            tree=tree,
            classes=target.classes,
            parents=[current],
            kind="rollback",
            message=message or f"Revert to {target.short} ({target.message})",
            provenance={"reverted_to": target.id},
            move_main_from=current,
        )
