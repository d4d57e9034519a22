"""The window's Remote menu: Push and Pull in the background, ahead/behind in the status bar.

Push and Pull run as :class:`~labeldesk.gui.jobs.StatusJob` (a bar with Cancel in the status
bar; the user keeps reviewing), each on its own connection to the project. A pull whose images
conflict opens the conflict chooser and pulls again with the choices. Ahead/behind is counted
from what the project last saw of the remote, so showing it costs no network.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel

from labeldesk.core.store.project import Project

from .jobs import StatusJob


class RemoteActions(QObject):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window_ = window
        self.job: StatusJob | None = None
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
        window.committed.connect(lambda *_: self.refresh())

    def refresh(self) -> None:
        """Show ahead/behind of the project's remote (as last seen), or nothing."""
        from labeldesk.core.remote.config import list_remotes
        from labeldesk.core.remote.sync import ahead_behind

        project = self.window_.project
        remotes = list_remotes(project) if project is not None else []
        enabled = bool(remotes) and self.job is None
        self.push_action.setEnabled(enabled)
        self.pull_action.setEnabled(enabled)
        if not remotes:
            self.label.setText("")
            return
        try:
            ab = ahead_behind(project, None)
        except Exception:  # several remotes and none named origin: nothing to show
            ab = None
        name = remotes[0].name if len(remotes) == 1 else "origin"
        self.label.setText(
            f"{name}: not synced yet" if ab is None else f"{name}: ↑{ab[0]} ↓{ab[1]}"
        )

    def _start(self, title: str, fn: Any, done: Any) -> None:
        project = self.window_.project
        if project is None or self.job is not None:
            return
        root, user = project.root, project.user

        def body(progress: Any, cancel: Any) -> Any:
            with Project.open(root, user=user) as p:
                return fn(p, lambda what, d, t: progress(d, t, what), cancel)

        self.job = StatusJob(self.window_, title, body)
        self.job.finished.connect(lambda value: self._finished(done, value))
        self.job.failed.connect(self._failed)
        self.refresh()

    def _finished(self, done: Any, value: Any) -> None:
        self.job = None
        done(value)
        self.window_.versions.refresh()
        self.refresh()

    def _failed(self, error: BaseException) -> None:
        from labeldesk.core.remote.merge import PullConflictError

        self.job = None
        self.refresh()
        if isinstance(error, PullConflictError):
            from .conflicts import ConflictDialog

            self.window_.versions.refresh()  # the fetch is kept
            dialog = ConflictDialog(self.window_, error.conflicts)
            dialog.accepted.connect(lambda: self.pull(dialog.resolutions()))
            self.conflict_dialog = dialog
            dialog.open()
            return
        self.window_.show_error(error)

    def push(self) -> None:
        from labeldesk.core.remote.sync import push

        def done(r: Any) -> None:
            sent = sum(r.sent.values())
            self.window_.statusBar().showMessage(
                f"Pushed to {r.remote}: {sent} item(s) sent"
                + (f", main is {r.main[:12]}" if r.moved else ", main already there"),
                10000,
            )

        self._start("Pushing", lambda p, progress, cancel: push(p, None, progress, cancel), done)

    def pull(self, resolutions: dict[str, Any] | None = None) -> None:
        from labeldesk.core.remote.merge import pull

        def done(r: Any) -> None:
            self.window_.statusBar().showMessage(
                f"Pulled from {r.fetched.remote}: {len(r.fetched.versions)} version(s); {r.action}",
                10000,
            )

        self._start(
            "Pulling",
            lambda p, progress, cancel: pull(
                p, None, resolutions=resolutions, progress=progress, cancel=cancel
            ),
            done,
        )
