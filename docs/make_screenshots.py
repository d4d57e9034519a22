"""Make the README's screenshots from the real app.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py

Builds the demo project in a temporary folder, opens the review window on it, and saves
docs/images/main-window.png, docs/images/review-queue.png (the ranked queue and the model's
suggestions on a labelled image) and docs/images/diff-view.png; then reviews the pre-labelled batch
(keeping the confident pre-labels, rejecting the others), commits it, waits for the watched
demo model to be evaluated on the new version, and saves docs/images/validation.png.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from labeldesk.core.demo.build import build_demo
from labeldesk.core.store.versions import resolve

OUT = Path(__file__).parent / "images"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="labeldesk-shots-"))
    project = build_demo(work / "demo", say=lambda _s: None)
    root = project.root
    project.close()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from labeldesk.gui.diff_dialog import DiffDialog
    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(root)
    w.resize(1400, 900)
    w.show()
    QTest.qWaitForWindowActive(w, 5000)
    while w.ws is None or w.current is None:
        app.processEvents()
    # an image with the model's pending pre-labels (the demo's newest, unlabelled images)
    rows = w.ws.rows
    pick = next(i for i, r in enumerate(rows) if r.min_score is not None and r.n_boxes == 0)
    w.show_row(pick)
    QTest.qWait(1000)
    w.canvas.select_index(0)
    QTest.qWait(200)
    w.grab().save(str(OUT / "main-window.png"))
    queue_shot(app, w)

    old = resolve(w.project.db, "v1.0").id  # the QA pass: missed objects, loose boxes, classes
    new = resolve(w.project.db, "v1.0").id
    new = next(v.id for v in w.versions.model.versions if v.parents == [old])
    dialog = DiffDialog(w, w.ops, old, new)
    dialog.show()
    QTest.qWait(800)
    dialog.grab().save(str(OUT / "diff-view.png"))
    dialog.close()
    validation_shot(app, w)
    w.close()
    print(f"wrote main-window.png, review-queue.png, diff-view.png, validation.png in {OUT}")
    os._exit(0)


def queue_shot(app: QApplication, w) -> None:
    """The ranked queue, filtered to what needs review, on the top labelled image with the
    model's suggestions over it: docs/images/review-queue.png."""
    wait_for(app, lambda: bool(w.image_model.priorities), 120)
    w.sort_order.setCurrentText("by priority")
    w.needs_review.setChecked(True)
    labelled = [
        i for i in w.image_model.visible if w.ws.rows[i].n_boxes and w.ws.rows[i].min_score is None
    ]
    for i in labelled:
        w.show_row(i)
        if w.suggestions:
            break
    QTest.qWait(800)
    w.grab().save(str(OUT / "review-queue.png"))
    w.needs_review.setChecked(False)
    w.sort_order.setCurrentText("by name")


def wait_for(app: QApplication, done, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the window")
        app.processEvents()
        time.sleep(0.01)


def validation_shot(app: QApplication, w) -> None:
    """Review the pre-labels, commit (the watched model is evaluated), show the panel."""
    for i, row in enumerate(list(w.ws.rows)):
        if row.min_score is None:
            continue
        w.show_row(i)
        boxes = w.boxes_of(w.current)
        kept = [
            b.with_(state="accepted" if (b.score or 0) >= 0.5 else "rejected", author=w.user)
            if b.state == "pending"
            else b
            for b in boxes
        ]
        w.edit(kept, "review")
    evaluated = []
    w.watched.evaluated.connect(lambda version, results: evaluated.append(version))
    w.commit_version("review of the pre-labelled batch")
    wait_for(app, lambda: bool(evaluated))
    if w.watched.notice is not None:
        w.watched.notice.close()
    loaded = []
    w.validation.loaded.connect(lambda: loaded.append(True))
    w.show_validation()
    w.resizeDocks([w.validation_dock], [560], Qt.Orientation.Vertical)
    wait_for(app, lambda: bool(loaded) and w.validation.data is not None)
    panel = w.validation
    newest = next(e for e in reversed(panel.data.evaluations) if e.role == "candidate")
    panel.select_evaluation(newest.id)
    QTest.qWait(800)
    w.validation_dock.grab().save(str(OUT / "validation.png"))


if __name__ == "__main__":
    main()
