"""The versions panel: history, diff, tag, revert, approve and reject.

Lead actions are not shown to annotators; core refuses them anyway, so the panel is a
convenience, not the guard.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QInputDialog,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from labeldesk.app import state as S
from labeldesk.app import versions as V
from labeldesk.app.state import ProjectState

from .item_models import RowRole, VersionTableModel
from .operations import Operations


class VersionsPanel(QWidget):
    """Built on the project state: it refreshes when the history changes, and runs its
    actions (each a :mod:`labeldesk.app.versions` operation) on the writer."""

    historyShown = Signal()  # the table shows the history as read (tests wait on it)
    diffShown = Signal(object)  # a diff dialog opened

    def __init__(self, state: ProjectState, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.ops = state, ops
        self._generation = 0  # bumped on open and close: late reads are dropped
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
        state.subscribe(self._state_changed)

    def _state_changed(self, event: str, state: ProjectState) -> None:
        if event == S.OPENED:
            self._generation += 1
            lead = state.role == "lead"
            for name in ("Approve…", "Reject…"):
                self.buttons[name].setVisible(lead)
            self.refresh()
        elif event == S.CLOSED:
            self._generation += 1
        elif event in (S.VERSION, S.VERSIONS, S.EVALUATIONS, S.MODELS):
            self.refresh()

    def refresh(self) -> None:
        """Read the history and the watched-model column on the reader, then show them."""
        generation = self._generation

        def show(history: V.History) -> None:
            if generation == self._generation:
                self.model.set_versions(history.versions, history.trained)
                self.table.resizeColumnsToContents()
                self.table.resizeRowsToContents()
                self.historyShown.emit()

        def show_watch(status: dict) -> None:
            if generation == self._generation:
                self.model.set_watch(status)
                self.table.resizeColumnToContents(self.model.WATCH_COLUMN)

        self.ops.run(self, V.history, lane="reader", on_done=show, on_error=self._error)
        # it reads every stored evaluation: after the history, never in its way
        self.ops.run(self, V.watch_status, lane="reader", on_done=show_watch, on_error=self._error)

    def _error(self, error: BaseException) -> None:
        from .operations import show_error

        show_error(self.window(), "LabelDesk", error)

    def selected(self) -> list:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.index(r, 0).data(RowRole) for r in rows]

    def _run(self, op, *args) -> None:
        """Run a versions operation on the writer; the state hears what it changed (a revert
        is a new version: the window's one handler starts a session on it)."""
        self.ops.run(
            self,
            lambda p: op(p, *args),
            lane="writer",
            on_done=self.state.apply,
            on_error=self._error,
        )

    def diff_selected(self) -> None:
        """Open the diff of the selected versions (or of one and its parent); the dialog
        computes it on the reader."""
        from .diff_dialog import DiffDialog

        chosen = self.selected()
        if not chosen:
            return
        if len(chosen) >= 2:
            new, old_id = chosen[0], chosen[-1].id  # the table lists newest first
        else:
            new = chosen[0]
            if not new.parents:
                return
            old_id = new.parents[0]

        self.diff_dialog = DiffDialog(self.window(), self.ops, old_id, new.id)
        self.diff_dialog.open()  # window-modal, without a nested event loop
        self.diffShown.emit(self.diff_dialog)

    def tag_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        name, ok = QInputDialog.getText(self, "Tag version", f"Tag for {chosen[0].short}:")
        if ok and name.strip():
            self._run(V.tag, name.strip(), chosen[0].id)

    def revert_selected(self) -> None:
        chosen = self.selected()
        if chosen:
            self._run(V.revert, chosen[0].id)

    def approve_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        note, ok = QInputDialog.getText(self, "Approve version", "Note (optional):")
        if ok:
            self._run(V.decide, chosen[0].id, "approved", note)

    def reject_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        note, ok = QInputDialog.getText(self, "Reject version", "Why is it rejected?")
        if ok and note.strip():
            self._run(V.decide, chosen[0].id, "rejected", note)
