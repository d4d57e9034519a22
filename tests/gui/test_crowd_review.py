"""Crowd regions in the real review window (offscreen): drawn apart, inert, not counted."""

from __future__ import annotations

import json

import pytest
from helpers import write_image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QBrush
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QGraphicsItem

from labeldesk.core.boxes import Box
from labeldesk.core.formats import import_coco
from labeldesk.core.store.project import Project


@pytest.fixture
def crowd_window(qtbot, tmp_path):
    """A COCO import whose first image holds one person and one crowd region of people."""
    from PySide6.QtCore import QSettings

    root = tmp_path / "coco"
    for name in ("a.png", "b.png"):
        write_image(root / "images" / name, seed=len(name) + ord(name[0]), size=(200, 150))
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 200, "height": 150},
            {"id": 2, "file_name": "b.png", "width": 200, "height": 150},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 60], "area": 1800.5},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [90, 40, 100, 100], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 20]},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    with Project.init(tmp_path / "project", user="lead-user") as p:
        import_coco(p, [root / "annotations.json"])

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(tmp_path / "project", user="lead-user")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=10000)
    yield w
    w.close()


def saved_edit(window, sha: str) -> list[Box]:
    window.writer.wait()
    with Project.open(window.project.root) as p:
        (text,) = p.db.execute(
            "SELECT boxes FROM session_edit WHERE session = ? AND image = ?",
            [window.ws.session.id, sha],
        ).fetchone()
    return [Box.from_dict(d) for d in json.loads(text)]


def test_crowd_region_is_drawn_apart_inert_and_not_counted(crowd_window, qtmodeltester) -> None:
    w = crowd_window
    canvas = w.canvas
    boxes = w.boxes_of(w.current)
    assert sorted(b.crowd for b in boxes) == [False, True]
    crowd_index = next(i for i, b in enumerate(boxes) if b.crowd)

    # the canvas: one ordinary box item, one hatched grey crowd item that takes no clicks
    assert [item.box.crowd for item in canvas.items_] == [False]
    (crowd,) = canvas.crowd_items
    assert crowd.rect().width() == 100 and crowd.pos() == QPointF(90, 40)
    assert crowd.brush().style() == Qt.BrushStyle.BDiagPattern
    assert not crowd.flags() & QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
    assert crowd.acceptedMouseButtons() == Qt.MouseButton.NoButton
    assert crowd.zValue() < canvas.items_[0].zValue()
    assert "crowd region" in crowd.toolTip()

    # the boxes table shows it, greyed, and it cannot be selected there
    model = w.box_model
    state = model.index(crowd_index, 3)
    assert model.data(state) == "crowd region"
    assert not model.flags(state) & Qt.ItemFlag.ItemIsSelectable
    assert isinstance(model.data(state, Qt.ItemDataRole.ForegroundRole), QBrush)
    qtmodeltester.check(model)

    # the image list counts object boxes only
    assert w.ws.rows[0].n_boxes == 1
    tip = w.image_model.data(w.image_model.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert "1 boxes" in tip

    # Tab cycles the ordinary box only; a click inside the crowd region selects nothing
    for _ in range(3):
        QTest.keyClick(canvas, Qt.Key.Key_Tab)
        assert canvas.selected_index() != crowd_index
    vp = canvas.viewport()
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(QPointF(150, 110)))
    assert canvas.selected_index() == -1
    assert w.undo_stack.count() == 0

    # an edit keeps the crowd region as imported and still does not count it
    QTest.keyClick(canvas, Qt.Key.Key_Space)  # accept all, move on
    saved = saved_edit(w, w.ws.rows[0].sha)
    assert [(b.crowd, b.x, b.y, b.w, b.h) for b in saved if b.crowd] == [(True, 90, 40, 100, 100)]
    assert next(b for b in saved if not b.crowd).area == 1800.5
    assert w.ws.rows[0].n_boxes == 1
