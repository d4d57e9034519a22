"""Ask for a version message; show, in words, what will be recorded with it."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout

from labeldesk.app.review import CONFLICT
from labeldesk.app.words import plural


def counts_text(counts: dict[str, int]) -> str:
    """``3 not reviewed, 1 reviewed, 0 edited, 1 conflict``."""
    return ", ".join(
        plural(n, "conflict") if state == CONFLICT else f"{n} {state}"
        for state, n in counts.items()
    )


class CommitDialog(QDialog):
    """``provenance`` is what ``labeldesk.app.words.provenance_lines`` says of it."""

    def __init__(self, parent, counts: dict[str, int], provenance: list[tuple[str, str]]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Commit version")
        lay = QVBoxLayout(self)
        prov = "<br>".join(f"{escape(k)}: {escape(v)}" for k, v in provenance)
        self.summary = QLabel(
            f"<b>Images:</b> {escape(counts_text(counts))}<br><b>Provenance</b><br>{prov}"
        )
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        lay.addWidget(QLabel("Message (Ctrl+Enter commits):"))
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText("What did this review change, and why?")
        lay.addWidget(self.text)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        # Enter alone makes a new line of the message; with Ctrl it commits, as in the window.
        # Caught on the text box: it takes Ctrl+Return as a key (a new line) before any
        # QShortcut of the dialog sees it.
        self.text.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.text
            and event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride)
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            event.accept()  # an override accepted: the window's Ctrl+Return is not run too
            if event.type() == QEvent.Type.KeyPress:
                self._accept()
            return True
        return super().eventFilter(watched, event)

    def message(self) -> str:
        return self.text.toPlainText().strip()

    def _accept(self) -> None:
        if self.message():
            self.accept()
        else:
            self.text.setFocus()
