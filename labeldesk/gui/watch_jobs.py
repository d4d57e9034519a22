"""Watched models are evaluated on every version committed from the window.

Each commit queues its version; one status-bar job at a time runs
``app.validation.evaluate_watched`` on a jobs lane (a model's inference can take minutes and
must neither freeze the window nor hold up the writer that saves the next edits). When a
version is done the validation and versions panels refresh, and a regression is announced in
the status bar and in a notice that does not block the reviewer. Closing the project (or the
window) hands the versions not yet evaluated to a detached ``labeldesk validate --watched``
process (``app.validation.hand_over_watched``), which finishes them; predictions already
made are cached, so it picks up where the window stopped.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from labeldesk.app import state as S
from labeldesk.app import validation

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

    def __init__(self, state: S.ProjectState, ops: Any, parent: QWidget) -> None:
        super().__init__(parent)
        self.state, self.ops, self.parent_ = state, ops, parent
        self.queue: list[str] = []
        self.job: Any = None  # the running operation
        self.job_version: str | None = None  # the version it evaluates
        self.notice: QMessageBox | None = None
        self._generation = 0  # bumped on project close: late results are dropped

    def version_committed(self, version: Any) -> None:
        if not self._any_watched():
            return
        self.queue.append(version.id)
        self._next()

    def _any_watched(self) -> bool:
        """Whether any model is watched: a short read on the writer, which made the version."""
        if self.ops.lanes is None:
            return False
        names = self.ops.call(validation.watched_names, lane="writer")
        return bool(names)

    @property
    def busy(self) -> bool:
        return self.job is not None or bool(self.queue)

    def close_project(self) -> list[str]:
        """Cancel the running job (its thread stops at its next check) and hand it and the
        queue to background processes; returns the versions handed over."""
        self._generation += 1
        unfinished = ([self.job_version] if self.job is not None else []) + self.queue
        self.queue.clear()
        if self.job is not None:
            self.job.cancel()
            self.job = self.job_version = None
        if self.ops.lanes is None or not unfinished:
            return []
        # on the writer, which is finished with the commits before the window closes it
        return self.ops.call(lambda p: validation.hand_over_watched(p, unfinished), lane="writer")

    def _next(self) -> None:
        if self.job is not None or not self.queue or self.ops.lanes is None:
            return
        version = self.queue.pop(0)
        generation = self._generation
        job = self.ops.run(
            self.parent_,
            lambda p, progress, cancel: validation.evaluate_watched(p, version, progress, cancel),
            lane="jobs",  # a model's inference can take minutes
            progress="status",
            title=f"Evaluating watched models on {version[:12]}",
            on_error=lambda _e: None,  # shown by _failed
        )
        job.finished.connect(lambda changed: self._done(generation, job, version, changed))
        job.failed.connect(lambda error: self._failed(generation, job, error))
        self.job, self.job_version = job, version

    def _finish(self, job) -> None:
        if self.job is job:
            self.job = self.job_version = None
        job.deleteLater()

    def _done(self, generation: int, job, version: str, changed: Any) -> None:
        self._finish(job)
        if generation != self._generation:
            return
        results = changed.report
        self.announce(version, results)
        self.state.apply(changed)  # the validation and versions panels refresh
        self.evaluated.emit(version, results)
        self._next()

    def _failed(self, generation: int, job, error: BaseException) -> None:
        self._finish(job)
        if generation != self._generation:
            return
        from .operations import show_error

        show_error(self.parent_, "LabelDesk", error)  # a cancel shows nothing
        self._next()

    def announce(self, version: str, results: list) -> None:
        """Status-bar summary; regressions also in a notice that does not block the window."""
        regressions = [r for r in results if r.regression]
        errors = [r for r in results if r.error is not None]
        bar = self.parent_.window().statusBar()
        if regressions:
            bar.showMessage("Regression: " + "; ".join(map(regression_text, regressions)), 0)
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Watched model regression",
                f"A watched model did worse on version {version[:12]} than on its previous "
                "evaluation:",
                QMessageBox.StandardButton.Ok,
                self.parent_.window(),
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
