"""Diff of two versions: the changed images, and before/after boxes over the chosen one."""

from __future__ import annotations

from html import escape
from pathlib import Path

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

from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import diff, get_version, load_annotation_set

from .canvas import Canvas
from .loader import SCREEN_SIDE, decode


class DiffDialog(QDialog):
    def __init__(self, parent, project: Project, old_id: str, new_id: str) -> None:
        super().__init__(parent)
        self.project = project
        self.d = diff(project, old_id, new_id)
        self.old = get_version(project.db, old_id)
        self.new = get_version(project.db, new_id)
        self.setWindowTitle(f"Diff {self.old.short} → {self.new.short}")
        self.resize(1300, 750)
        c = self.d.counts()
        head = QLabel(
            f"<b>{self.old.short}</b> → <b>{self.new.short}</b>: images +{c['images_added']} "
            f"−{c['images_removed']} ~{c['images_changed']}; boxes +{c['boxes_added']} "
            f"−{c['boxes_removed']}"
            + (f"; classes {escape(self.d.classes_text())}" if self.d.classes_text() else "")
        )
        self.head = head
        self.list = QListWidget()
        names = dict(
            project.db.execute("SELECT sha256, path FROM image_source ORDER BY id DESC").fetchall()
        )
        marks = {"added": "+", "removed": "−", "changed": "~"}
        for item in sorted(self.d.images, key=lambda i: Path(names.get(i.image, i.image)).name):
            what = ", ".join(item.what_changed())  # says which metadata field changed, too
            label = f"{marks[item.kind]} {Path(names.get(item.image, item.image)).name}" + (
                f"  ({what})" if what else ""
            )
            w = QListWidgetItem(label)
            w.setData(256, item)
            self.list.addItem(w)
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
        lay.addWidget(head)
        lay.addWidget(panes, 1)
        row = QHBoxLayout()
        lay.addLayout(row)
        self.list.currentItemChanged.connect(self._show)
        if self.list.count():
            self.list.setCurrentRow(0)

    def _show(self, current: QListWidgetItem | None, _prev=None) -> None:
        if current is None:
            return
        item = current.data(256)
        row = self.project.db.execute(
            "SELECT width, height FROM image WHERE sha256 = ?", [item.image]
        ).fetchone()
        image = decode(self.project.objects.path(item.image), SCREEN_SIDE)
        for canvas, annset, version in (
            (self.before, item.old_annset, self.old),
            (self.after, item.new_annset, self.new),
        ):
            canvas.set_image(image, (row[0], row[1]))
            boxes = load_annotation_set(self.project.db, annset) if annset else []
            canvas.set_boxes(boxes, version.class_names)
