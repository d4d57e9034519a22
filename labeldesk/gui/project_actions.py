"""The menus' project actions: new, open, demo, add images, import/export, pre-label, train.

Each asks the user for what it needs, then runs one ``labeldesk.app`` operation through
:func:`~labeldesk.gui.operations.run_op` and hands what changed to the project state: a new
version (added images, an import) reaches the window's one handler for new versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMessageBox

from labeldesk.app import project as project_ops
from labeldesk.app import review
from labeldesk.core.errors import LabelDeskError

from .operations import Lane, Op, run_op


class ProjectActions(QObject):
    """The File, Review and Models menus' handlers, on the window they serve."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window_ = window

    # -- projects ----------------------------------------------------------------------------
    def new_project_dialog(self) -> None:
        w = self.window_
        path = QFileDialog.getExistingDirectory(w, "Folder for the new project")
        if path:
            try:
                project_ops.init_project(Path(path), w.user)
            except LabelDeskError as e:
                w.show_error(e)
                return
            w.open_project(Path(path))

    def open_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.window_, "Open a LabelDesk project")
        if path:
            self.window_.open_project(Path(path))

    def open_demo(self) -> Op:
        """Build the demo project (once) with a progress dialog, then open it."""
        target = Path.home() / "labeldesk-demo"
        # No project need be open: it is built on a thread of its own, with no connection.
        return run_op(
            self.window_,
            lambda _none, progress, cancel: project_ops.build_demo(target, progress, cancel),
            lane=Lane(None, None, "labeldesk-demo", dedicated=True),
            progress="dialog",
            title="Building the demo project",
            on_done=self.window_.open_project,
        )

    def add_images_dialog(self) -> Op | None:
        w = self.window_
        if w.lanes is None:
            return None
        folder = QFileDialog.getExistingDirectory(w, "Add a folder of images")
        if not folder:
            return None

        def done(changed: Any) -> None:
            report = changed.report
            lines = [
                f"added {len(report.added)}, duplicates {len(report.duplicates)}, "
                f"skipped {len(report.skipped)}"
            ]
            lines += [f"• {p.where}: {p.reason}" for p in report.skipped[:30]]
            QMessageBox.information(w, "Images added", "\n".join(lines))
            w.state.apply(changed)  # a new version: the window's one handler takes it

        return run_op(
            w,
            lambda p, progress, cancel: project_ops.add_images(p, folder, progress, cancel),
            lane=w.lanes.writer,
            progress="dialog",
            title="Adding images",
            on_done=done,
        )

    def import_dataset(self, fmt: str) -> None:
        from . import exchange as exchange_ui

        exchange_ui.import_dataset(self.window_, fmt)

    def export_dataset(self, fmt: str) -> None:
        from . import exchange as exchange_ui

        exchange_ui.export_dataset(self.window_, fmt)

    # -- models ----------------------------------------------------------------------------------
    def prelabel_dialog(self) -> None:
        from .prelabel_dialog import PrelabelDialog, start_prelabel

        w = self.window_
        if w.project is None or w.ws is None:
            return
        models, last = review.prelabel_choices(w.project)
        dialog = PrelabelDialog(w, models, last)
        if dialog.exec():
            start_prelabel(w, *dialog.choice())

    def prelabels_ready(self, report: Any) -> None:
        """Point the session at the model's boxes, then reload the list with them."""
        w = self.window_
        if w.ws is None:
            return
        w.statusBar().showMessage(
            f"Pre-labelled {report.predicted} images ({report.cached} were cached) with "
            f"{report.model.name}",
            10000,
        )
        w.set_source(report.model.id, report.params)

    def train_dialog(self) -> None:
        """Train from a version in the background (non-modal: reviewing goes on)."""
        from .train_dialog import TrainDialog

        w = self.window_
        if w.project is None:
            return
        dialog = TrainDialog(w, w.project.root, w.project.user, w.project)
        dialog.trained.connect(lambda _name: w.versions.refresh())
        w.train_window = dialog
        dialog.show()

    def models_dialog(self) -> None:
        """The registered models, their lineage, and Promote (the champion/challenger gate)."""
        from .train_dialog import ModelsDialog

        w = self.window_
        if w.project is None:
            return
        dialog = ModelsDialog(w, w.project.root, w.project.user, w.project)
        w.models_window = dialog
        dialog.show()
