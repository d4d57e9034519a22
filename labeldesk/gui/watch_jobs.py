"""Watched models are evaluated on every version committed from the window.

Each commit queues its version; one status-bar job at a time runs
``core.watch.evaluate_watched`` on its own connection (a model's inference can take minutes and
must neither freeze the window nor hold up the writer that saves the next edits). When a
version is done the validation and versions panels refresh, and a regression is announced in
the status bar and in a notice that does not block the reviewer. Closing the project (or the
window) hands the versions not yet evaluated to a detached ``labeldesk validate --watched``
process (``app.background``), which finishes them; predictions already made are cached, so it
picks up where the window stopped.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox

from labeldesk.core.store.project import Project

from .validation_data import METRIC_LABELS

_MESSAGE_MS = 30000


def regression_text(result: Any) -> str:
    """One line naming the model, the metric, the value and the drop of a regression."""
    e = result.evaluation
    metric = METRIC_LABELS.get(e.metric, e.metric)
    previous = f" on {result.baseline_version[:12]}" if result.baseline_version else ""
    return (
        f"{result.model.name}: {metric} {e.value:.4f} on {e.version[:12]}, down "
        f"{e.metric_drop:.4f} from {e.baseline_value:.4f}{previous} (limit {e.max_drop:.4f})"
    )


class WatchedEvaluations(QObject):
    """Runs the watched models on committed versions, one version at a time, in order."""

    #: (version id, list of core.watch.WatchResult) after each version
    evaluated = Signal(str, list)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window_ = window
        self.queue: list[str] = []
        self.job: Any = None  # the running jobs.StatusJob
        self.job_version: str | None = None  # the version it evaluates
        self.notice: QMessageBox | None = None
        self._generation = 0  # bumped on project close: late results are dropped

    def version_committed(self, version: Any) -> None:
        from labeldesk.core.validation.watch import watched

        project = self.window_.project
        if project is None or not watched(project.db):
            return
        self.queue.append(version.id)
        self._next()

    @property
    def busy(self) -> bool:
        return self.job is not None or bool(self.queue)

    def close_project(self) -> list[str]:
        """Cancel the running job (its thread stops at its next check) and hand it and the
        queue to background processes; returns the versions handed over."""
        from labeldesk.app.background import evaluate_watched_later
        from labeldesk.core.store.versions import get_version

        self._generation += 1
        unfinished = ([self.job_version] if self.job is not None else []) + self.queue
        self.queue.clear()
        if self.job is not None:
            self.job.cancel()
            self.job = self.job_version = None
        project = self.window_.project
        if project is None:
            return []
        return [
            vid
            for vid in unfinished
            if evaluate_watched_later(project, get_version(project.db, vid)) is not None
        ]

    def _next(self) -> None:
        from .jobs import StatusJob

        project = self.window_.project
        if self.job is not None or not self.queue or project is None:
            return
        version = self.queue.pop(0)
        root, user = project.root, project.user
        generation = self._generation

        def work(progress, cancel):
            from labeldesk.core.validation.watch import evaluate_watched

            with Project.open(root, user=user) as p:
                return evaluate_watched(p, version, progress=progress, cancel=cancel)

        job = StatusJob(self.window_, f"Evaluating watched models on {version[:12]}", work)
        job.finished.connect(lambda results: self._done(generation, job, version, results))
        job.failed.connect(lambda error: self._failed(generation, job, error))
        self.job, self.job_version = job, version

    def _finish(self, job) -> None:
        if self.job is job:
            self.job = self.job_version = None
        job.deleteLater()

    def _done(self, generation: int, job, version: str, results: list) -> None:
        self._finish(job)
        if generation != self._generation:
            return
        self.announce(version, results)
        self.window_.validation.refresh()
        self.window_.versions.refresh()
        self.evaluated.emit(version, results)
        self._next()

    def _failed(self, generation: int, job, error: BaseException) -> None:
        self._finish(job)
        if generation != self._generation:
            return
        self.window_.show_error(error)  # a cancel shows nothing
        self._next()

    def announce(self, version: str, results: list) -> None:
        """Status-bar summary; regressions also in a notice that does not block the window."""
        regressions = [r for r in results if r.regression]
        errors = [r for r in results if r.error is not None]
        bar = self.window_.statusBar()
        if regressions:
            bar.showMessage("Regression: " + "; ".join(map(regression_text, regressions)), 0)
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Watched model regression",
                f"A watched model did worse on version {version[:12]} than on its previous "
                "evaluation:",
                QMessageBox.StandardButton.Ok,
                self.window_,
            )
            box.setInformativeText("\n".join(f"• {regression_text(r)}" for r in regressions))
            box.setDetailedText("\n".join(r.line() for r in results))
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.show()
            self.notice = box
        elif errors:
            bar.showMessage("; ".join(r.line() for r in errors), _MESSAGE_MS)
        else:
            bar.showMessage(
                f"Watched models on {version[:12]}: " + "; ".join(r.line() for r in results),
                _MESSAGE_MS,
            )
