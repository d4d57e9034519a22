"""Operations on the version history: decide (approve/reject), revert, tag, diff, the list."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeldesk.core.store import versions as V
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.project import Project
from labeldesk.core.store.version_diff import diff as version_diff

from .changes import Changed


def tag(project: Project, name: str, version_id: str) -> Changed:
    V.tag(project, name, version_id)
    return Changed(versions=True)


def decide(project: Project, version_id: str, decision: str, note: str) -> Changed:
    """Approve or reject a version (leads only; core refuses anyone else)."""
    V.decide(project, version_id, decision, note)
    return Changed(versions=True)


def revert(project: Project, version_id: str) -> Changed:
    """A new version on main with the content of ``version_id``."""
    return Changed(version=V.revert(project, version_id), versions=True)


@dataclass(frozen=True)
class History:
    versions: list[V.Version]  # newest first
    trained: dict[str, Any]  # version id -> the models trained on it


def history(project: Project) -> History:
    from labeldesk.core.training.trained import trained_per_version

    return History(list(reversed(V.all_versions(project.db))), trained_per_version(project.db))


def watch_status(project: Project) -> dict:
    """The watched-model column (reads every stored evaluation: run it off the GUI thread)."""
    from labeldesk.core.validation.watch_status import watch_status as status

    return status(project)


def get_version(project: Project, version_id: str) -> V.Version:
    return V.get_version(project.db, version_id)


@dataclass(frozen=True)
class DiffView:
    """A diff as the diff dialog shows it: the diff, both versions, the images' file names."""

    diff: Any  # core.store.version_diff.VersionDiff
    old: V.Version
    new: V.Version
    names: dict[str, str]  # sha -> source path


def diff(project: Project, old_id: str, new_id: str) -> DiffView:
    """Compare two versions (reads both manifests: run it off the GUI thread)."""
    d = version_diff(project, old_id, new_id)
    names = dict(
        project.db.execute("SELECT sha256, path FROM image_source ORDER BY id DESC").fetchall()
    )
    return DiffView(d, V.get_version(project.db, old_id), V.get_version(project.db, new_id), names)


@dataclass(frozen=True)
class DiffImage:
    """One changed image of a diff: its size and the boxes before and after."""

    size: tuple[int, int]
    before: list
    after: list


def diff_image(
    project: Project, image: str, old_annset: str | None, new_annset: str | None
) -> DiffImage:
    """One image of a diff: its size and its boxes in both versions."""
    return DiffImage(
        image_size(project, image),
        annotation_boxes(project, old_annset),
        annotation_boxes(project, new_annset),
    )


def object_path(project: Project, sha: str) -> Path:
    """Where an image's bytes are (to decode for display)."""
    return project.objects.path(sha)


def image_size(project: Project, sha: str) -> tuple[int, int]:
    """An image's upright size (a small read: the GUI thread may do it)."""
    row = project.db.execute("SELECT width, height FROM image WHERE sha256 = ?", [sha]).fetchone()
    return row[0], row[1]


def annotation_boxes(project: Project, annset: str | None) -> list:
    """The boxes of a stored annotation set (none for None)."""
    return load_annotation_set(project.db, annset) if annset else []
