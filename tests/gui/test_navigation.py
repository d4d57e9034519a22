"""Navigation never skips: with a filter on, Space goes to the next image of the list as shown,
the canvas always shows the selected row, and the window reopens where the reviewer was."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from labeldesk.gui.item_models import RowRole


@pytest.fixture
def settings_dir(tmp_path):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    return tmp_path / "qs"


@pytest.fixture
def six(tmp_path, make_project):
    shas = make_project(tmp_path, n=6)
    return tmp_path / "project", shas


def open_window(qtbot, root):
    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(root, user="lead-user")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=10000)
    return w


def listed(window) -> str | None:
    """The sha of the list's current row."""
    idx = window.image_list.currentIndex()
    return idx.data(RowRole).sha if idx.isValid() else None


def assert_in_step(window) -> None:
    """The list's current row, the window's image and the canvas's image are one image."""
    assert listed(window) == window.current == window.canvas.shown


def key(window, k, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(window.canvas, k, modifier)


FILTERS = {
    "below": lambda w: (w.below_spin.setValue(0.5), w.below_check.setChecked(True)),
    "not reviewed": lambda w: w.state_filter.setCurrentText("not reviewed"),
    "class": lambda w: w.class_filter.setCurrentIndex(w.class_filter.findText("with bus")),
    "none": lambda w: None,
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_space_visits_every_image_of_the_filtered_list_in_order(
    qtbot, six, settings_dir, name
) -> None:
    root, shas = six
    w = open_window(qtbot, root)
    FILTERS[name](w)
    assert w.image_model.rowCount() == 6
    assert_in_step(w)
    seen = [w.current]
    for _ in range(5):
        key(w, Qt.Key.Key_Space)
        assert_in_step(w)
        seen.append(w.current)
    assert seen == shas  # none skipped, none twice
    key(w, Qt.Key.Key_Return)  # the last image: accepted, and the cursor stays on a row
    assert_in_step(w)
    assert all(r.state == "reviewed" for r in w.ws.rows)
    w.close()


def test_an_image_leaving_the_filter_stays_until_the_cursor_moves_on(qtbot, six, settings_dir):
    root, shas = six
    w = open_window(qtbot, root)
    FILTERS["below"](w)
    key(w, Qt.Key.Key_Tab)
    key(w, Qt.Key.Key_Tab)  # the bus (0.3), the image's only pre-label below 0.5
    assert w.canvas.items_[w.canvas.selected_index()].box.score == 0.3
    key(w, Qt.Key.Key_A)
    # the image no longer passes the filter, but it is the one being reviewed: it stays shown
    assert w.current == shas[0]
    assert_in_step(w)
    key(w, Qt.Key.Key_Right)
    assert w.current == shas[1]
    assert_in_step(w)
    # now that the cursor left it, image 0 leaves the list
    assert [w.image_model.rows[s].sha for s in w.image_model.visible] == shas[1:]
    key(w, Qt.Key.Key_Left)  # nothing before image 1 in this list
    assert w.current == shas[1]
    assert_in_step(w)
    w.close()


def test_changing_the_filter_keeps_list_and_canvas_in_step(qtbot, six, settings_dir):
    root, shas = six
    w = open_window(qtbot, root)
    key(w, Qt.Key.Key_Space)
    key(w, Qt.Key.Key_Space)
    assert w.current == shas[2]
    w.state_filter.setCurrentText("reviewed")  # image 2 is not shown: go to a shown one
    assert w.current in shas[:2]
    assert_in_step(w)
    w.state_filter.setCurrentText("all images")
    assert_in_step(w)
    w.close()


def test_the_window_reopens_on_the_image_last_reviewed(qtbot, six, settings_dir):
    root, shas = six
    w = open_window(qtbot, root)
    for _ in range(3):
        key(w, Qt.Key.Key_Space)
    assert w.current == shas[3]
    w.close()
    w2 = open_window(qtbot, root)
    assert w2.current == shas[3]
    assert_in_step(w2)
    w2.close()
