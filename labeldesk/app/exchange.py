"""Import and export: COCO and YOLO (the File menu)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from labeldesk.core.progress import CancelFn, ProgressFn
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import MAIN

from .changes import Changed


def import_dataset(
    project: Project, fmt: str, args: Sequence, progress: ProgressFn, cancel: CancelFn
) -> Changed:
    """``fmt`` "coco" (args: annotation files, images folder) or "yolo" (args: the folder)."""
    from labeldesk.core import formats

    fn = formats.import_coco if fmt == "coco" else formats.import_yolo
    report = fn(project, *args, progress=progress, cancel=cancel)
    return Changed(version=report.version, versions=True, classes=True, report=report)


def export_dataset(
    project: Project,
    fmt: str,
    out: Path | str,
    ref: str = MAIN,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Changed:
    from labeldesk.core import formats

    fn = formats.export_coco if fmt == "coco" else formats.export_yolo
    return Changed(report=fn(project, out, ref, progress=progress, cancel=cancel))
