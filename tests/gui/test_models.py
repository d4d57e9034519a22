"""The Qt item models, and the Qt binding they run on."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt

from labeldesk.core.boxes import Box
from labeldesk.gui.item_models import BoxTableModel


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


def _rows(n: int) -> list:
    from labeldesk.app.review import REVIEWED, TODO, ImageRow

    return [
        ImageRow(
            f"{i:064x}",
            f"img_{i:03d}.jpg",
            64,
            48,
            state=TODO if i % 3 else REVIEWED,
            min_score=0.1 * (i % 10) if i % 2 else None,
            classes=frozenset({i % 4}),
        )
        for i in range(n)
    ]


def test_the_image_list_filters_itself_and_follows_edits(qtbot, qtmodeltester) -> None:
    from PySide6.QtCore import QPersistentModelIndex
    from PySide6.QtWidgets import QListView

    from labeldesk.app.review import EDITED, TODO
    from labeldesk.gui.item_models import ImageListModel, RowRole, ViewCache

    rows = _rows(30)
    model = ImageListModel()
    cache = ViewCache(model)  # as the window shows it
    view = QListView()
    qtbot.addWidget(view)
    view.setModel(cache)
    model.set_rows(rows)
    assert model.rowCount() == 30

    def shown() -> list[int]:
        return [rows.index(model.index(i).data(RowRole)) for i in range(model.rowCount())]

    view.setCurrentIndex(cache.mapFromSource(model.view_index(5)))  # TODO, score 0.5, class 1
    current = QPersistentModelIndex(view.currentIndex())
    model.set_filter(state=TODO)
    assert shown() == [i for i in range(30) if i % 3]
    assert cache.rowCount() == model.rowCount() and view.currentIndex() == current
    assert model.source_row(current.row()) == 5  # still current
    model.set_filter(state=TODO, below=0.45, cls=1)
    assert shown() == [i for i in range(30) if i % 3 and i % 2 and (i % 10) < 4.5 and i % 4 == 1]
    assert not current.isValid() and not model.view_index(5).isValid()  # filtered out
    qtmodeltester.check(model)

    model.set_filter(state=TODO)
    rows[7].state = EDITED  # an edit takes a row out of "not reviewed" ...
    model.row_changed(7)
    assert 7 not in shown() and shown() == sorted(shown())
    assert cache.rowCount() == model.rowCount() == 19
    rows[7].state = TODO  # ... and undo puts it back in its place
    model.row_changed(7)
    assert shown() == [i for i in range(30) if i % 3]
    changed = []
    model.dataChanged.connect(lambda a, b, roles: changed.append((a.row(), b.row())))
    model.row_changed(8)  # still shown: repainted where it shows
    assert changed == [(model.view_index(8).row(),) * 2]
    model.set_filter()
    assert shown() == list(range(30)) and cache.rowCount() == 30
    qtmodeltester.check(model)
    qtmodeltester.check(cache)


def test_the_image_list_repaints_an_edited_row_without_laying_out_every_row(qtbot) -> None:
    from PySide6.QtWidgets import QListView

    from labeldesk.app.review import EDITED
    from labeldesk.gui.image_list import ImageListView
    from labeldesk.gui.item_models import ImageListModel, ViewCache

    def counting(base):
        class View(base):
            layouts = 0

            def doItemsLayout(self) -> None:
                type(self).layouts += 1
                super().doItemsLayout()

        return View

    results = {}
    for base in (QListView, ImageListView):
        rows = _rows(50)
        model = ImageListModel()
        view = counting(base)()
        qtbot.addWidget(view)
        view.setUniformItemSizes(True)
        view.setModel(ViewCache(model))
        view.resize(240, 400)
        view.show()
        model.set_rows(rows)
        qtbot.wait(20)
        before = view.viewport().grab().toImage()
        type(view).layouts = 0
        rows[0].state = EDITED  # the first row's mark and colour change
        model.row_changed(0)
        qtbot.wait(20)
        after = view.viewport().grab().toImage()
        results[base] = type(view).layouts
        assert after != before  # repainted either way
    assert results == {QListView: 1, ImageListView: 0}
