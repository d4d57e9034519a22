"""Choose, image by image, between main's labels and the session's when both changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from labeldesk.app import versions as V
from labeldesk.core.boxes import live_boxes

if TYPE_CHECKING:
    from labeldesk.core.errors import Conflict

from .canvas import Canvas
from .loader import SCREEN_SIDE, decode


class ConflictDialog(QDialog):
    def __init__(self, window, conflicts: list[Conflict]) -> None:
        super().__init__(window)
        self.window_ = window
        self.conflicts = conflicts
        self.choice: dict[str, str] = {c.image: "ours" for c in conflicts}
        self.setWindowTitle(f"{len(conflicts)} image(s) changed on main meanwhile")
        self.resize(1300, 750)
        self.list = QListWidget()
        for c in conflicts:
            self.list.addItem(c.image[:12])
        self.theirs = Canvas(editable=False)
        self.ours = Canvas(editable=False)
        self.pick_theirs = QRadioButton("keep main's labels (theirs)")
        self.pick_ours = QRadioButton("keep my labels (ours)")
        group = QButtonGroup(self)
        group.addButton(self.pick_theirs)
        group.addButton(self.pick_ours)
        self.pick_theirs.toggled.connect(self._picked)
        panes = QHBoxLayout()
        panes.addWidget(self.list, 1)
        for title, canvas in (("main (theirs)", self.theirs), ("this session (ours)", self.ours)):
            col = QWidget()
            lay = QVBoxLayout(col)
            lay.addWidget(QLabel(title))
            lay.addWidget(canvas)
            panes.addWidget(col, 3)
        lay = QVBoxLayout(self)
        lay.addWidget(
            QLabel(
                "Someone committed changes to these images after your session "
                "began. Choose which labels to keep for each image."
            )
        )
        lay.addLayout(panes, 1)
        row = QHBoxLayout()
        row.addWidget(self.pick_theirs)
        row.addWidget(self.pick_ours)
        lay.addLayout(row)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.list.currentRowChanged.connect(self._show)
        self.list.setCurrentRow(0)

    def _show(self, i: int) -> None:
        if not 0 <= i < len(self.conflicts):
            return
        c = self.conflicts[i]
        project = self.window_.project
        size = V.image_size(project, c.image)  # small reads, for the one image shown
        image = decode(V.object_path(project, c.image), SCREEN_SIDE)
        names = self.window_.ws.classes
        theirs = V.annotation_boxes(project, c.theirs)
        # Ours is not stored yet (the refused commit was rolled back): take the session's edit.
        ours = live_boxes(self.window_.boxes_of(c.image))
        for canvas, boxes in ((self.theirs, theirs), (self.ours, ours)):
            canvas.set_image(image, (size[0], size[1]))
            canvas.set_boxes(boxes, names)
        (self.pick_theirs if self.choice[c.image] == "theirs" else self.pick_ours).setChecked(True)

    def _picked(self) -> None:
        i = self.list.currentRow()
        if 0 <= i < len(self.conflicts):
            self.choice[self.conflicts[i].image] = (
                "theirs" if self.pick_theirs.isChecked() else "ours"
            )

    def resolutions(self) -> dict[str, str]:
        return dict(self.choice)
