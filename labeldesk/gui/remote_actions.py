"""The window's Remote menu: Push and Pull in the background, ahead/behind in the status bar.

Push and Pull are :mod:`labeldesk.app.remote` operations run with a bar and Cancel in the status
bar (the user keeps reviewing) on a jobs lane: the network must hold up neither saving edits
nor reading. A pull whose images conflict opens the conflict chooser and pulls again with the
choices. Ahead/behind is counted from what the project last saw of the remote (no network),
read on the reader whenever the menu opens or the history changes.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow

from labeldesk.app import remote
from labeldesk.app import state as S

from .operations import Op, Operations, show_error


class RemoteActions(QObject):
    refreshed = Signal()  # the label and the actions show the remote as last seen

    def __init__(self, state: S.ProjectState, ops: Operations, window: QMainWindow) -> None:
        super().__init__(window)
        self.state, self.ops, self.window_ = state, ops, window
        self.job: Op | None = None
        self._remotes = False
        menu = window.menuBar().addMenu("&Remote")
        self.push_action = QAction("&Push", window)
        self.push_action.triggered.connect(self.push)
        self.pull_action = QAction("P&ull", window)
        self.pull_action.triggered.connect(lambda: self.pull())
        menu.addAction(self.push_action)
        menu.addAction(self.pull_action)
        menu.aboutToShow.connect(self.refresh)
        self.label = QLabel("")
        window.statusBar().addPermanentWidget(self.label)
        state.subscribe(self._state_changed)

    def _state_changed(self, event: str, _state: S.ProjectState) -> None:
        if event in (S.OPENED, S.VERSION, S.VERSIONS):
            self.refresh()
        elif event == S.CLOSED:
            self._show(remote.RemoteStatus(None, None))

    def refresh(self) -> None:
        """Show ahead/behind of the project's remote (as last seen), or nothing."""
        self._enable()
        self.ops.run(self, remote.status, lane="reader", on_done=self._show)

    def _enable(self) -> None:
        enabled = self._remotes and self.job is None
        self.push_action.setEnabled(enabled)
        self.pull_action.setEnabled(enabled)

    def _show(self, status: remote.RemoteStatus) -> None:
        self._remotes = status.name is not None
        self._enable()
        if status.name is None:
            self.label.setText("")
        else:
            ab = status.ahead_behind
            self.label.setText(
                f"{status.name}: not synced yet"
                if ab is None
                else f"{status.name}: ↑{ab[0]} ↓{ab[1]}"
            )
        self.refreshed.emit()

    def _start(self, title: str, op: Any, done: Any) -> None:
        if self.ops.lanes is None or self.job is not None:
            return
        self.job = self.ops.run(
            self,
            op,
            lane="jobs",
            progress="status",
            title=title,
            on_done=lambda changed: self._finished(done, changed),
            on_error=self._failed,
        )
        self._enable()

    def _finished(self, done: Any, changed: Any) -> None:
        self.job = None
        done(changed.report)
        self.state.apply(changed)  # the versions panel and this label refresh

    def _failed(self, error: BaseException) -> None:
        self.job = None
        self.refresh()
        if isinstance(error, remote.pull_conflict()):
            from .conflicts import ConflictDialog

            self.state.apply(remote.Changed(versions=True))  # the fetch is kept
            dialog = ConflictDialog(self.window_, error.conflicts)
            dialog.accepted.connect(lambda: self.pull(dialog.resolutions()))
            self.conflict_dialog = dialog
            dialog.open()
            return
        show_error(self.window_, "LabelDesk", error)

    def push(self) -> None:
        def done(r: Any) -> None:
            sent = sum(r.sent.values())
            self.window_.statusBar().showMessage(
                f"Pushed to {r.remote}: {sent} item(s) sent"
                + (f", main is {r.main[:12]}" if r.moved else ", main already there"),
                10000,
            )

        self._start("Pushing", remote.push, done)

    def pull(self, resolutions: dict[str, Any] | None = None) -> None:
        def done(r: Any) -> None:
            self.window_.statusBar().showMessage(
                f"Pulled from {r.fetched.remote}: {len(r.fetched.versions)} version(s); {r.action}",
                10000,
            )

        self._start(
            "Pulling",
            lambda p, progress, cancel: remote.pull(p, resolutions, progress, cancel),
            done,
        )
