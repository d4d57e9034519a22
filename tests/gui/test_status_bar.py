"""The status bar's deferred re-hide must never outlive the widget."""

from __future__ import annotations

import shiboken6
from PySide6.QtWidgets import QLabel

from labeldesk.gui.status_bar import StatusBar


def test_a_settle_queued_before_the_bar_is_deleted_never_runs(qtbot) -> None:
    bar = StatusBar()
    bar.addWidget(QLabel("status"))  # queues a zero-delay settle
    bar.showMessage("message")
    assert bar._pending
    # The window closes before the event loop runs the queued call (as on a loaded machine).
    shiboken6.delete(bar)
    # Had the call been queued without the widget as its context, it would run now on a
    # deleted C++ object and raise; pytest-qt fails the test on an exception in the loop.
    qtbot.wait(50)
