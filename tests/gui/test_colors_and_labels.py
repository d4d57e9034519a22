"""Readable on real photos: distinct class colours, outlines that show on white and on black,
labels that are neither cut off at the top edge nor hidden under each other."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from labeldesk.core.boxes import Box
from labeldesk.gui.colors import class_rgb, delta_e, palette_rgb, relative_luminance


def test_eighty_classes_neighbours_are_clearly_different() -> None:
    colours = [class_rgb(c) for c in range(1, 81)]
    neighbours = min(delta_e(a, b) for a, b in itertools.pairwise(colours))
    assert neighbours > 40  # CIELAB ΔE; 2.3 is just noticeable
    assert len(set(colours)) == 80
    assert min(delta_e(a, b) for a, b in itertools.combinations(colours, 2)) > 5


def test_classes_added_in_a_session_get_their_own_colour() -> None:
    first = [class_rgb(c) for c in range(1, 21)]
    for provisional in (-1, -2, -3):
        rgb = class_rgb(provisional)
        assert rgb != (255, 255, 255)
        assert min(delta_e(rgb, c) for c in first) > 15
    assert len({class_rgb(c) for c in (-1, -2, -3)}) == 3


def test_the_walk_is_fixed() -> None:
    # a class keeps its colour from one release to the next: reviewers learn them
    assert palette_rgb(0) == class_rgb(1)
    assert class_rgb(1) == palette_rgb(0) and class_rgb(2) != class_rgb(1)


@pytest.fixture
def canvas(qtbot):
    from labeldesk.gui.canvas import Canvas

    c = Canvas()
    c.resize(420, 340)
    qtbot.addWidget(c)
    c.show()
    qtbot.waitExposed(c)
    return c


def render(canvas) -> QImage:
    return canvas.viewport().grab().toImage()


@pytest.mark.parametrize("background", ["#ffffff", "#000000"])
@pytest.mark.parametrize("cls", [1, 3, 6, -1])
def test_outlines_show_on_white_and_on_black(canvas, background, cls) -> None:
    image = QImage(200, 150, QImage.Format.Format_RGB32)
    image.fill(QColor(background))
    canvas.set_image(image, (200, 150))
    canvas.set_boxes([Box(cls, 50, 50, 100, 60, origin="human", state="added")], {cls: "x"})
    shot = render(canvas)
    bg = QColor(background)
    # along a horizontal line crossing the left edge of the box, some pixel stands out from the
    # background by a WCAG contrast of at least 3:1
    left = canvas.mapFromScene(50, 80)
    best = 1.0
    for dx in range(-6, 7):
        px = shot.pixelColor(left.x() + dx, left.y())
        lighter = max(relative_luminance(px), relative_luminance(bg))
        darker = min(relative_luminance(px), relative_luminance(bg))
        best = max(best, (lighter + 0.05) / (darker + 0.05))
    assert best >= 3.0


def test_a_label_at_the_top_edge_is_drawn_inside_the_box(canvas) -> None:
    image = QImage(200, 150, QImage.Format.Format_RGB32)
    image.fill(QColor("#808080"))
    canvas.set_image(image, (200, 150))
    canvas.set_boxes(
        [
            Box(1, 20, 0, 60, 40, origin="human", state="added"),
            Box(2, 110, 80, 60, 40, origin="human", state="added"),
        ],
        {1: "car", 2: "bus"},
    )
    top, lower = canvas.items_
    image_top = canvas.mapFromScene(0, 0).y()
    box_top = canvas.mapFromScene(20, 0).y()
    assert top.label_rect.top() >= max(0, image_top)
    assert top.label_rect.top() >= box_top - 1  # inside the box, not above the image
    # a box away from the edge keeps its label above it
    assert lower.label_rect.bottom() <= canvas.mapFromScene(110, 80).y() + 1
    # and the label is really painted there, in the class colour
    shot = render(canvas)
    r = top.label_rect
    px = shot.pixelColor(int(r.left()) + 2, int(r.top()) + 2)
    want = top.chip.brush().color()
    assert abs(px.red() - want.red()) + abs(px.green() - want.green()) < 30


def test_overlapping_labels_do_not_hide_each_other(canvas) -> None:
    image = QImage(200, 150, QImage.Format.Format_RGB32)
    image.fill(QColor("#808080"))
    canvas.set_image(image, (200, 150))
    boxes = [
        Box(1, 40, 60, 80, 50, origin="model", state="pending", score=0.9),
        Box(2, 42, 61, 70, 40, origin="model", state="pending", score=0.5),
        Box(3, 44, 60, 60, 30, origin="human", state="added"),
    ]
    canvas.set_boxes(boxes, {1: "car", 2: "bus", 3: "person"})
    rects = [it.label_rect for it in canvas.items_]
    assert all(not a.intersects(b) for a, b in itertools.combinations(rects, 2))
    canvas.zoom(2.0)  # placement follows the zoom
    rects = [it.label_rect for it in canvas.items_]
    assert all(not a.intersects(b) for a, b in itertools.combinations(rects, 2))


def test_a_class_added_in_the_window_has_a_swatch_a_key_and_readable_text(window) -> None:
    cid = window.add_class("truck")
    row = [c for c, _ in window.class_model.classes].index(cid)
    idx = window.class_model.index(row)
    assert idx.data(Qt.ItemDataRole.DisplayRole).startswith(f"[{row + 1}] ")
    swatch = idx.data(Qt.ItemDataRole.DecorationRole)
    assert swatch.name() != "#ffffff"
    assert swatch.name() not in {
        window.class_model.index(i).data(Qt.ItemDataRole.DecorationRole).name() for i in range(row)
    }
    # in the boxes table: a swatch, and the name in the table's own text colour
    window.set_class_key(row + 1)
    from PySide6.QtCore import QRectF

    window._box_drawn(QRectF(10, 10, 30, 30))
    table = window.box_model
    last = table.index(table.rowCount() - 1, 0)
    assert last.data() == "truck"
    assert last.data(Qt.ItemDataRole.ForegroundRole) is None
    assert last.data(Qt.ItemDataRole.DecorationRole).name() == swatch.name()
