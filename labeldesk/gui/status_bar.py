"""A status bar whose temporary messages stay readable while jobs come and go.

QStatusBar hides its normal widgets while a message shows, but it does so by clearing their
explicit show/hide flag; every time a widget is added or removed it rebuilds its layout, and the
layout shows again every widget that is not explicitly hidden. A background job adds its
progress widget and removes it when done, so the window's status text came back *under* the
message, both drawn over each other. This subclass hides the normal widgets again once the
status bar has settled, while a message is up.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QStatusBar, QWidget


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._normal: list[QWidget] = []
        self._pending = False

    def addWidget(self, widget: QWidget, stretch: int = 0) -> None:
        self._normal.append(widget)
        super().addWidget(widget, stretch)

    def removeWidget(self, widget: QWidget) -> None:
        if widget in self._normal:
            self._normal.remove(widget)
        super().removeWidget(widget)

    def event(self, e: QEvent) -> bool:
        handled = super().event(e)
        if e.type() in (
            QEvent.Type.ChildAdded,
            QEvent.Type.ChildRemoved,
            QEvent.Type.LayoutRequest,
        ):
            self._schedule()
        return handled

    def _schedule(self) -> None:
        # After the layout's own queued "show if not hidden" calls, which were posted first.
        if not self._pending:
            self._pending = True
            # With self as the context the timer dies with the widget: a zero-delay call queued
            # just before the window closes must not reach a deleted C++ object.
            QTimer.singleShot(0, self, self._settle)

    def _settle(self) -> None:
        self._pending = False
        if not self.currentMessage():
            return
        for widget in self._normal:
            if widget.isVisible():
                widget.hide()
                # as QStatusBar does: hidden for the message, shown again when it is cleared
                widget.setAttribute(Qt.WidgetAttribute.WA_WState_ExplicitShowHide, False)
