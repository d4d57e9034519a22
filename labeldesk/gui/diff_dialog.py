"""Diff of two versions: the changed images, and before/after boxes over the chosen one."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from labeldesk.app import versions as V

from .canvas import Canvas
from .loader import SCREEN_SIDE, decode
from .operations import Operations


class DiffDialog(QDialog):
    """Opens at once; the diff is computed on the reader and shown when it comes (``ready``),
    and each image's boxes are read there too when it is chosen."""

    ready = Signal()  # the diff is shown
    imageShown = Signal(str)  # an image's before/after are drawn

    def __init__(self, parent: QWidget | None, ops: Operations, old_id: str, new_id: str) -> None:
        super().__init__(parent)
        self.ops = ops
        self.d = self.old = self.new = None
        self.setWindowTitle(f"Diff {old_id[:12]} → {new_id[:12]}")
        self.resize(1300, 750)
        self.head = QLabel("Comparing the versions…")
        self.list = QListWidget()
        self.before = Canvas(editable=False)
        self.after = Canvas(editable=False)
        panes = QSplitter()
        panes.addWidget(self.list)
        for title, canvas in (("before", self.before), ("after", self.after)):
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.addWidget(QLabel(title))
            lay.addWidget(canvas)
            panes.addWidget(box)
        panes.setSizes([300, 500, 500])
        lay = QVBoxLayout(self)
        lay.addWidget(self.head)
        lay.addWidget(panes, 1)
        row = QHBoxLayout()
        lay.addLayout(row)
        self.list.currentItemChanged.connect(self._show)
        ops.run(self, lambda p: V.diff(p, old_id, new_id), lane="reader", on_done=self._diffed)

    def _diffed(self, view: V.DiffView) -> None:
        self.d, self.old, self.new = view.diff, view.old, view.new
        self.setWindowTitle(f"Diff {self.old.short} → {self.new.short}")
        c = self.d.counts()
        self.head.setText(
            f"<b>{self.old.short}</b> → <b>{self.new.short}</b>: images +{c['images_added']} "
            f"−{c['images_removed']} ~{c['images_changed']}; boxes +{c['boxes_added']} "
            f"−{c['boxes_removed']}"
            + (f"; classes {escape(self.d.classes_text())}" if self.d.classes_text() else "")
        )
        names = view.names
        marks = {"added": "+", "removed": "−", "changed": "~"}
        for item in sorted(self.d.images, key=lambda i: Path(names.get(i.image, i.image)).name):
            what = ", ".join(item.what_changed())  # says which metadata field changed, too
            label = f"{marks[item.kind]} {Path(names.get(item.image, item.image)).name}" + (
                f"  ({what})" if what else ""
            )
            w = QListWidgetItem(label)
            w.setData(256, item)
            self.list.addItem(w)
        if self.list.count():
            self.list.setCurrentRow(0)
        self.ready.emit()

    def _show(self, current: QListWidgetItem | None, _prev=None) -> None:
        if current is None:
            return
        item = current.data(256)

        def read(p):
            shown = V.diff_image(p, item.image, item.old_annset, item.new_annset)
            return shown, decode(V.object_path(p, item.image), SCREEN_SIDE)

        self.ops.run(self, read, lane="reader", on_done=lambda got: self._draw(item, *got))

    def _draw(self, item, shown: V.DiffImage, image) -> None:
        if self.list.currentItem() is None or self.list.currentItem().data(256) is not item:
            return  # another image was chosen meanwhile
        for canvas, boxes, version in (
            (self.before, shown.before, self.old),
            (self.after, shown.after, self.new),
        ):
            canvas.set_image(image, shown.size)
            canvas.set_boxes(boxes, version.class_names)
        self.imageShown.emit(item.image)
