"""Kill the real app mid-session and reopen it; annotators against leads."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

from labeldesk.core.errors import PermissionDeniedError
from labeldesk.core.store.versions import decide

APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from labeldesk.gui.main_window import MainWindow

    app = QApplication([])
    w = MainWindow(Path(sys.argv[1]), user="lead-user")
    w.show()
    saved = []

    def on_saved(sha):
        saved.append(sha)
        if len(saved) == 2:
            print("SAVED", flush=True)  # both edits are in the database: kill me now

    w.editSaved.connect(on_saved)

    def go():
        QTest.qWaitForWindowActive(w, 5000)  # shortcuts only fire in the active window
        QTest.keyClick(w.canvas, Qt.Key.Key_Space)  # accept image 0
        QTest.keyClick(w.canvas, Qt.Key.Key_Tab)  # image 1: reject one pre-label
        QTest.keyClick(w.canvas, Qt.Key.Key_X)

    w.sessionLoaded.connect(go)
    app.exec()
    """
)


def test_killed_app_reopens_with_every_edit(review_project, qtbot, tmp_path) -> None:
    root, shas = review_project
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    with subprocess.Popen(
        [sys.executable, "-c", APP, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as proc:
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "the app did not report its edits saved within 60 s"
            assert proc.stdout.readline().strip() == "SAVED"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(root, user="lead-user")
    qtbot.addWidget(w)
    qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=10000)
    assert [r.state for r in w.ws.rows] == ["reviewed", "edited", "not reviewed", "not reviewed"]
    assert [b.state for b in w.boxes_of(shas[0])] == ["accepted", "accepted"]
    assert sorted(b.state for b in w.boxes_of(shas[1])) == ["pending", "rejected"]
    w.close()


def test_annotators_do_not_see_lead_actions_and_core_refuses(review_project, qtbot) -> None:
    root, _ = review_project
    from labeldesk.gui.main_window import MainWindow

    lead = MainWindow(root, user="lead-user")
    qtbot.addWidget(lead)
    assert not lead.versions.buttons["Approve…"].isHidden()
    lead.close()
    annie = MainWindow(root, user="annie")
    qtbot.addWidget(annie)
    qtbot.waitUntil(lambda: annie.ws is not None, timeout=10000)
    assert annie.versions.buttons["Approve…"].isHidden()
    assert annie.versions.buttons["Reject…"].isHidden()
    assert not annie.versions.buttons["Diff…"].isHidden()
    with pytest.raises(PermissionDeniedError):
        decide(annie.project, "main", "approved", "sneaky")
    annie.close()


def test_window_opens_without_importing_torch_or_matplotlib(review_project, tmp_path) -> None:
    """Start-up stays fast: the model stack loads for inference only, matplotlib once the
    validation panel is shown (it starts tabbed behind Versions)."""
    root, _ = review_project
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from PySide6.QtWidgets import QApplication
        from labeldesk.gui.main_window import MainWindow
        app = QApplication([])
        w = MainWindow(Path({str(root)!r}))
        w.show()
        while w.ws is None or w.current is None:
            app.processEvents()
        w.worker.wait()  # its reads (the versions' watch column) have run too
        app.processEvents()
        w.close()
        heavy = [m for m in ("torch", "ultralytics", "matplotlib") if m in sys.modules]
        print("LOADED " + str(heavy) if heavy else "CLEAN")
    """)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert "CLEAN" in r.stdout, r.stdout + r.stderr
