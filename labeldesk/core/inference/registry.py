"""The model registry: which weights files a project knows, by the hash of their bytes.

Why it is built this way:

* A model is identified by the sha256 of its weights file, so the prediction cache is keyed by
  exactly the bytes that produced it. A file that changed since it was registered is refused
  (never silently re-used under the old identity) until it is registered again.
* Registering reads the file's format, task and class names from the bytes
  (:mod:`.model_files`, :mod:`.loading`), never from the extension or the file name.
* Class names are read from the model itself. They map to a version's classes by name; unknown
  names are reported, and added (to the user's open review session, see :func:`add_model`) only
  on request.
* Nothing here imports torch or ultralytics: listing and checking models stays fast, and only
  :mod:`.loading` (to run one) and :mod:`.onnx_export` load them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.db import ProjectDatabase as Database
from ..store.db import named
from ..store.project import Project, now_iso
from .model_files import (
    NAME_RE,
    ModelChangedError,
    ModelError,
    changed_message,
    gone_message,
    model_id,
    private_copy,
    sniff_format,
)


@dataclass(frozen=True)
class ModelInfo:
    """One row of the ``model`` table."""

    id: str  # sha256 of the weights file (with its ONNX external data: combined_id)
    name: str
    path: str
    format: str
    task: str
    class_names: list[str]
    trained_on: str | None
    trusted: bool
    added_at: str
    added_by: str

    @property
    def short(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "format": self.format,
            "task": self.task,
            "class_names": self.class_names,
            "trained_on": self.trained_on,
            "trusted": self.trusted,
            "added_at": self.added_at,
            "added_by": self.added_by,
        }


@dataclass
class AddReport:
    """What :func:`add_model` did: the model row and how its classes meet the version's."""

    model: ModelInfo
    already: bool = False  # the same bytes were registered under this name before
    replaced: str | None = None  # id of the earlier model of this name (renamed name@id12)
    version: str | None = None  # the version the classes were compared with
    unknown_classes: list[str] = field(default_factory=list)
    added_classes: list[str] = field(default_factory=list)
    session: int | None = None  # review session the classes were added to

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.to_json(),
            "already_registered": self.already,
            "replaced": self.replaced,
            "version": self.version,
            "unknown_classes": self.unknown_classes,
            "added_classes": self.added_classes,
            "session": self.session,
        }


# --- the registry ------------------------------------------------------------------------


def _row(r: sqlite3.Row) -> ModelInfo:
    """A ``SELECT {_COLUMNS}`` row read with :func:`~.db.named`."""
    return ModelInfo(
        id=r["id"],
        name=r["name"],
        path=r["path"],
        format=r["format"],
        task=r["task"],
        class_names=json.loads(r["class_names"]),
        trained_on=r["trained_on"],
        trusted=bool(r["trusted"]),
        added_at=r["added_at"],
        added_by=r["added_by"],
    )


_COLUMNS = "id, name, path, format, task, class_names, trained_on, trusted, added_at, added_by"


def list_models(db: Database) -> list[ModelInfo]:
    return [_row(r) for r in named(db, f"SELECT {_COLUMNS} FROM model ORDER BY added_at, name")]


def find_model(db: Database, name_or_id: str) -> ModelInfo:
    """The model of that name, else of that id (or unique id prefix of 4+ hex digits)."""
    row = named(db, f"SELECT {_COLUMNS} FROM model WHERE name = ?", [name_or_id]).fetchone()
    if row is None and re.fullmatch(r"[0-9a-f]{4,64}", name_or_id):
        rows = named(
            db, f"SELECT {_COLUMNS} FROM model WHERE id LIKE ? LIMIT 2", [name_or_id + "%"]
        ).fetchall()
        if len(rows) > 1:
            raise ModelError(f"{name_or_id!r} names more than one model; give more digits")
        row = rows[0] if rows else None
    if row is None:
        known = ", ".join(m.name for m in list_models(db)) or "none registered"
        raise ModelError(
            f"no model {name_or_id!r} (known: {known}); register one with `labeldesk model add`"
        )
    return _row(row)


def _current_hash(info: ModelInfo) -> str | None:
    """The id of the registered file now (with its external data); None if it is gone."""
    try:
        return model_id(Path(info.path))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ModelError(f"cannot read model file {info.path}: {e.strerror or e}") from None


def file_state(info: ModelInfo) -> str:
    """``ok``, ``changed``, ``missing`` (or ``unreadable``): does the file hold those bytes?"""
    try:
        found = _current_hash(info)
    except ModelError:
        return "unreadable"
    return "missing" if found is None else "ok" if found == info.id else "changed"


def get_model(project: Project, name_or_id: str, *, verify: bool = True) -> ModelInfo:
    """The registered model, refused if its file is gone or changed since registration."""
    info = find_model(project.db, name_or_id)
    if verify:
        found = _current_hash(info)
        if found is None:
            raise ModelChangedError(gone_message(info.path))
        if found != info.id:
            raise ModelChangedError(changed_message(info.path, info.id, found))
    return info


def add_model(
    project: Project,
    path: Path | str,
    name: str | None = None,
    *,
    trust: bool = False,
    add_classes: bool = False,
    version_ref: str = "main",
    within: Callable[[str], None] | None = None,
    inspected: tuple[str, list[str]] | None = None,
) -> AddReport:
    """Register the weights at ``path`` (sha256, format, task, class names) under ``name``.

    Registering a file that is already registered under the same name only refreshes its path.
    Registering new bytes under a name in use (a retrained or edited file) keeps the old row,
    renamed ``name@<id12>``, because cached predictions and review sessions refer to it.

    The model's classes are compared by name with those of ``version_ref``; the unknown ones
    are reported. With ``add_classes`` they are added to the user's newest open review session
    on ``main`` (one is started if there is none): classes only enter the project through a
    committed version, so they become project classes when that session is committed, and
    meanwhile the session shows the model's pre-labels of those classes for review.
    """
    # Reading a model's task and names is loading's work; listing and finding models (what
    # `labeldesk log` and the window's menus do) must not import it.
    from .loading import check_task, onnx_meta, pt_meta

    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    name = (name or path.stem).strip()
    if not NAME_RE.match(name) or "@" in name:
        raise ModelError(f"bad model name {name!r}: up to 100 characters, no '/', '\\' or '@'")
    with private_copy(path) as (copy, sha):
        fmt = sniff_format(copy)
        if fmt == "pt" and inspected is not None:
            # Task and classes already read, through the same safe loader, by the process that
            # made the file (the training child): importing torch here would cost seconds.
            task, names = inspected
        elif fmt == "pt":
            loadable = copy.rename(copy.with_suffix(".pt"))
            task, names = pt_meta(loadable, path, trust)
        else:
            task, names, _ = onnx_meta(copy, path)
    check_task(task, path)

    db = project.db
    report: AddReport
    with project.transaction():
        same = named(db, f"SELECT {_COLUMNS} FROM model WHERE id = ?", [sha]).fetchone()
        old = _row(same) if same is not None else None
        if old is not None and old.name != name and not old.name.startswith(name + "@"):
            raise ModelError(f"{path} is already registered as {old.name!r} ({old.short})")
        replaced = None
        if old is None or old.name != name:
            # The name moves to these bytes; whoever held it keeps its row as name@id12.
            clash = db.execute("SELECT id FROM model WHERE name = ?", [name]).fetchone()
            if clash is not None:
                replaced = clash[0]
                db.execute(
                    "UPDATE model SET name = ? WHERE id = ?", [f"{name}@{replaced[:12]}", replaced]
                )
        if old is not None:
            db.execute(
                "UPDATE model SET name = ?, path = ?, trusted = MAX(trusted, ?) WHERE id = ?",
                [name, str(path), int(trust), sha],
            )
            report = AddReport(_row(_fetch(db, sha)), already=old.name == name, replaced=replaced)
        else:
            db.execute(
                f"INSERT INTO model ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                [
                    sha,
                    name,
                    str(path),
                    fmt,
                    task,
                    json.dumps(names, ensure_ascii=False),
                    int(trust),
                    now_iso(),
                    project.user,
                ],
            )
            report = AddReport(_row(_fetch(db, sha)), replaced=replaced)
        if within is not None:
            # Part of the same transaction: a trained model and its run record land together.
            within(sha)
            report.model = _row(_fetch(db, sha))
    _map_classes(project, report, version_ref, add_classes)
    return report


def _fetch(db: Database, sha: str) -> sqlite3.Row:
    return named(db, f"SELECT {_COLUMNS} FROM model WHERE id = ?", [sha]).fetchone()


def unknown_classes(model_classes: list[str], version_classes: list[dict[str, Any]]) -> list[str]:
    """Model classes (in model order) that the version has no class of that name for."""
    known = {c["name"] for c in version_classes}
    return [n for n in dict.fromkeys(model_classes) if n not in known]


def _map_classes(project: Project, report: AddReport, ref: str, add: bool) -> None:
    from ..store.versions import head, resolve

    if head(project.db) is None:
        return  # an empty project: nothing to compare with yet
    version = resolve(project.db, ref)
    report.version = version.id
    report.unknown_classes = unknown_classes(report.model.class_names, version.classes)
    if add and report.unknown_classes:
        from ..store.sessions import ReviewSession

        mine = ReviewSession.open_sessions(project, author=project.user)
        session = ReviewSession(project, mine[-1].id) if mine else ReviewSession.start(project)
        for n in report.unknown_classes:
            session.add_class(n)
        report.added_classes = list(report.unknown_classes)
        report.session = session.id
