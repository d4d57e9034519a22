"""Project-level operations of the window: open, create, add images, the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labeldesk.core.flavour import FULL_ONLY, is_full
from labeldesk.core.progress import CancelFn, ProgressFn
from labeldesk.core.store.project import Project

from .changes import Changed


def open_project(root: Path | str, user: str | None = None) -> Project:
    """Open the project at ``root`` as ``user`` (the caller closes it)."""
    return Project.open(Path(root), user=user)


def init_project(root: Path | str, user: str | None = None) -> None:
    """Create an empty project at ``root``."""
    Project.init(Path(root), user=user).close()


@dataclass(frozen=True)
class ProjectInfo:
    """What the window shows about the open project, read once when it opens."""

    root: Path
    user: str
    role: str
    training: bool  # this flavour can train (the review flavour has no torch)
    training_note: str  # why not, when it cannot


def project_info(project: Project) -> ProjectInfo:
    return ProjectInfo(project.root, project.user, project.role_of(), is_full(), FULL_ONLY)


@dataclass(frozen=True)
class FlavourInfo:
    training: bool  # this flavour can train (the review flavour has no torch)
    training_note: str  # why not, when it cannot


def flavour_info() -> FlavourInfo:
    return FlavourInfo(is_full(), FULL_ONLY)


def add_images(project: Project, folder: str, progress: ProgressFn, cancel: CancelFn) -> Changed:
    """Add a folder of images (a new version when anything was added)."""
    from labeldesk.core.store.importer import add_images as add

    report = add(project, [folder], progress=progress, cancel=cancel)
    return Changed(version=report.version, versions=True, report=report)


def build_demo(target: Path, progress: ProgressFn, cancel: CancelFn) -> Path:
    """The demo project under ``target`` (built once; reused after); returns its root."""
    from labeldesk.core.demo.build import build_demo as build

    root = target / "project"
    if not (root / "labeldesk.db").exists():
        build(target, progress=progress, say=lambda _s: None)
    return root
