"""Import and export from the File menu: COCO and YOLO, with progress, cancel and errors.

The work is :mod:`labeldesk.app.exchange`, run through :func:`~.operations.run_op` (an import
on the writer lane: it makes a version); the window only asks for paths and shows the report
or the itemised problems.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from labeldesk.app import exchange

from .operations import Op, run_op


def _report_text(report: Any) -> str:
    lines = [f"{report.format.upper()}: {report.n_images} images, {report.n_boxes} boxes"]
    if getattr(report, "version", None) is not None:
        lines.append(f"version {report.version.short}")
    for note in report.notes[:40]:
        lines.append(f"• {note.where}: {note.reason}")
    if len(report.notes) > 40:
        lines.append(f"… and {len(report.notes) - 40} more")
    return "\n".join(lines)


def _inform(window: Any, title: str, text: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, title, text, parent=window)
    box.open()  # no nested event loop: the window keeps running
    window.last_message = box


def _ask_import(window: Any, fmt: str) -> tuple | None:
    if fmt == "coco":
        ann, _ = QFileDialog.getOpenFileName(window, "COCO annotations", "", "JSON (*.json)")
        if not ann:
            return None
        images = QFileDialog.getExistingDirectory(
            window, "Folder with the images", str(Path(ann).parent)
        )
        return ([ann], images) if images else None
    folder = QFileDialog.getExistingDirectory(window, "YOLO dataset folder (with data.yaml)")
    return (folder,) if folder else None


def import_dataset(window: Any, fmt: str, args: tuple | None = None) -> Op | None:
    """Import a COCO annotation file (and its images folder) or a YOLO folder.

    Without ``args`` the user is asked for them. Returns the operation (tests wait on it).
    """
    if window.lanes is None:
        return None
    chosen = args if args is not None else _ask_import(window, fmt)
    if chosen is None:
        return None

    def done(changed: Any) -> None:
        _inform(window, "Import finished", _report_text(changed.report))
        window.state.apply(changed)  # a new version: the window's one handler takes it

    return run_op(
        window,
        lambda p, progress, cancel: exchange.import_dataset(p, fmt, chosen, progress, cancel),
        lane=window.lanes.writer,
        progress="dialog",
        title=f"Importing {fmt.upper()}",
        on_done=done,
    )


def export_dataset(window: Any, fmt: str, ref: str = "main", out: str | None = None) -> Op | None:
    if window.lanes is None:
        return None
    if out is None:
        out = QFileDialog.getExistingDirectory(window, f"Empty folder for the {fmt.upper()} export")
    if not out:
        return None
    target = out
    return run_op(
        window,
        lambda p, progress, cancel: exchange.export_dataset(p, fmt, target, ref, progress, cancel),
        lane=window.lanes.reader,
        progress="dialog",
        title=f"Exporting {fmt.upper()}",
        on_done=lambda changed: _inform(window, "Export finished", _report_text(changed.report)),
    )
