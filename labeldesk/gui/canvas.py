"""The image canvas: an upright image with its boxes, zoom and pan, move, resize and draw.

The canvas never writes anything itself. A finished gesture (one drag, one resize, one drawn box)
is reported once, on mouse release, through ``boxEdited``/``boxDrawn``; the window turns it into
one undo step and one saved edit. Pre-labels are drawn dashed with their score; accepted and
human boxes solid; the colour is the class's, over a contrasting halo so the outline shows on
white and on black. Labels sit above their box, inside it at the image's top edge, and lower
down where they would cover another label (:meth:`Canvas.place_labels`). COCO crowd regions are
not object boxes: they are drawn grey and hatched under the boxes (:func:`crowd_item`), cannot
be selected, moved or cycled to, and are not counted.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from labeldesk.core.boxes import Box

from .colors import class_color, halo_color, text_color

HANDLE_PX = 7  # handle size on screen, whatever the zoom
CROWD_COLOR = QColor("#9aa0a6")


def crowd_item(box: Box, label: str) -> QGraphicsRectItem:
    """A crowd region (COCO ``iscrowd`` 1): a grey, hatched, inert rectangle.

    Inert on purpose: a crowd region marks where a group was not labelled one by one, so it
    is kept as imported (evaluation ignores detections on it) and never edited as a box.
    """
    item = QGraphicsRectItem(QRectF(0, 0, box.w, box.h))
    item.setPos(box.x, box.y)
    item.setZValue(2)  # under every box, so it never hides one
    pen = QPen(CROWD_COLOR, 1, Qt.PenStyle.DashDotLine)
    pen.setCosmetic(True)
    item.setPen(pen)
    item.setBrush(QBrush(CROWD_COLOR, Qt.BrushStyle.BDiagPattern))
    item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
    item.setToolTip(f"crowd region: {label} (not an object box; not counted)")
    return item


class BoxItem(QGraphicsRectItem):
    """One box. Knows its index in the image's box list; geometry is in image pixels."""

    def __init__(self, index: int, box: Box, label: str, canvas: Canvas) -> None:
        super().__init__(QRectF(0, 0, box.w, box.h))
        self.index = index
        self.box = box
        self.canvas = canvas
        self.setPos(box.x, box.y)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setAcceptHoverEvents(True)
        self.setZValue(10 if box.state != "pending" else 5)
        color = class_color(box.cls)
        pen = QPen(color, 2)
        pen.setCosmetic(True)
        if box.state == "pending":
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        fill = QColor(color)
        fill.setAlpha(28 if box.state != "pending" else 0)
        self.setBrush(QBrush(fill))
        self.halo = QPen(halo_color(color), 4)
        self.halo.setCosmetic(True)
        text = label if box.score is None else f"{label} {box.score:.2f}"
        # The tag sits on a filled chip above the box, readable over any photo at any zoom.
        self.chip = QGraphicsRectItem(self)
        self.chip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.chip.setBrush(QBrush(color))
        edge = QPen(halo_color(color), 1)
        edge.setCosmetic(True)
        self.chip.setPen(edge)
        self.label = QGraphicsSimpleTextItem(text, self.chip)
        self.label.setBrush(QBrush(text_color(color)))
        font = QFont()
        font.setPointSizeF(8.5)
        font.setBold(True)
        self.label.setFont(font)
        bounds = self.label.boundingRect()
        self.chip.setRect(QRectF(0, 0, bounds.width() + 6, bounds.height() + 2))
        self.label.setPos(3, 1)
        self.chip.setPos(0, 0)
        self.chip.setTransform(QTransform.fromTranslate(0, -(bounds.height() + 2)))
        self.label_rect = QRectF()  # where the label shows, in view pixels (place_labels)
        self._drag: str | None = None
        self._press_scene = QPointF()
        self._press_rect = QRectF()

    # -- geometry ----------------------------------------------------------------------------
    def scene_rect(self) -> QRectF:
        return self.mapRectToScene(self.rect())

    def _handle_at(self, pos: QPointF) -> str | None:
        """Which edge/corner of the box is under ``pos`` (item coords), if any."""
        scale = self.canvas.transform().m11() or 1.0
        tol = HANDLE_PX / scale
        r = self.rect()
        left, right = abs(pos.x() - r.left()) <= tol, abs(pos.x() - r.right()) <= tol
        top, bottom = abs(pos.y() - r.top()) <= tol, abs(pos.y() - r.bottom()) <= tol
        edge = ("t" if top else "b" if bottom else "") + ("l" if left else "r" if right else "")
        return edge or None

    def zoom_will_change(self) -> None:
        """Tell the scene that :meth:`boundingRect` is about to change (it depends on the zoom).

        Qt requires this before an item's bounds change; without it the scene keeps the old
        bounds, which is undefined behaviour (stale repaints at best)."""
        self.prepareGeometryChange()

    def boundingRect(self) -> QRectF:
        # The halo and the handles reach a few screen pixels outside the box at any zoom.
        m = (HANDLE_PX + 2) / (self.canvas.transform().m11() or 1.0)
        return self.rect().adjusted(-m, -m, m, m)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        painter.setPen(self.halo)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(self.rect())
        super().paint(painter, option, widget)
        if self.isSelected():
            scale = self.canvas.transform().m11() or 1.0
            s = HANDLE_PX / scale
            r = self.rect()
            painter.setBrush(QBrush(Qt.GlobalColor.white))
            pen = QPen(Qt.GlobalColor.black, 1)
            pen.setCosmetic(True)
            painter.setPen(pen)
            for x in (r.left(), r.center().x(), r.right()):
                for y in (r.top(), r.center().y(), r.bottom()):
                    if (x, y) != (r.center().x(), r.center().y()):
                        painter.drawRect(QRectF(x - s / 2, y - s / 2, s, s))

    # -- mouse -------------------------------------------------------------------------------
    def hoverMoveEvent(self, event) -> None:
        edge = self._handle_at(event.pos()) if self.isSelected() else None
        cursors = {
            "t": Qt.CursorShape.SizeVerCursor,
            "b": Qt.CursorShape.SizeVerCursor,
            "l": Qt.CursorShape.SizeHorCursor,
            "r": Qt.CursorShape.SizeHorCursor,
            "tl": Qt.CursorShape.SizeFDiagCursor,
            "br": Qt.CursorShape.SizeFDiagCursor,
            "tr": Qt.CursorShape.SizeBDiagCursor,
            "bl": Qt.CursorShape.SizeBDiagCursor,
        }
        self.setCursor(cursors.get(edge or "", Qt.CursorShape.SizeAllCursor))
        super().hoverMoveEvent(event)

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.canvas.drawing:
            event.ignore()
            return
        if not self.isSelected():
            self.scene().clearSelection()
            self.setSelected(True)
        self._drag = self._handle_at(event.pos()) or "move"
        self._press_scene = event.scenePos()
        self._press_rect = self.scene_rect()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if not self._drag:
            return
        d = event.scenePos() - self._press_scene
        r = QRectF(self._press_rect)
        if self._drag == "move":
            r.translate(d)
        else:
            if "l" in self._drag:
                r.setLeft(r.left() + d.x())
            if "r" in self._drag:
                r.setRight(r.right() + d.x())
            if "t" in self._drag:
                r.setTop(r.top() + d.y())
            if "b" in self._drag:
                r.setBottom(r.bottom() + d.y())
            r = r.normalized()
        r = self.canvas.clamp(r)
        self.prepareGeometryChange()
        self.setPos(r.topLeft())
        self.setRect(QRectF(0, 0, r.width(), r.height()))

    def mouseReleaseEvent(self, event) -> None:
        if not self._drag:
            return
        self._drag = None
        r = self.scene_rect()
        if r != self._press_rect and r.width() >= 1 and r.height() >= 1:
            self.canvas.boxEdited.emit(self.index, r)
        event.accept()


class Canvas(QGraphicsView):
    """Shows one image and its boxes."""

    boxEdited = Signal(int, QRectF)  # box index, new rect (image px): one finished gesture
    boxDrawn = Signal(QRectF)
    selectionChangedTo = Signal(int)  # box index or -1
    zoomChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None, *, editable: bool = True) -> None:
        super().__init__(parent)
        scene = QGraphicsScene(self)
        # No BSP index: the scene holds a few dozen items that move, resize and get replaced on
        # every image, and labels change their bounds as they are placed. Qt's index then keeps
        # stale entries for removed items and a later paint reads freed memory (a segfault seen
        # after a crowd region was replaced); a linear scan of so few items costs nothing.
        scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setScene(scene)
        self.setRenderHints(
            QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform
        )
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setBackgroundBrush(QBrush(QColor("#202124")))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.editable = editable
        self.pixmap_item = QGraphicsPixmapItem()
        self.pixmap_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.pixmap_item)
        self.items_: list[BoxItem] = []
        self.crowd_items: list[QGraphicsRectItem] = []  # drawn only; see crowd_item
        self.image_size = (0, 0)  # upright image pixels
        self.drawing = False
        self._draw_start: QPointF | None = None
        self._draw_item: QGraphicsRectItem | None = None
        self._pan_from: QPointF | None = None
        self._fit = True
        self.min_score = 0.0
        self.shown: str | None = None  # the id of the image shown, kept by the canvas's owner
        # Items the owner adds over the boxes (suggestions) whose labels are placed with the
        # boxes' labels: each has ``chip``, ``scene_rect()`` and ``label_rect``.
        self.overlays: list = []
        self.scene().selectionChanged.connect(self._selection_changed)

    # -- content -----------------------------------------------------------------------------
    def set_image(self, image: QImage | None, size: tuple[int, int]) -> None:
        """Show ``image`` (maybe scaled down for the screen) stretched to ``size`` pixels."""
        self.image_size = size
        if image is None or image.isNull():
            self.pixmap_item.setPixmap(QPixmap())
        else:
            self.pixmap_item.setPixmap(QPixmap.fromImage(image))
            sx = size[0] / image.width()
            sy = size[1] / image.height()
            self.pixmap_item.setTransform(self.pixmap_item.transform().fromScale(sx, sy))
        self.scene().setSceneRect(QRectF(0, 0, size[0], size[1]))
        if self._fit:
            self.fit()

    def set_boxes(self, boxes: list[Box], names: dict[int, str], selected: int = -1) -> None:
        for item in [*self.items_, *self.crowd_items]:
            self.scene().removeItem(item)
        self.items_, self.crowd_items = [], []
        for i, box in enumerate(boxes):
            if box.state == "rejected":
                continue
            if box.crowd:
                self.crowd_items.append(crowd_item(box, names.get(box.cls, f"class {box.cls}")))
                self.scene().addItem(self.crowd_items[-1])
                continue
            item = BoxItem(i, box, names.get(box.cls, f"class {box.cls}"), self)
            item.setVisible(not self._hidden(box))
            if not self.editable:
                item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, False)
                item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            self.scene().addItem(item)
            self.items_.append(item)
            if i == selected:
                item.setSelected(True)
        self.place_labels()

    def _hidden(self, box: Box) -> bool:
        return box.state == "pending" and (box.score or 0.0) < self.min_score

    def set_min_score(self, value: float) -> None:
        """Hide pre-labels below ``value``, live."""
        self.min_score = value
        for item in self.items_:
            item.setVisible(not self._hidden(item.box))
        self.place_labels()

    def place_labels(self) -> None:
        """Put each visible box's label where it can be read, in view pixels (labels do not
        scale with the zoom): above the box; inside it when above would leave the image or the
        view (a box at the top edge); and lower down when it would cover a label placed
        before it (boxes are placed top to bottom)."""
        placed: list[QRectF] = []
        image_top = self.mapFromScene(QPointF(0, 0)).y()
        labelled = [*self.visible_items(), *(o for o in self.overlays if o.isVisible())]
        for item in sorted(labelled, key=lambda it: (it.scene_rect().y(), it.scene_rect().x())):
            size = item.chip.rect().size()
            origin = QPointF(self.mapFromScene(item.scene_rect().topLeft()))
            rect = QRectF(origin - QPointF(0, size.height()), size)
            if rect.top() < max(0, image_top):
                rect.moveTop(origin.y())
            for _ in range(len(placed)):  # each move clears one label: bounded
                hit = next((p for p in placed if p.intersects(rect)), None)
                if hit is None:
                    break
                rect.moveTop(hit.bottom() + 1)
            item.chip.setTransform(QTransform.fromTranslate(0, rect.top() - origin.y()))
            item.label_rect = rect
            placed.append(rect)

    def visible_items(self) -> list[BoxItem]:
        return [i for i in self.items_ if i.isVisible()]

    def selected_index(self) -> int:
        for item in self.items_:
            if item.isSelected():
                return item.index
        return -1

    def select_index(self, index: int) -> None:
        self.scene().clearSelection()
        for item in self.items_:
            if item.index == index:
                item.setSelected(True)
                self.ensureVisible(item, 20, 20)

    def _selection_changed(self) -> None:
        self.selectionChangedTo.emit(self.selected_index())

    def clamp(self, r: QRectF) -> QRectF:
        w, h = self.image_size
        return r.intersected(QRectF(0, 0, w, h)) if w and h else r

    # -- zoom and pan --------------------------------------------------------------------------
    def fit(self) -> None:
        self._fit = True
        if self.image_size[0]:
            self._zoom_will_change()
            self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.place_labels()
        self.zoomChanged.emit(self.transform().m11())

    def zoom(self, factor: float) -> None:
        self._fit = False
        current = self.transform().m11()
        factor = max(0.02 / current, min(factor, 40.0 / current))
        self._zoom_will_change()
        self.scale(factor, factor)
        self.place_labels()
        self.zoomChanged.emit(self.transform().m11())

    def _zoom_will_change(self) -> None:
        for item in self.items_:
            item.zoom_will_change()

    def wheelEvent(self, event) -> None:
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    # -- drawing and panning -------------------------------------------------------------------
    def start_drawing(self) -> None:
        self.drawing = True
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def stop_drawing(self) -> None:
        self.drawing = False
        self._draw_start = None
        if self._draw_item is not None:
            self.scene().removeItem(self._draw_item)
            self._draw_item = None
        self.viewport().unsetCursor()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton
            and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if self.drawing and self.editable and event.button() == Qt.MouseButton.LeftButton:
            self._draw_start = self.mapToScene(event.position().toPoint())
            self._draw_item = QGraphicsRectItem()
            pen = QPen(QColor("#ffffff"), 1, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            self._draw_item.setPen(pen)
            self._draw_item.setZValue(20)
            self.scene().addItem(self._draw_item)
            return
        super().mousePressEvent(event)
        hit = self.itemAt(event.position().toPoint())
        if hit is None or hit is self.pixmap_item or hit in self.crowd_items:
            self.scene().clearSelection()

    def mouseMoveEvent(self, event) -> None:
        if self._pan_from is not None:
            d = event.position() - self._pan_from
            self._pan_from = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(d.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(d.y()))
            return
        if self._draw_start is not None and self._draw_item is not None:
            here = self.mapToScene(event.position().toPoint())
            self._draw_item.setRect(self.clamp(QRectF(self._draw_start, here).normalized()))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            return
        if self._draw_start is not None and self._draw_item is not None:
            r = self._draw_item.rect()
            self.stop_drawing()
            if r.width() >= 2 and r.height() >= 2:
                self.boxDrawn.emit(r)
            return
        super().mouseReleaseEvent(event)
