"""The help overlay: every shortcut, drawn over the window (F1 or ?)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from .shortcuts import EXTRA_HELP, SHORTCUTS


def help_html() -> str:
    groups: dict[str, list[tuple[str, str]]] = {}
    for sc in SHORTCUTS:
        groups.setdefault(sc.group, []).append((" / ".join(sc.keys), sc.text))
    for keys, text, group in EXTRA_HELP:
        groups.setdefault(group, []).append((keys, text))
    parts = ["<h2>Keyboard shortcuts</h2><table cellspacing=6>"]
    for group, rows in groups.items():
        parts.append(f"<tr><td colspan=2><b>{group}</b></td></tr>")
        for keys, text in rows:
            parts.append(f"<tr><td><code>{keys}</code></td><td>{text}</td></tr>")
    parts.append("</table><p>Press F1 or ? to close.</p>")
    return "".join(parts)


class HelpOverlay(QLabel):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setText(help_html())
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet(
            "QLabel { background: rgba(20, 20, 24, 225); color: #f1f3f4; font-size: 13px; }"
        )
        self.hide()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.setGeometry(self.parentWidget().rect())
            self.raise_()
            self.show()
