"""Words for people in the window: the commit dialog, the diff header, a readable validation
panel, and where a session opens."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog

from labeldesk.gui.commit_dialog import counts_text


def test_commit_dialog_says_the_model_and_its_parameters_in_words(window, qtbot) -> None:
    dialog = window.make_commit_dialog()
    qtbot.addWidget(dialog)
    text = dialog.summary.text()
    assert "demo (confidence ≥ 0.25, overlap (NMS IoU) 0.7, image size 640 px)" in text
    assert "m1" not in text and "{" not in text and "None" not in text
    assert "method: semi-automatic" in text and "reviewer: lead-user" in text
    assert "0 conflicts" in text


def test_conflicts_are_counted_in_words() -> None:
    counts = {"not reviewed": 3, "reviewed": 1, "edited": 0, "conflict": 1}
    assert counts_text(counts) == "3 not reviewed, 1 reviewed, 0 edited, 1 conflict"
    assert counts_text({**counts, "conflict": 2}).endswith("2 conflicts")


def test_ctrl_enter_commits_and_enter_makes_a_new_line(qtbot) -> None:
    from labeldesk.gui.commit_dialog import CommitDialog

    counts = {"not reviewed": 3, "reviewed": 1, "edited": 0, "conflict": 0}
    lines = [("method", "manual"), ("model", "none")]
    for key, modifier in (
        (Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier),
        (
            Qt.Key.Key_Enter,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.KeypadModifier,
        ),
    ):
        dialog = CommitDialog(None, counts, lines)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.activateWindow()  # as exec() makes it: the window that gets the shortcuts
        qtbot.waitActive(dialog)
        dialog.text.setFocus()
        QTest.keyClicks(dialog.text, "first line")
        QTest.keyClick(dialog.text, Qt.Key.Key_Return)
        QTest.keyClicks(dialog.text, "second")
        assert dialog.isVisible() and dialog.message() == "first line\nsecond"
        QTest.keyClick(dialog.text, key, modifier)
        assert dialog.result() == QDialog.DialogCode.Accepted and not dialog.isVisible()
    empty = CommitDialog(None, counts, lines)
    qtbot.addWidget(empty)
    empty.show()
    empty.activateWindow()
    qtbot.waitActive(empty)
    QTest.keyClick(empty.text, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert empty.isVisible()  # no message, no commit


def test_diff_dialog_header_names_the_classes(window, qtbot) -> None:
    from labeldesk.core.store.versions import resolve
    from labeldesk.gui.diff_dialog import DiffDialog

    db = window.project.db
    old, new = resolve(db, "main~1").id, resolve(db, "main").id  # main~1 had no classes
    dialog = DiffDialog(window, window.ops, old, new)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.ready, timeout=10000):  # computed off the GUI thread
        pass
    text = dialog.head.text()
    assert "classes added bus, car" in text and "[" not in text


def test_the_validation_panel_is_readable_at_the_default_size(window, qtbot) -> None:
    assert (window.width(), window.height()) == (1400, 900)
    panel = window.validation
    window.validation_dock.raise_()  # its tab clicked: the dock grows to a readable height

    def readable() -> bool:
        return (
            panel.models_chart.height() >= 180
            and panel.eval_table.height() >= 120
            and panel.class_table.height() >= 140
        )

    qtbot.waitUntil(readable, timeout=5000)
    top, table = panel.models_split.sizes()
    assert top >= 180 and table >= 120 and top + table <= window.height() // 2
    assert window.canvas.height() >= 350  # the image keeps the larger share


def test_a_session_opens_on_the_first_image_with_pending_prelabels(
    qtbot, tmp_path, make_project
) -> None:
    from PySide6.QtCore import QSettings

    from labeldesk.app.review import Workspace, open_or_start_session
    from labeldesk.core.store.project import Project
    from labeldesk.gui.main_window import MainWindow

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    shas = make_project(tmp_path, n=4)
    with Project.open(tmp_path / "project", user="lead-user") as p:
        session = open_or_start_session(p)
        ws = Workspace(p, session)
        ws.load()
        for sha in shas[:2]:  # reviewed already: nothing pending there
            session.set_boxes(sha, [b.with_(state="accepted") for b in ws.boxes(sha)])
    w = MainWindow(tmp_path / "project", user="lead-user")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.current is not None, timeout=10000)
    assert w.current == shas[2]
    assert [i.box.state for i in w.canvas.items_] == ["pending", "pending"]
    w.close()
