"""Review sessions: a reviewer's edits on top of a base version, committed as a new version.

Every edit is written to the database the moment it is made, so a crash or a killed app loses
nothing; reopening the session brings every edit back. Committing turns the session into a
version. If ``main`` moved since the base, the session is merged by image: an image changed on
only one side takes that side's labels, an image changed on both sides differently is a conflict
that the user resolves ("ours" or "theirs"), never a silent overwrite.

Pre-label source: a session shows one stored prediction run (model, params) as pre-labels and
suggestions, recorded in ``review_session.prelabel_model``/``prelabel_params``. A new session
inherits the source of the newest committed session when that run still has predictions for
the new base's images, else it takes the newest run covering them (:func:`default_source`), so
pre-labels made by ``labeldesk prelabel`` appear without any menu and survive every commit.

API additions: :func:`default_source`, :meth:`ReviewSession.source`,
:meth:`ReviewSession.set_source`, :meth:`ReviewSession.ensure_source`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..boxes import Box, canonical_boxes, live_boxes
from ..canonical import canonical_json
from ..errors import Conflict, LabelDeskError, MergeConflictError, NothingToCommitError
from ..inference import predictions
from .annotation_sets import load_annotation_set, put_annotation_set
from .db import named
from .manifest import Entry, ManifestStore, Tree
from .project import Project, now_iso
from .versions import MAIN, Version, get_version, head, resolve, write_version

Resolution = Literal["ours", "theirs"]


@dataclass(frozen=True)
class SessionInfo:
    id: int
    base: str
    author: str
    created: str
    updated: str
    status: str
    n_edits: int
    version: str | None


class ReviewSession:
    """A handle on one review session row; cheap to create, all state lives in the database."""

    def __init__(self, project: Project, session_id: int) -> None:
        self.project = project
        self.id = session_id
        row = named(
            project.db, "SELECT base, author FROM review_session WHERE id = ?", [session_id]
        ).fetchone()
        if row is None:
            raise LabelDeskError(f"no review session {session_id}")
        self.base_id: str = row["base"]
        self.author: str = row["author"]
        # The base version is immutable, so its manifest can be read once and kept.
        self._store = ManifestStore(project.db)
        self._base: Version | None = None
        self._base_tree: Tree | None = None

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def start(cls, project: Project, base: str = MAIN) -> ReviewSession:
        with project.transaction():
            version = resolve(project.db, base)
            now = now_iso()
            cur = project.db.execute(
                "INSERT INTO review_session (base, author, created, updated) VALUES (?, ?, ?, ?)",
                [version.id, project.user, now, now],
            )
            sid = cur.lastrowid
            assert sid is not None
            source = default_source(project, version.id)
            if source is not None:
                project.db.execute(
                    "UPDATE review_session SET prelabel_model = ?, prelabel_params = ? "
                    "WHERE id = ?",
                    [source[0], predictions.params_key(source[1]), sid],
                )
        return cls(project, sid)

    @classmethod
    def open_sessions(cls, project: Project, author: str | None = None) -> list[SessionInfo]:
        sql = (
            "SELECT s.id, s.base, s.author, s.created, s.updated, s.status, "
            "(SELECT COUNT(*) FROM session_edit e WHERE e.session = s.id) AS n_edits, s.version "
            "FROM review_session s WHERE s.status = 'open'"
        )
        args: list[Any] = []
        if author:
            sql += " AND s.author = ?"
            args.append(author)
        rows = named(project.db, sql + " ORDER BY s.id", args)
        return [SessionInfo(**dict(zip(r.keys(), r, strict=True))) for r in rows]

    @property
    def status(self) -> str:
        return self.project.db.execute(
            "SELECT status FROM review_session WHERE id = ?", [self.id]
        ).fetchone()[0]

    @property
    def base(self) -> Version:
        if self._base is None:
            self._base = get_version(self.project.db, self.base_id)
        return self._base

    def base_entry(self, image: str) -> Entry | None:
        if self._base_tree is None:
            self._base_tree = self._store.tree(self.base.tree)
        return self._store.entry(self._base_tree, image)

    # -- pre-label source ----------------------------------------------------------------------
    def source(self) -> tuple[str, dict[str, Any]] | None:
        """``(model id, params)`` of the run this session shows, or None."""
        row = named(
            self.project.db,
            "SELECT prelabel_model AS model, prelabel_params AS params FROM review_session "
            "WHERE id = ?",
            [self.id],
        ).fetchone()
        if row is None or not row["model"] or row["params"] is None:
            return None
        return row["model"], json.loads(row["params"])

    def set_source(self, model: str | None, params: Mapping[str, Any] | None) -> None:
        """Show another stored run (None: none); edits already made keep their boxes."""
        self._require_open()
        with self.project.transaction():
            self.project.db.execute(
                "UPDATE review_session SET prelabel_model = ?, prelabel_params = ?, updated = ? "
                "WHERE id = ?",
                [
                    model,
                    predictions.params_key(params) if model and params is not None else None,
                    now_iso(),
                    self.id,
                ],
            )

    def ensure_source(self) -> tuple[str, dict[str, Any]] | None:
        """The session's source; an open session without one takes :func:`default_source`
        (sessions started before runs were stored, or before this rule existed)."""
        current = self.source()
        if current is not None or self.status != "open":
            return current
        source = default_source(self.project, self.base_id)
        if source is not None:
            self.set_source(*source)
        return source

    def _require_open(self) -> None:
        status = self.status
        if status != "open":
            raise LabelDeskError(f"review session {self.id} is {status}; start a new one")

    # -- classes -----------------------------------------------------------------------------
    def new_classes(self) -> list[str]:
        row = self.project.db.execute(
            "SELECT new_classes FROM review_session WHERE id = ?", [self.id]
        ).fetchone()
        return json.loads(row[0])

    def classes(self) -> dict[int, str]:
        """Class id -> name; classes new in this session have provisional negative ids."""
        out = dict(self.base.class_names)
        for i, name in enumerate(self.new_classes(), start=1):
            out[-i] = name
        return out

    def add_class(self, name: str) -> int:
        name = name.strip()
        if not name:
            raise LabelDeskError("a class needs a name")
        for cid, existing in self.classes().items():
            if existing == name:
                return cid
        self._require_open()
        with self.project.transaction():
            new = [*self.new_classes(), name]
            self.project.db.execute(
                "UPDATE review_session SET new_classes = ?, updated = ? WHERE id = ?",
                [json.dumps(new, ensure_ascii=False), now_iso(), self.id],
            )
        return -len(new)

    # -- edits -------------------------------------------------------------------------------
    def set_boxes(self, image: str, boxes: Iterable[Box]) -> None:
        """Replace the boxes of ``image``; persisted before this returns.

        ``boxes`` may include pre-labels the reviewer rejected (state ``rejected``): they are
        kept in the review record for agreement statistics, not in the version's labels.
        """
        boxes = list(boxes)
        known = self.classes()
        bad = sorted({b.cls for b in boxes if b.cls not in known})
        if bad:
            raise LabelDeskError(f"unknown class id(s) {bad}; known: {known}")
        db = self.project.db
        if self.base_entry(image) is None:
            raise LabelDeskError(f"image {image[:12]} is not in the session's base version")
        text = canonical_json(canonical_boxes(boxes))
        with self.project.transaction():
            self._require_open()
            seq = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM session_edit WHERE session = ?", [self.id]
            ).fetchone()[0]
            now = now_iso()
            db.execute(
                "INSERT INTO session_edit (session, image, boxes, seq, updated) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(session, image) DO UPDATE SET "
                "boxes = excluded.boxes, seq = excluded.seq, updated = excluded.updated",
                [self.id, image, text, seq, now],
            )
            db.execute("UPDATE review_session SET updated = ? WHERE id = ?", [now, self.id])

    def edits(self) -> dict[str, list[Box]]:
        """image -> boxes as the reviewer left them (rejected pre-labels included)."""
        rows = self.project.db.execute(
            "SELECT image, boxes FROM session_edit WHERE session = ? ORDER BY seq", [self.id]
        )
        return {img: [Box.from_dict(d) for d in json.loads(text)] for img, text in rows}

    def boxes(self, image: str) -> list[Box]:
        """The boxes of ``image`` as this session sees them: its edit, else the base's."""
        row = self.project.db.execute(
            "SELECT boxes FROM session_edit WHERE session = ? AND image = ?", [self.id, image]
        ).fetchone()
        if row:
            return [Box.from_dict(d) for d in json.loads(row[0])]
        entry = self.base_entry(image)
        return load_annotation_set(self.project.db, entry.annset) if entry else []

    def abandon(self) -> None:
        with self.project.transaction():
            self._require_open()
            self.project.db.execute(
                "UPDATE review_session SET status = 'abandoned', updated = ? WHERE id = ?",
                [now_iso(), self.id],
            )

    # -- commit ------------------------------------------------------------------------------
    def commit(
        self,
        message: str,
        *,
        provenance: Mapping[str, Any] | None = None,
        resolutions: Mapping[str, Resolution] | None = None,
    ) -> Version:
        """Turn the session into a version on ``main``, merging if ``main`` moved.

        Raises :class:`MergeConflictError` (and changes nothing) when an image was changed
        both here and on ``main`` and ``resolutions`` does not say which side wins.
        """
        if not message.strip():
            raise LabelDeskError("a version needs a message")
        resolutions = dict(resolutions or {})
        project, db = self.project, self.project.db
        with project.transaction():
            self._require_open()
            edits = self.edits()
            if not edits:
                raise NothingToCommitError("this session has no edits to commit")
            base = self.base
            current = head(db)
            assert current is not None
            main_version = get_version(db, current)
            store = ManifestStore(db)
            base_tree = store.tree(base.tree)
            main_tree = store.tree(main_version.tree)
            moved = main_version.id != base.id

            classes, id_map = _merge_classes(main_version.classes, self.new_classes())
            changes: dict[str, Entry] = {}
            conflicts: list[Conflict] = []
            for image, boxes in edits.items():
                labels = [b.with_(cls=id_map.get(b.cls, b.cls)) for b in live_boxes(boxes)]
                ours_set = put_annotation_set(db, labels)
                base_entry = store.entry(base_tree, image)
                assert base_entry is not None  # set_boxes only accepts images of the base
                theirs = store.entry(main_tree, image) if moved else base_entry
                if theirs == base_entry:
                    if ours_set != base_entry.annset:
                        changes[image] = base_entry.with_annset(ours_set)
                    continue
                # main changed this image since our base
                if ours_set == base_entry.annset:
                    continue  # we did not change the labels: keep theirs
                if theirs is not None and theirs.annset == ours_set:
                    continue  # both sides made the same change
                choice = resolutions.get(image)
                if choice == "ours":
                    if theirs is None:
                        changes[image] = base_entry.with_annset(ours_set)
                    else:
                        changes[image] = theirs.with_annset(ours_set)
                elif choice == "theirs":
                    continue
                else:
                    conflicts.append(
                        Conflict(
                            image, base_entry.annset, theirs.annset if theirs else None, ours_set
                        )
                    )
            if conflicts:
                raise MergeConflictError(conflicts)
            tree = store.apply(main_tree, changes)
            prov = {
                "method": "manual",
                "session": self.id,
                "base": base.id,
                "reviewed_images": len(edits),
                **dict(provenance or {}),
            }
            version = write_version(
                project,
                tree=tree,
                classes=classes,
                parents=[main_version.id, base.id] if moved else [main_version.id],
                kind="merge" if moved else "review",
                message=message,
                provenance=prov,
                move_main_from=main_version.id,
            )
            db.execute(
                "UPDATE review_session SET status = 'committed', version = ?, message = ?, "
                "updated = ? WHERE id = ?",
                [version.id, message, now_iso(), self.id],
            )
        return version


def default_source(
    project: Project, version_id: str, available: list[predictions.Run] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The run a new session on ``version_id`` shows: the newest committed session's source if
    it covers any of the version's images, else the newest run that does; None without runs.
    ``available``: the runs covering the version, when the caller has listed them already."""
    db = project.db
    row = named(
        db,
        "SELECT prelabel_model AS model, prelabel_params AS params FROM review_session "
        "WHERE status = 'committed' AND prelabel_model IS NOT NULL AND prelabel_params IS NOT "
        "NULL ORDER BY id DESC LIMIT 1",
    ).fetchone()
    previous = (row["model"], json.loads(row["params"])) if row is not None else None
    if available is not None:
        if not available:
            return None
        for run in available:
            if (run.model, run.params) == previous:
                return previous
        return available[0].model, available[0].params
    # Without the list: this runs when a session starts (on the window's thread too), so no
    # scan of every prediction and manifest entry. Runs newest first from the primary key's
    # order; a run covers the version when one of its images is in it, which the first row
    # usually shows.
    candidates = named(
        db,
        "SELECT model, params, MAX(created) AS newest, COUNT(*) AS n FROM prediction "
        "GROUP BY model, params",
    ).fetchall()
    candidates.sort(key=lambda r: (r["newest"], r["n"]), reverse=True)
    store = ManifestStore(db)
    tree = store.tree(get_version(db, version_id).tree)

    def covers(model: str, params: str) -> bool:
        rows = db.execute(
            "SELECT image FROM prediction WHERE model = ? AND params = ?", [model, params]
        )
        return any(store.entry(tree, image) is not None for (image,) in rows)

    if previous is not None:
        key = predictions.params_key(previous[1])
        if any((c["model"], c["params"]) == (previous[0], key) for c in candidates) and covers(
            previous[0], key
        ):
            return previous
    for c in candidates:
        model, params = c["model"], c["params"]
        if covers(model, params):
            return model, json.loads(params)
    return None


def _merge_classes(
    main_classes: list[dict[str, Any]], new_names: list[str]
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Main's class list plus the session's new classes; maps provisional ids to final ones."""
    classes = [dict(c) for c in main_classes]
    by_name = {c["name"]: c["id"] for c in classes}
    next_id = max(by_name.values(), default=0) + 1
    id_map: dict[int, int] = {}
    for i, name in enumerate(new_names, start=1):
        if name not in by_name:
            by_name[name] = next_id
            classes.append({"id": next_id, "name": name})
            next_id += 1
        id_map[-i] = by_name[name]
    return classes, id_map
