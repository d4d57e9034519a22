"""Import and export from the File menu: COCO and YOLO, with progress, cancel and errors.

The work runs in labeldesk.core.formats on a worker thread with its own connection; the window
only asks for paths and shows the report or the itemised problems.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

from labeldesk.core.store.project import Project

from .jobs import run_job


def _report_text(report) -> str:
    lines = [f"{report.format.upper()}: {report.n_images} images, {report.n_boxes} boxes"]
    if getattr(report, "version", None) is not None:
        lines.append(f"version {report.version.short}")
    for note in report.notes[:40]:
        lines.append(f"• {note.where}: {note.reason}")
    if len(report.notes) > 40:
        lines.append(f"… and {len(report.notes) - 40} more")
    return "\n".join(lines)


def _inform(window, title: str, text: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, title, text, parent=window)
    box.open()  # no nested event loop: the window keeps running
    window.last_message = box


def import_dataset(window, fmt: str, args: tuple | None = None):
    """Import a COCO annotation file (and its images folder) or a YOLO folder.

    Without ``args`` the user is asked for them. Returns the job's thread (tests wait on it).
    """
    if window.project is None:
        return None
    if args is not None:
        pass
    elif fmt == "coco":
        ann, _ = QFileDialog.getOpenFileName(window, "COCO annotations", "", "JSON (*.json)")
        if not ann:
            return
        images = QFileDialog.getExistingDirectory(
            window, "Folder with the images", str(Path(ann).parent)
        )
        if not images:
            return
        args: tuple = ([ann], images)
    else:
        folder = QFileDialog.getExistingDirectory(window, "YOLO dataset folder (with data.yaml)")
        if not folder:
            return
        args = (folder,)
    root, user = window.project.root, window.project.user

    def work(progress, cancel):
        from labeldesk.core import formats

        fn = formats.import_coco if fmt == "coco" else formats.import_yolo
        with Project.open(root, user=user) as p:
            return fn(p, *args, progress=progress, cancel=cancel)

    def done(report) -> None:
        _inform(window, "Import finished", _report_text(report))
        window.versions.refresh()
        if report.version is not None:
            window.committed.emit(report.version)
        window.start_session()

    return run_job(window, f"Importing {fmt.upper()}", work, on_done=done)


def export_dataset(window, fmt: str, ref: str = "main", out: str | None = None):
    if window.project is None:
        return None
    if out is None:
        out = QFileDialog.getExistingDirectory(window, f"Empty folder for the {fmt.upper()} export")
    if not out:
        return None
    root, user = window.project.root, window.project.user

    def work(progress, cancel):
        from labeldesk.core import formats

        fn = formats.export_coco if fmt == "coco" else formats.export_yolo
        with Project.open(root, user=user) as p:
            return fn(p, out, ref, progress=progress, cancel=cancel)

    return run_job(
        window,
        f"Exporting {fmt.upper()}",
        work,
        on_done=lambda report: _inform(window, "Export finished", _report_text(report)),
    )
