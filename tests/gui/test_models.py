"""The Qt item models, and the Qt binding they run on."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt

from labeldesk.core.boxes import Box
from labeldesk.gui.models import BoxTableModel


def test_binding_keeps_references_to_none(qtbot) -> None:
    """PySide6 6.12.0 dropped a reference to None for every data() that returned None and on
    every model reset; after enough of them a review session crashed Python (3.11, where None
    is not immortal). pyproject excludes it; this keeps any such binding out."""
    model = BoxTableModel()
    model.set_boxes([Box(1, 0, 0, 5, 5)], {1: "car"})
    index = model.index(0, 1)  # the score column: no score, so data() returns None
    before = sys.getrefcount(None)
    for _ in range(2000):
        index.data(Qt.ItemDataRole.DisplayRole)
        index.data(Qt.ItemDataRole.DecorationRole)
        model.set_boxes([Box(1, 0, 0, 5, 5)], {1: "car"})
    assert sys.getrefcount(None) >= before - 50  # some churn is fine; 6.12.0 lost ~6000
