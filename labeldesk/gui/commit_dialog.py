"""Ask for a version message; show what will be recorded with it."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout


class CommitDialog(QDialog):
    def __init__(self, parent, counts: dict[str, int], provenance: dict) -> None:
        super().__init__(parent)
        self.setWindowTitle("Commit version")
        lay = QVBoxLayout(self)
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        prov = ", ".join(f"{k}: {v}" for k, v in provenance.items() if v is not None)
        lay.addWidget(QLabel(f"<b>Images:</b> {summary}<br><b>Provenance:</b> {prov}"))
        lay.addWidget(QLabel("Message:"))
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText("What did this review change, and why?")
        lay.addWidget(self.text)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def message(self) -> str:
        return self.text.toPlainText().strip()

    def _accept(self) -> None:
        if self.message():
            self.accept()
        else:
            self.text.setFocus()
