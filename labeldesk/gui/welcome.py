"""The first screen when no project is open."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget


class WelcomeWidget(QWidget):
    def __init__(self, window) -> None:
        super().__init__(window)
        lay = QVBoxLayout(self)
        lay.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel(
            "<h1>LabelDesk</h1><p>Pre-label, review, version and validate your "
            "computer-vision datasets.</p>"
        )
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(title)
        for text, slot in (
            ("New project…", window.new_project_dialog),
            ("Open project…", window.open_project_dialog),
            ("Open the demo project", window.open_demo),
        ):
            button = QPushButton(text)
            button.setMinimumWidth(260)
            button.clicked.connect(slot)
            lay.addWidget(button, alignment=Qt.AlignmentFlag.AlignCenter)
        last = window.settings.value("last_project")
        if last and (Path(str(last)) / "labeldesk.db").exists():
            button = QPushButton(f"Reopen {last}")
            button.clicked.connect(lambda: window.open_project(Path(str(last))))
            lay.addWidget(button, alignment=Qt.AlignmentFlag.AlignCenter)
