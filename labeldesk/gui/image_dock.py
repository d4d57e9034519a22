"""The Images dock: the session's image list with its filters and sort order.

It owns the list's models (every image in :class:`ImageListModel`, the rows shown through a
:class:`ViewCache`) and keeps the list's current row and the image the canvas shows in step. It
knows nothing of the review itself: it says which image was chosen (``imageChosen``).
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QVBoxLayout,
    QWidget,
)

from labeldesk.app.review import CONFLICT, EDITED, REVIEWED, TODO

from .image_list import ImageListView
from .item_models import ImageListModel, RowRole, ViewCache


class ImageDock(QWidget):
    """Filters above the image list; ``imageChosen(sha)`` when the list's current row moves."""

    imageChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index: Mapping[str, int] = {}  # sha -> source row (the workspace's index)
        self.current: str | None = None  # the image the canvas shows
        self.image_model = ImageListModel(self)  # every image; shows those the filters pass
        self.image_rows = ViewCache(self.image_model, self)  # same rows, C++ indexes for the view
        self.image_list = ImageListView()
        self.image_list.setModel(self.image_rows)
        self.image_list.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.image_list.selectionModel().currentChanged.connect(self._current_changed)
        self.state_filter = QComboBox()
        self.state_filter.addItems(["all images", TODO, REVIEWED, EDITED, CONFLICT])
        self.state_filter.currentIndexChanged.connect(self.apply_filter)
        self.below_check = QCheckBox("pre-labels below")
        self.below_spin = QDoubleSpinBox()
        self.below_spin.setRange(0.0, 1.0)
        self.below_spin.setSingleStep(0.05)
        self.below_spin.setValue(0.5)
        self.below_check.toggled.connect(self.apply_filter)
        self.below_spin.valueChanged.connect(self.apply_filter)
        self.class_filter = QComboBox()
        self.class_filter.currentIndexChanged.connect(self.apply_filter)
        self.needs_review = QCheckBox("needs review")
        self.needs_review.setToolTip("Only images where the model and the labels disagree")
        self.needs_review.toggled.connect(self.apply_filter)
        self.sort_order = QComboBox()
        self.sort_order.addItems(["by name", "by priority"])
        self.sort_order.currentIndexChanged.connect(self.apply_sort)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.state_filter)
        row = QHBoxLayout()
        row.addWidget(self.below_check)
        row.addWidget(self.below_spin)
        lay.addLayout(row)
        lay.addWidget(self.class_filter)
        row = QHBoxLayout()
        row.addWidget(self.needs_review)
        row.addWidget(self.sort_order)
        lay.addLayout(row)
        lay.addWidget(self.image_list)

    # -- rows ----------------------------------------------------------------------------------
    def set_rows(self, rows: list, index: Mapping[str, int]) -> None:
        self.index = index
        self.image_model.set_rows(rows)

    def set_classes(self, classes: Mapping[int, str]) -> None:
        """The class filter's entries: any class, then one per class of the session."""
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("any class", None)
        for cid, name in sorted(classes.items()):
            self.class_filter.addItem(f"with {name}", cid)
        self.class_filter.blockSignals(False)

    def set_priorities(self, priorities: dict) -> None:
        """The review queue's ranking came: re-sort or re-filter by it as chosen."""
        self.image_model.set_priorities(priorities)
        if self.sort_order.currentIndex() == 1:
            self.apply_sort()
        elif self.needs_review.isChecked():
            self.keep_in_step()

    # -- filters and sort ------------------------------------------------------------------------
    def apply_filter(self) -> None:
        state = self.state_filter.currentText()
        self.image_model.set_filter(
            state=None if state == "all images" else state,
            below=self.below_spin.value() if self.below_check.isChecked() else None,
            cls=self.class_filter.currentData(),
            needs_review=self.needs_review.isChecked(),
        )
        self.keep_in_step()

    def apply_sort(self) -> None:
        by_priority = self.sort_order.currentIndex() == 1
        self.image_model.set_sort(self.image_model.priority_order() if by_priority else None)
        self.keep_in_step()

    # -- the current row -------------------------------------------------------------------------
    def show_row(self, source_row: int) -> None:
        """Select source row ``source_row`` in the list and show it, whatever the filters say
        (it is pinned: the list always holds the image the canvas shows)."""
        self.image_model.pin(source_row)
        shown = self.image_rows.mapFromSource(self.image_model.view_index(source_row))
        if shown.isValid():
            self.image_list.setCurrentIndex(shown)
            self.image_list.scrollTo(shown)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            row = current.data(RowRole)
            # Pin before anything moves: the image left behind may now leave the list, which
            # must not move the cursor again.
            self.image_model.pin(self.index.get(row.sha))
            self.imageChosen.emit(row.sha)

    def keep_in_step(self) -> None:
        """After a filter or sort change: the image shown is the list's current row."""
        if self.current not in self.index:
            return
        idx = self.image_list.currentIndex()
        if idx.isValid():
            self.image_model.pin(
                self.image_model.source_row(self.image_rows.mapToSource(idx).row())
            )
            self.image_list.scrollTo(idx)
            return
        row = self.image_model.nearest_row(self.index[self.current])
        if row >= 0:
            self.image_list.setCurrentIndex(self.image_rows.index(row, 0))

    def step(self, delta: int) -> None:
        """Move the list's current row by ``delta`` among the rows shown."""
        idx = self.image_list.currentIndex()
        n = self.image_rows.rowCount()
        if n == 0:
            return
        target = 0 if not idx.isValid() else max(0, min(n - 1, idx.row() + delta))
        self.image_list.setCurrentIndex(self.image_rows.index(target, 0))

    def neighbours(self, sha: str) -> list[str]:
        """The images after (and one before) ``sha`` in the list as shown, where Space goes."""
        model = self.image_model
        i, shown = model.place(self.index[sha])
        if not shown:
            return []
        rows, visible = model.rows, model.visible
        return [rows[visible[j]].sha for j in (i + 1, i + 2, i + 3, i - 1) if 0 <= j < len(visible)]
