"""The versions panel: history, diff, tag, revert, approve and reject.

Lead actions are not shown to annotators; core refuses them anyway, so the panel is a
convenience, not the guard.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QInputDialog,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from labeldesk.core import versions as V
from labeldesk.core.project import Project

from .item_models import RowRole, VersionTableModel


def _tag(project: Project, name: str, vid: str):
    return V.tag(project, name, vid)


def _decide(project: Project, vid: str, decision: str, note: str):
    return V.decide(project, vid, decision, note)


def _revert(project: Project, vid: str):
    return V.revert(project, vid)


def _watch_status(project: Project) -> dict:
    from labeldesk.core.watch import watch_status

    return watch_status(project)


class VersionsPanel(QWidget):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window_ = window
        self.project: Project | None = None
        self.model = VersionTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table)
        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for name, slot in (
            ("Diff…", self.diff_selected),
            ("Tag…", self.tag_selected),
            ("Revert to", self.revert_selected),
            ("Approve…", self.approve_selected),
            ("Reject…", self.reject_selected),
        ):
            b = QPushButton(name)
            b.clicked.connect(slot)
            buttons.addWidget(b)
            self.buttons[name] = b
        buttons.addStretch(1)
        lay.addLayout(buttons)

    def set_project(self, project: Project) -> None:
        self.project = project
        lead = project.role_of() == "lead"
        for name in ("Approve…", "Reject…"):
            self.buttons[name].setVisible(lead)
        self.refresh()

    def refresh(self) -> None:
        if self.project is None:
            return
        from labeldesk.core.training.runs import trained_per_version

        versions = list(reversed(V.all_versions(self.project.db)))
        self.model.set_versions(versions, trained_per_version(self.project.db))
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
        self._refresh_watch()

    def _refresh_watch(self) -> None:
        """The watched-model column, read on the worker (it reads every stored evaluation)."""
        worker, project = self.window_.worker, self.project
        if worker is None or project is None:
            return

        def show(status: dict) -> None:
            if project is self.project:
                self.model.set_watch(status)
                self.table.resizeColumnToContents(self.model.WATCH_COLUMN)

        worker.submit(_watch_status, on_done=show, on_error=self.window_.show_error)

    def selected(self) -> list:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.index(r, 0).data(RowRole) for r in rows]

    def _run(self, fn, *args) -> None:
        writer = self.window_.writer
        if writer is None:
            return

        def done(value) -> None:
            self.refresh()
            if fn is _revert:
                self.window_.committed.emit(value)  # a revert is a new version
                self.window_.start_session()

        writer.submit(fn, *args, on_done=done, on_error=self.window_.show_error)

    def diff_selected(self) -> None:
        from .diff_dialog import DiffDialog

        chosen = self.selected()
        if not chosen or self.project is None:
            return
        if len(chosen) >= 2:
            new, old = chosen[0], chosen[-1]  # the table lists newest first
        else:
            new = chosen[0]
            if not new.parents:
                return
            old = V.get_version(self.project.db, new.parents[0])
        DiffDialog(self.window_, self.project, old.id, new.id).exec()

    def tag_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        name, ok = QInputDialog.getText(self, "Tag version", f"Tag for {chosen[0].short}:")
        if ok and name.strip():
            self._run(_tag, name.strip(), chosen[0].id)

    def revert_selected(self) -> None:
        chosen = self.selected()
        if chosen:
            self._run(_revert, chosen[0].id)

    def approve_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        note, ok = QInputDialog.getText(self, "Approve version", "Note (optional):")
        if ok:
            self._run(_decide, chosen[0].id, "approved", note)

    def reject_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        note, ok = QInputDialog.getText(self, "Reject version", "Why is it rejected?")
        if ok and note.strip():
            self._run(_decide, chosen[0].id, "rejected", note)
