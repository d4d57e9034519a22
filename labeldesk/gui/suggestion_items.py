"""Suggestions drawn on the canvas: where the model disagrees with the labels of an image.

Each kind has its own line style, so the reviewer tells them apart at a glance: *possibly
missing* dotted (the model's box), *possibly wrong class* dash-dot (the model's box, in the
model's class colour), *loose box* dash-dot-dot (the model's tighter box), *possibly spurious*
a red cross over the label. They are items the window adds to the canvas's scene above the
boxes; selecting one and pressing A accepts it, X dismisses it (``labeldesk.app.rules``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QStyleOptionGraphicsItem,
)

from labeldesk.app.words import suggestion_words

if TYPE_CHECKING:
    from labeldesk.core.review.suggestions import Suggestion

from .colors import class_color, halo_color, text_color

STYLES = {
    "missing": Qt.PenStyle.DotLine,
    "wrong_class": Qt.PenStyle.DashDotLine,
    "loose": Qt.PenStyle.DashDotDotLine,
    "spurious": Qt.PenStyle.SolidLine,
}
SPURIOUS_COLOR = QColor("#ea4335")


class SuggestionItem(QGraphicsRectItem):
    """One suggestion; ``index`` is its place in the window's list of the image's suggestions."""

    def __init__(self, index: int, s: Suggestion, names: dict[int, str]) -> None:
        box = s.prediction if s.prediction is not None else s.label_box
        assert box is not None
        super().__init__(QRectF(0, 0, box.w, box.h))
        self.index, self.suggestion, self.kind = index, s, s.kind
        self.setPos(box.x, box.y)
        self.setZValue(15)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        color = SPURIOUS_COLOR if s.kind == "spurious" else class_color(s.cls)
        pen = QPen(color, 2, STYLES[s.kind])
        pen.setCosmetic(True)
        self.setPen(pen)
        self.halo = QPen(halo_color(color), 4)
        self.halo.setCosmetic(True)
        name = names.get(s.cls, f"class {s.cls}")
        chip = QGraphicsRectItem(self)
        chip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        chip.setBrush(QBrush(color))
        chip.setPen(QPen(Qt.PenStyle.NoPen))
        self.text = f"? {suggestion_words()[s.kind]}: {name} {s.score:.2f}"
        label = QGraphicsSimpleTextItem(self.text, chip)
        font = QFont()
        font.setPointSizeF(8.5)
        font.setBold(True)
        label.setFont(font)
        label.setBrush(QBrush(text_color(color)))
        bounds = label.boundingRect()
        chip.setRect(QRectF(0, 0, bounds.width() + 6, bounds.height() + 2))
        label.setPos(3, 1)
        self.chip = chip
        self.label_rect = QRectF()  # in view pixels, set by Canvas.place_labels

    def scene_rect(self) -> QRectF:
        return self.mapRectToScene(self.rect())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        r = self.rect()
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(self.halo if not self.isSelected() else QPen(QColor("#ffffff"), 5))
        painter.drawRect(r)
        painter.setPen(self.pen())
        painter.drawRect(r)
        if self.kind == "spurious":
            painter.drawLine(r.topLeft(), r.bottomRight())
            painter.drawLine(r.topRight(), r.bottomLeft())


class MatchedItem(QGraphicsRectItem):
    """A prediction that agrees with a label: faint, not selectable (shown on a toggle)."""

    kind = "matched"
    suggestion = None

    def __init__(self, box) -> None:
        super().__init__(QRectF(0, 0, box.w, box.h))
        self.box = box
        self.setPos(box.x, box.y)
        self.setZValue(4)
        color = QColor(class_color(box.cls))
        color.setAlpha(110)
        pen = QPen(color, 1, Qt.PenStyle.DotLine)
        pen.setCosmetic(True)
        self.setPen(pen)
