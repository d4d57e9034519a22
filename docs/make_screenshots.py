"""Make the README's screenshots from the real app.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py

Builds the demo project in a temporary folder, opens the review window on it, and saves
docs/images/main-window.png and docs/images/diff-view.png.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from labeldesk.core.demo import build_demo
from labeldesk.core.versions import resolve

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

    old = resolve(w.project.db, "v1.0").id  # the QA pass: missed objects, loose boxes, classes
    new = resolve(w.project.db, "v1.0").id
    new = next(v.id for v in w.versions.model.versions if v.parents == [old])
    dialog = DiffDialog(w, w.project, old, new)
    dialog.show()
    QTest.qWait(800)
    dialog.grab().save(str(OUT / "diff-view.png"))
    dialog.close()
    w.close()
    print(f"wrote {OUT / 'main-window.png'} and {OUT / 'diff-view.png'}")
    os._exit(0)


if __name__ == "__main__":
    main()
