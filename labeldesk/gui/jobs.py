"""Long jobs with a progress dialog and a Cancel button; the GUI keeps running meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

from labeldesk.core.errors import CancelledError, LabelDeskError


class _Bridge(QObject):
    progress = Signal(int, int, str)
    done = Signal(object)
    failed = Signal(object)


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
    bridge = _Bridge(parent)
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
        if isinstance(error, CancelledError):
            return
        text = str(error)
        if not isinstance(error, LabelDeskError):
            text = f"{type(error).__name__}: {error}"
        QMessageBox.warning(parent, title, text)

    bridge.progress.connect(show_progress)
    bridge.done.connect(finished)
    bridge.failed.connect(failed)

    def body() -> None:
        try:
            value = fn(lambda d, t, w: bridge.progress.emit(d, t, w), cancelled.is_set)
        except BaseException as e:
            bridge.failed.emit(e)
        else:
            bridge.done.emit(value)

    thread = threading.Thread(target=body, name=f"job: {title}", daemon=True)
    thread.start()
    return thread
