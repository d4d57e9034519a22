"""The list of the session's images: a QListView that repaints an edited row in place.

QListView (list mode) lays out *every* row again after any ``dataChanged``
(``QListModeViewBase::dataChanged`` posts a full items layout), even when one row's text or
colour changed. With 100,000 images that is ~20 ms of GUI-thread time per edit. Here all items
have one size (``uniformItemSizes``), so an edit cannot move anything: the row is only
repainted, as ``QAbstractItemView`` does. Rows inserted, removed or re-filtered still lay out as
usual.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QAbstractItemView, QListView


class ImageListView(QListView):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setUniformItemSizes(True)  # what makes skipping the layout below safe

    def dataChanged(self, top_left: QModelIndex, bottom_right: QModelIndex, roles=()) -> None:
        QAbstractItemView.dataChanged(self, top_left, bottom_right, list(roles))
