"""The review workspace: what the review window shows, computed without Qt.

A workspace is one review session seen from the window: the images of the base version with
their state (not reviewed, reviewed, edited, conflict), the boxes of each image as the reviewer
sees them (the session's edit, else the base labels, else the model's pre-labels as *pending*),
and the class list. The GUI reads it on its own connection and sends writes to a single writer
thread, so the database is touched in one order and the window never waits on a write.

Pre-labels belong to the project: the session's source is any stored prediction run covering
the version (``labeldesk prelabel``, the window, a watched evaluation); a session without one
takes the newest (or the previous committed session's) when opened, and the reviewer switches
with :func:`set_prelabel_source`. On labelled images the source's predictions become
suggestions (:mod:`labeldesk.core.review.suggestions`) instead of pending boxes.

API: :class:`ImageRow`, :func:`open_or_start_session`, :func:`edit_state`, :class:`Workspace`
(``load``, ``boxes``, ``prelabels``, ``predictions``, ``suggestions``, ``runs``,
``refresh_row``, ``counts``, ``main_moved``; attributes ``prelabel_model``,
``prelabel_params``, ``suggestion_params``), :func:`last_prelabel_params`,
:func:`set_prelabel_source`, :func:`available_runs`, :func:`review_queue`. Review actions:
:mod:`labeldesk.app.rules`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labeldesk.core.boxes import EMPTY_SET_HASH, Box, live_boxes, object_boxes
from labeldesk.core.errors import LabelDeskError
from labeldesk.core.inference import predictions
from labeldesk.core.inference.predictions import Run
from labeldesk.core.progress import CancelFn, ProgressFn
from labeldesk.core.review import queue as review_queue_core
from labeldesk.core.review import suggestions as sg
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.db import named
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import MAIN, head

from . import rules
from .changes import Changed

TODO, REVIEWED, EDITED, CONFLICT = "not reviewed", "reviewed", "edited", "conflict"
STATES = (TODO, REVIEWED, EDITED, CONFLICT)


@dataclass
class ImageRow:
    sha: str
    name: str
    width: int
    height: int
    state: str = TODO
    n_boxes: int = 0
    min_score: float | None = None  # lowest score of an undecided pre-label
    classes: frozenset[int] = field(default_factory=frozenset)


def open_or_start_session(project: Project) -> ReviewSession:
    """The user's newest open session, or a new one on ``main``; either way with a pre-label
    source when any stored run covers its base (see ``ReviewSession.ensure_source``)."""
    mine = ReviewSession.open_sessions(project, author=project.user)
    if mine:
        session = ReviewSession(project, mine[-1].id)
        session.ensure_source()
        return session
    return ReviewSession.start(project, MAIN)


def edit_state(base: list[Box], edited: list[Box]) -> str:
    """Reviewed when the reviewer kept everything as proposed; edited when they changed it."""
    if any(b.state in ("edited", "added", "rejected") for b in edited):
        return EDITED
    if any(b.state == "pending" for b in edited):
        return TODO
    base_geo = sorted((b.cls, b.x, b.y, b.w, b.h) for b in live_boxes(base))
    new_geo = sorted((b.cls, b.x, b.y, b.w, b.h) for b in live_boxes(edited))
    if base and base_geo != new_geo:
        return EDITED
    return REVIEWED


class Workspace:
    def __init__(self, project: Project, session: ReviewSession) -> None:
        self.project = project
        self.session = session
        self.store = ManifestStore(project.db)
        self.rows: list[ImageRow] = []
        self.index: dict[str, int] = {}
        self.classes: dict[int, str] = {}
        self.prelabel_model: str | None = None
        self.prelabel_params: dict | None = None
        self.suggestion_params = sg.Params()
        self.conflicts: set[str] = set()

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        """Read everything the image list needs: one pass over the base manifest."""
        db = self.project.db
        base = self.session.base
        tree = self.store.tree(base.tree)
        names: dict[str, str] = {}
        for sha, path in db.execute("SELECT sha256, path FROM image_source ORDER BY id DESC"):
            names[sha] = path
        sizes = {r[0]: (r[1], r[2]) for r in db.execute("SELECT sha256, width, height FROM image")}
        # Stored bucket JSON, not Entry objects: this runs once per image of the version.
        entries = [
            (sha, raw)
            for bucket in tree.buckets.values()
            for sha, raw in self.store.raw_bucket(bucket).items()
        ]
        counts = self.store.n_boxes_of(raw[0] for _, raw in entries) if entries else {}
        rows = []
        for sha, raw in entries:
            w, h = sizes[sha]
            meta_name = raw[3].get("file_name") if len(raw) > 3 else None
            # os.path, not Path: Path() costs ~30 µs, seconds at 100,000 images
            name = meta_name or os.path.basename(names.get(sha, sha))
            rows.append(ImageRow(sha, name, w, h, n_boxes=counts[raw[0]]))
        # Same file name from different folders: show the folder too, so rows can be told apart.
        seen: dict[str, int] = {}
        for r in rows:
            seen[r.name] = seen.get(r.name, 0) + 1
        for r in rows:
            if seen[r.name] > 1 and r.sha in names:
                folder, leaf = os.path.split(names[r.sha])
                r.name = f"{os.path.basename(folder)}/{leaf}"
        rows.sort(key=lambda r: (r.name, r.sha))
        self.rows = rows
        self.index = {r.sha: i for i, r in enumerate(rows)}
        row = named(
            db,
            "SELECT prelabel_model AS model, prelabel_params AS params FROM review_session "
            "WHERE id = ?",
            [self.session.id],
        ).fetchone()
        self.prelabel_model = row["model"]
        self.prelabel_params = json.loads(row["params"]) if row["params"] else None
        self.classes = self.session.classes()
        # Labelled means a non-empty base set, as boxes() decides; n_boxes would miss an image
        # whose only labels are crowd regions (they are not counted).
        self._load_prelabel_summary({sha for sha, raw in entries if raw[0] != EMPTY_SET_HASH})
        for image, boxes in self.session.edits().items():
            if image in self.index:
                self.refresh_row(image, boxes)

    def _load_prelabel_summary(self, labelled: set[str]) -> None:
        """Lowest pre-label score and classes of every unlabelled image, in one query, so the
        list can be filtered by confidence before anyone opens the images."""
        if not self.prelabel_model or self.prelabel_params is None:
            return
        by_name = {name: cid for cid, name in self.classes.items()}
        for image, text in self.project.db.execute(
            "SELECT image, boxes FROM prediction WHERE model = ? AND params = ?",
            [self.prelabel_model, predictions.params_key(self.prelabel_params)],
        ):
            i = self.index.get(image)
            if i is None or image in labelled:
                continue  # not in this version, or labelled already: pre-labels not shown
            preds = [p for p in json.loads(text) if p["name"] in by_name]
            if preds:
                self.rows[i].min_score = min(p["score"] for p in preds)
                self.rows[i].classes = frozenset(by_name[p["name"]] for p in preds)

    # -- boxes -------------------------------------------------------------------------------
    def base_boxes(self, sha: str) -> list[Box]:
        entry = self.session.base_entry(sha)
        return load_annotation_set(self.project.db, entry.annset) if entry else []

    def predictions(self, sha: str) -> list[Box]:
        """The source run's predictions for ``sha`` as undecided model boxes (project classes
        only: a model class the project lacks is reported when the model runs)."""
        if not self.prelabel_model or self.prelabel_params is None:
            return []
        by_name = {name: cid for cid, name in self.classes.items()}
        stored = predictions.load(self.project.db, self.prelabel_model, self.prelabel_params, sha)
        return sg.as_boxes(stored, by_name, self.prelabel_model)

    def prelabels(self, sha: str) -> list[Box]:
        """The pre-labels of the session's model for ``sha``, as undecided boxes."""
        return self.predictions(sha)

    def suggestions(self, sha: str, boxes: list[Box] | None = None) -> list[sg.Suggestion]:
        """Where the source run disagrees with the labels of ``sha`` (none on an image without
        labels in the base: there the predictions are pending pre-labels instead).

        ``boxes``: the image's boxes as the window holds them (its unsaved overlay), else read.
        """
        if not self.base_boxes(sha) or not self.prelabel_model or self.prelabel_params is None:
            return []
        found = predictions.stored(self.project.db, self.prelabel_model, self.prelabel_params, sha)
        if found is None:
            return []  # the run never saw this image: no evidence either way
        by_name = {name: cid for cid, name in self.classes.items()}
        preds = sg.as_boxes(found, by_name, self.prelabel_model)
        current = self.boxes(sha) if boxes is None else boxes
        return sg.suggest(
            current, preds, self.suggestion_params, self.classes, model=self.prelabel_model
        )

    def runs(self) -> list[Run]:
        """The stored runs covering this session's base version, newest first."""
        return available_runs(self.project, self.session.base_id)

    def boxes(self, sha: str) -> list[Box]:
        """What the reviewer sees: their edit, else the base labels, else pending pre-labels."""
        row = self.project.db.execute(
            "SELECT boxes FROM session_edit WHERE session = ? AND image = ?",
            [self.session.id, sha],
        ).fetchone()
        if row:
            return [Box.from_dict(d) for d in json.loads(row[0])]
        base = self.base_boxes(sha)
        return base if base else self.prelabels(sha)

    def refresh_row(self, sha: str, boxes: list[Box]) -> ImageRow:
        row = self.rows[self.index[sha]]
        row.state = CONFLICT if sha in self.conflicts else edit_state(self.base_boxes(sha), boxes)
        row.n_boxes = len(object_boxes(boxes))  # as the stored n_boxes: crowd not counted
        pending = [b.score for b in boxes if b.state == "pending" and b.score is not None]
        row.min_score = min(pending) if pending else None
        row.classes = frozenset(b.cls for b in boxes)
        return row

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for r in self.rows:
            out[r.state] += 1
        return out

    def main_moved(self) -> bool:
        return head(self.project.db) != self.session.base_id


def last_prelabel_params(project: Project) -> dict[str, dict]:
    """model id -> the parameters (conf, iou, imgsz) of the newest session that showed its
    pre-labels: what to offer next time, since a model is usually run the way it was trained."""
    rows = project.db.execute(
        "SELECT prelabel_model, prelabel_params FROM review_session "
        "WHERE prelabel_model IS NOT NULL AND prelabel_params IS NOT NULL ORDER BY id"
    ).fetchall()
    return {model: json.loads(params) for model, params in rows}  # the newest one wins


def set_prelabel_source(
    project: Project, session_id: int, model: str | None, params: dict | None
) -> None:
    """Choose whose predictions the session shows as pre-labels and suggestions (recorded for
    provenance and agreement; the next session inherits it after a commit). Reload the
    workspace afterwards: the list's scores come from the source."""
    ReviewSession(project, session_id).set_source(model, params)


def available_runs(project: Project, version_id: str) -> list[Run]:
    """The stored prediction runs covering ``version_id``'s images, newest first (the source
    chooser's entries: model name, params, images covered, when)."""
    db = project.db
    return predictions.runs(db, predictions.version_images(db, version_id))


def review_queue(
    project: Project,
    session_id: int,
    overlay: Mapping[str, list[Box]] | None = None,
    params: review_queue_core.Params | None = None,
) -> list[review_queue_core.QueueItem]:
    """The session's images ranked by likely error (:func:`labeldesk.core.review.queue.rank`) by the
    session's source run, on its base version, with its edits and the window's unsaved
    ``overlay`` in place of the labels. Reads only: run it on a worker thread.

    Edits that leave an image exactly as the base has it (a person looked and kept it) are
    ranked with the base, on the fast path.
    """
    session = ReviewSession(project, session_id)
    source = session.source()
    if source is None:
        return []
    store = ManifestStore(project.db)
    tree = store.tree(session.base.tree)
    edits: dict[str, list[Box]] = {}
    for image, text in project.db.execute(
        "SELECT image, boxes FROM session_edit WHERE session = ?", [session_id]
    ):
        entry = store.entry(tree, image)
        # session_edit holds the same canonical JSON an annotation set is hashed from
        if entry is not None and hashlib.sha256(text.encode()).hexdigest() == entry.annset:
            continue
        edits[image] = [Box.from_dict(d) for d in json.loads(text)]
    edits.update(overlay or {})
    return review_queue_core.rank(
        project,
        session.base_id,
        source=source,
        params=params or review_queue_core.Params(),
        edits=edits,
    )


# -- operations of the review window (each runs on the window's writer or reader lane) ---------


def start_session(project: Project) -> int:
    """The reviewer's open session, else a new one on main (a write: on the writer); its id."""
    return open_or_start_session(project).id


def open_workspace(project: Project, session_id: int) -> Workspace:
    """A session's workspace, not loaded yet (a small read: the GUI thread may do it)."""
    return Workspace(project, ReviewSession(project, session_id))


def queue_params(iou: float) -> review_queue_core.Params:
    """The review queue's parameters with the window's matching threshold."""
    return review_queue_core.Params(iou=iou)


def load_workspace(project: Project, session_id: int) -> Workspace:
    """Everything the image list shows of a session (one pass over the base: on the reader)."""
    ws = Workspace(project, ReviewSession(project, session_id))
    ws.load()
    return ws


def save_edit(project: Project, session_id: int, sha: str, boxes: list[Box]) -> str:
    """Store the reviewer's boxes of one image in the session; returns the image."""
    ReviewSession(project, session_id).set_boxes(sha, boxes)
    return sha


def commit_session(
    project: Project,
    session_id: int,
    message: str,
    provenance: dict,
    resolutions: dict | None = None,
) -> Changed:
    """Commit the session as a new version on main (conflicts raise MergeConflictError)."""
    version = ReviewSession(project, session_id).commit(
        message, provenance=provenance, resolutions=resolutions
    )
    return Changed(version=version, versions=True, session=True)


def next_class_id(classes: Mapping[int, str], name: str) -> int:
    """The id :func:`add_class` gives ``name``: its id if the session has it, else the next
    provisional (negative) one. Lets the window use the class before the writer has run."""
    name = name.strip()
    if not name:
        raise LabelDeskError("a class needs a name")
    for cid, existing in classes.items():
        if existing == name:
            return cid
    return min([0, *classes]) - 1


def add_class(project: Project, session_id: int, name: str) -> Changed:
    """Add a class to the session (it joins the class list when the session commits); the
    report is its provisional id."""
    cid = ReviewSession(project, session_id).add_class(name)
    return Changed(classes=True, report=cid)


def set_source(
    project: Project, session_id: int, model: str | None, params: dict | None
) -> Changed:
    """:func:`set_prelabel_source` as an operation: the session must be reloaded."""
    set_prelabel_source(project, session_id, model, params)
    return Changed(session=True)


def prelabel(
    project: Project,
    model_id: str,
    version_id: str,
    *,
    conf: float,
    iou: float,
    imgsz: int,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Any:
    """Run a registered model over a version's images (cached); returns core's report."""
    from labeldesk.core.inference.prelabel import prelabel as run

    return run(
        project,
        model_id,
        version_id,
        conf=conf,
        iou=iou,
        imgsz=imgsz,
        progress=progress,
        cancel=cancel,
    )


def matched_predictions(labels: list[Box], predictions_: list[Box], iou: float) -> list[int | None]:
    """For each prediction the index of the label it agrees with (same class, IoU ≥ ``iou``),
    or None."""
    return sg.match(labels, predictions_, iou)


def prelabel_choices(project: Project) -> tuple[list, dict[str, dict]]:
    """The registered models and, per model, the parameters it was last run with."""
    from labeldesk.core.inference.registry import list_models

    return list_models(project.db), last_prelabel_params(project)


@dataclass
class LoadedSession:
    """A session as the window opens it: the loaded workspace and the stored runs of its base
    (the run chooser's entries), read together on the reader."""

    workspace: Workspace
    runs: list[Run]


def load_session(project: Project, session_id: int) -> LoadedSession:
    ws = load_workspace(project, session_id)
    try:
        runs = ws.runs()
    except LabelDeskError:  # no run can be listed for this version: the chooser says no model
        runs = []
    return LoadedSession(ws, runs)


@dataclass
class ImageSuggestions:
    """What the window draws over a labelled image besides its boxes."""

    suggestions: list[sg.Suggestion]  # where the model disagrees, not yet decided
    matched: list[Box]  # the run's predictions that agree with a label (shown faint on request)


def image_suggestions(
    ws: Workspace,
    sha: str,
    boxes: list[Box],
    *,
    source: tuple[str | None, dict | None],
    classes: Mapping[int, str],
    params: sg.Params,
    matched: bool = False,
) -> ImageSuggestions:
    """The suggestions on ``sha`` with the window's ``boxes`` (its unsaved overlay), for the
    window's source run, classes and matching threshold. ``ws`` is a workspace of the session
    opened on the thread that runs this (:func:`open_workspace`): a small read per image."""
    ws.prelabel_model, ws.prelabel_params = source
    ws.classes, ws.suggestion_params = dict(classes), params
    found = [s for s in ws.suggestions(sha, boxes) if not rules.is_decided(boxes, s)]
    agreeing: list[Box] = []
    if matched and ws.base_boxes(sha):
        labels = [b for b in boxes if b.state != "rejected"]
        preds = ws.predictions(sha)
        matches = sg.match(labels, preds, params.iou)
        agreeing = [p for p, m in zip(preds, matches, strict=True) if m is not None]
    return ImageSuggestions(found, agreeing)
