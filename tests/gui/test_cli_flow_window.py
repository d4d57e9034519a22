"""Issue 12, item 1 end to end: the README's CLI flow (``model add``, ``prelabel``), then the
window shows the model's boxes; a commit keeps the run, and the next session shows the boxes
still pending."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import DEMO_MODEL
from helpers import run_cli as run
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from labeldesk.core.demo.synth import write_images


def test_cli_prelabels_show_in_the_window_and_survive_a_commit(
    qtbot, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("LABELDESK_USER", "lead-user")  # the CLI's classes are in their session
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    root = tmp_path / "proj"
    p = ("-p", str(root))
    assert run(capsys, "init", str(root))[0] == 0
    write_images(tmp_path / "src", 3, seed=5)
    assert run(capsys, *p, "add", str(tmp_path / "src"))[0] == 0
    weights = shutil.copy(DEMO_MODEL, tmp_path / "shapes.pt")
    code, _, err = run(
        capsys, *p, "model", "add", str(weights), "--name", "shapes", "--add-classes"
    )
    assert code == 0, err
    code, _, err = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "320")
    assert code == 0, err

    from labeldesk.gui.main_window import MainWindow

    def open_window() -> MainWindow:
        w = MainWindow(Path(root), user="lead-user")
        qtbot.addWidget(w)
        w.show()
        qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=20000)
        return w

    w = open_window()
    assert w.ws.prelabel_model is not None  # the CLI's run, with nothing chosen in the window
    assert w.run_chooser.currentText().startswith("shapes (confidence ≥ 0.25")
    pending = {r.sha for r in w.ws.rows if any(b.state == "pending" for b in w.ws.boxes(r.sha))}
    assert len(pending) >= 2
    w.show_row(w.ws.index[sorted(pending)[0]])
    assert w.canvas.items_ and all(i.box.state == "pending" for i in w.canvas.items_)
    first, model = w.current, w.ws.prelabel_model
    QTest.keyClick(w.canvas, Qt.Key.Key_Space)  # accept that image's boxes
    with qtbot.waitSignal(w.committed, timeout=20000) as sig:
        w.commit_version("first image reviewed")
    assert sig.args[0].provenance["model"] == model
    qtbot.waitUntil(lambda: w.ws is not None and w.ws.session.base_id == sig.args[0].id)
    qtbot.waitUntil(lambda: bool(w.ws.rows) and w.current is not None, timeout=20000)
    w.close()

    w = open_window()  # the next session: the same run, the other images still pending
    assert w.ws.prelabel_model == model
    still = {r.sha for r in w.ws.rows if any(b.state == "pending" for b in w.ws.boxes(r.sha))}
    assert still == pending - {first}
    assert all(b.state == "accepted" for b in w.ws.boxes(first))
    w.close()
