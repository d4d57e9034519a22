"""Long jobs with a progress dialog and a Cancel button; the GUI keeps running meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

from labeldesk.core.errors import CancelledError, InputError, LabelDeskError


def show_error(parent: QWidget, title: str, error: BaseException) -> None:
    """An error as the user should see it: the reason, and for bad input every problem."""
    if isinstance(error, CancelledError):
        return
    box = QMessageBox(QMessageBox.Icon.Warning, title, str(error), parent=parent)
    if isinstance(error, InputError):
        box.setText(error.summary)
        box.setInformativeText(f"{len(error.problems)} problem(s); nothing was changed.")
        box.setDetailedText("\n".join(str(p) for p in error.problems))
    elif not isinstance(error, LabelDeskError):
        box.setText(f"{type(error).__name__}: {error}")
    box.open()
    parent.last_message = box  # keep it alive (and reachable for tests)


class Bridge(QObject):
    """Carries a job's results to the GUI thread; values are boxed in a tuple (see tasks.py).

    ``progress`` is (done, total, what); ``event`` carries any other report, boxed."""

    progress = Signal(int, int, str)
    event = Signal(tuple)
    done = Signal(tuple)
    failed = Signal(tuple)


def start_thread(name: str, body: Callable[[], Any], bridge: Bridge) -> threading.Thread:
    """Run ``body`` on a daemon thread; its value or its exception reaches the GUI thread
    through ``bridge.done`` / ``bridge.failed`` (each boxed in a tuple)."""

    def run() -> None:
        try:
            value = body()
        except BaseException as e:
            bridge.failed.emit((e,))
        else:
            bridge.done.emit((value,))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def run_job(
    parent: QWidget,
    title: str,
    fn: Callable[[Callable, Callable], Any],
    on_done: Callable[[Any], None] | None = None,
) -> threading.Thread:
    """Run ``fn(progress, cancel)`` on a thread, showing progress; ``on_done`` on success."""
    dialog = QProgressDialog(title, "Cancel", 0, 0, parent)
    dialog.setWindowTitle(title)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    bridge = Bridge(parent)
    cancelled = threading.Event()
    dialog.canceled.connect(cancelled.set)

    def show_progress(done: int, total: int, what: str) -> None:
        dialog.setMaximum(max(total, 1))
        dialog.setValue(min(done, max(total, 1)))
        dialog.setLabelText(f"{what}: {done}/{total}")

    def finished(value: Any) -> None:
        dialog.reset()
        if on_done is not None:
            on_done(value)

    def failed(error: BaseException) -> None:
        dialog.reset()
        show_error(parent, title, error)

    bridge.progress.connect(show_progress)
    bridge.done.connect(lambda boxed: finished(boxed[0]))
    bridge.failed.connect(lambda boxed: failed(boxed[0]))

    return start_thread(
        f"job: {title}",
        lambda: fn(lambda d, t, w: bridge.progress.emit(d, t, w), cancelled.is_set),
        bridge,
    )


class StatusJob(QObject):
    """A long job shown as a bar with a Cancel button in the status bar, not a dialog.

    Used where the user should keep working meanwhile (pre-labelling while reviewing).
    """

    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, window, title: str, fn: Callable[[Callable, Callable], Any]) -> None:
        super().__init__(window)
        from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton

        self.title = title
        self.cancelled = threading.Event()
        self.widget = QWidget()
        lay = QHBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.bar.setRange(0, 0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.clicked.connect(self.cancel)
        for w in (self.label, self.bar, self.cancel_button):
            lay.addWidget(w)
        window.statusBar().addPermanentWidget(self.widget)
        self._bridge = Bridge(self)
        self._bridge.progress.connect(self._progress)
        self._bridge.done.connect(lambda boxed: self._done(boxed[0]))
        self._bridge.failed.connect(lambda boxed: self._failed(boxed[0]))

        self.thread = start_thread(
            f"job: {title}",
            lambda: fn(lambda d, t, w: self._bridge.progress.emit(d, t, w), self.cancelled.is_set),
            self._bridge,
        )

    def cancel(self) -> None:
        self.cancelled.set()
        self.label.setText(f"{self.title}: cancelling…")

    def _progress(self, done: int, total: int, what: str) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, max(total, 1)))
        self.label.setText(f"{what}: {done}/{total}")

    def _close(self) -> None:
        self.widget.setParent(None)
        self.widget.deleteLater()

    def _done(self, value: Any) -> None:
        self._close()
        self.finished.emit(value)

    def _failed(self, error: BaseException) -> None:
        self._close()
        self.failed.emit(error)
