"""The review queue in the window: ranked off the GUI thread, a badge with the reason in the
list and in the boxes panel, sorted by priority, filtered to "needs review"; the model-run
chooser in the toolbar."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from labeldesk.app.review import Workspace, open_or_start_session
from labeldesk.core.boxes import Box
from labeldesk.core.store.project import Project
from labeldesk.gui.item_models import RowRole


@pytest.fixture
def labelled(tmp_path, make_project):
    """Four images; the first three labelled, each disagreeing with the model its own way."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    shas = make_project(tmp_path, n=4)
    with Project.open(tmp_path / "project", user="lead-user") as p:
        session = open_or_start_session(p)
        ws = Workspace(p, session)
        ws.load()
        car = next(c for c, n in ws.classes.items() if n == "car")
        bus = next(c for c, n in ws.classes.items() if n == "bus")
        # the model: a car at (20,30 60x40) 0.9 and a bus at (120,80 50x50) 0.3 on every image
        session.set_boxes(shas[0], [Box(car, 20, 30, 60, 40)])  # agrees
        session.set_boxes(shas[1], [Box(bus, 20, 30, 60, 40)])  # wrong class
        session.set_boxes(shas[2], [Box(car, 20, 30, 60, 40), Box(car, 5, 100, 20, 20)])
        session.commit("labels")  # the next session keeps the model run
    return tmp_path / "project", shas


def open_window(qtbot, root):
    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(root, user="lead-user")
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.queueReady, timeout=20000):
        qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=10000)
    return w


def shown(w) -> list[str]:
    return [w.image_rows.index(i, 0).data(RowRole).sha for i in range(w.image_rows.rowCount())]


def test_queue_badges_sort_and_filter(qtbot, labelled) -> None:
    root, shas = labelled
    w = open_window(qtbot, root)
    pr = w.image_model.priorities
    assert shas[1] in pr and shas[2] in pr  # wrong class, possibly spurious
    assert shas[0] not in pr or pr[shas[0]][0] < pr[shas[1]][0]
    text = w.image_model.index(1).data(Qt.ItemDataRole.DisplayRole)
    assert "⚑" in text and f"{pr[shas[1]][0]:.2f}" in text

    w.sort_order.setCurrentText("by priority")
    order = shown(w)
    ranked = sorted(pr, key=lambda s: -pr[s][0])
    assert order[: len(ranked)] == ranked
    assert w.current == w.canvas.shown == w.image_list.currentIndex().data(RowRole).sha

    w.needs_review.setChecked(True)
    assert set(shown(w)) == set(pr)
    # the boxes panel says why the image is in the queue
    w.show_row(w.ws.index[ranked[0]])
    assert w.priority_label.text().startswith("⚑ review priority")
    assert pr[ranked[0]][1] in w.priority_label.text()

    # Space goes down the ranked list as shown, never skipping
    w.image_list.setCurrentIndex(w.image_rows.index(0, 0))
    seen = [w.current]
    for _ in range(len(ranked) - 1):
        QTest.keyClick(w.canvas, Qt.Key.Key_Space)
        seen.append(w.current)
        assert w.current == w.canvas.shown == w.image_list.currentIndex().data(RowRole).sha
    assert seen == ranked
    w.close()


def test_the_run_chooser_names_the_model_and_switches(qtbot, labelled) -> None:
    root, shas = labelled
    w = open_window(qtbot, root)
    texts = [w.run_chooser.itemText(i) for i in range(w.run_chooser.count())]
    assert texts[0] == "no model"
    assert any(t.startswith("demo (confidence ≥ 0.25") for t in texts[1:])
    assert w.run_chooser.currentText().startswith("demo")
    with qtbot.waitSignal(w.queueReady, timeout=20000):
        w.run_chooser.setCurrentIndex(0)
        w.run_chooser.activated.emit(0)
    qtbot.waitUntil(lambda: w.ws is not None and w.ws.prelabel_model is None, timeout=10000)
    assert w.image_model.priorities == {}
    # image 3 has no labels: without a model it shows no pre-labels
    w.show_row(w.ws.index[shas[3]])
    assert w.canvas.items_ == []
    w.close()


def test_suggestions_on_labelled_images_are_accepted_and_dismissed_with_a_and_x(
    qtbot, labelled
) -> None:
    root, shas = labelled
    w = open_window(qtbot, root)
    w.show_row(w.ws.index[shas[0]])
    w.settle_suggestions()  # they are read on the lookup lane
    assert w.suggestions == []  # labels and model agree: nothing drawn
    w.show_row(w.ws.index[shas[1]])
    w.settle_suggestions()
    (item,) = [i for i in w.suggestion_items if i.kind == "wrong_class"]
    assert item.pen().style() == Qt.PenStyle.DashDotLine and "wrong class" in item.text
    item.setSelected(True)
    QTest.keyClick(w.canvas, Qt.Key.Key_A)  # accept: the label takes the model's class
    (label,) = [b for b in w.boxes_of(shas[1]) if b.state != "rejected"]
    assert w.ws.classes[label.cls] == "car" and (label.x, label.y) == (20, 30)
    w.settle_suggestions()
    assert not [i for i in w.suggestion_items if i.kind == "wrong_class"]
    assert w.ws.rows[w.ws.index[shas[1]]].state == "edited"

    w.show_row(w.ws.index[shas[2]])
    w.settle_suggestions()
    (item,) = [i for i in w.suggestion_items if i.kind == "spurious"]
    item.setSelected(True)
    QTest.keyClick(w.canvas, Qt.Key.Key_X)  # dismiss: the label stays, confirmed by a person
    boxes = w.boxes_of(shas[2])
    assert len([b for b in boxes if b.state != "rejected"]) == 2
    w.settle_suggestions()
    assert not [i for i in w.suggestion_items if i.kind == "spurious"]
    QTest.keyClick(w.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    w.settle_suggestions()
    assert [i.kind for i in w.suggestion_items if i.kind == "spurious"] == ["spurious"]
    w.writer.wait()
    with Project.open(root) as p:
        (n,) = p.db.execute(
            "SELECT COUNT(*) FROM session_edit WHERE session = ?", [w.ws.session.id]
        ).fetchone()
    assert n == 2  # every decision is an edit of the session
    w.close()


def test_suggestion_labels_do_not_cover_box_labels(qtbot, labelled) -> None:
    import itertools

    root, shas = labelled
    w = open_window(qtbot, root)
    w.show_row(w.ws.index[shas[1]])  # the label and the model's box are the same rectangle
    w.settle_suggestions()
    rects = [i.label_rect for i in w.canvas.visible_items()]
    rects += [i.label_rect for i in w.suggestion_items]
    assert len(rects) >= 2
    assert all(not a.intersects(b) for a, b in itertools.combinations(rects, 2))
    w.close()


def test_matched_predictions_show_faint_on_a_toggle(qtbot, labelled) -> None:
    root, shas = labelled
    w = open_window(qtbot, root)
    w.show_row(w.ws.index[shas[0]])  # the car label agrees with the model's car
    w.settle_suggestions()
    assert w.suggestion_items == []
    w.show_matched.setChecked(True)
    w.settle_suggestions()
    (item,) = [i for i in w.suggestion_items if i.kind == "matched"]
    assert item.pen().color().alpha() < 255 and item.pen().style() == Qt.PenStyle.DotLine
    assert not item.flags() & item.GraphicsItemFlag.ItemIsSelectable
    assert (item.box.x, item.box.y, item.box.w, item.box.h) == (20, 30, 60, 40)
    w.show_matched.setChecked(False)
    w.settle_suggestions()
    assert w.suggestion_items == []
    w.close()


def test_the_matching_iou_is_the_users_to_set(qtbot, labelled) -> None:
    root, shas = labelled
    with Project.open(root, user="lead-user") as p:
        session = open_or_start_session(p)
        ws = Workspace(p, session)
        ws.load()
        car = next(c for c, n in ws.classes.items() if n == "car")
        # IoU 0.57 with the model's car at (20,30 60x40): a match at 0.5, a loose box at 0.6
        session.set_boxes(shas[3], [Box(car, 30, 35, 60, 40)])
        session.commit("a shifted label")
    w = open_window(qtbot, root)
    w.show_row(w.ws.index[shas[3]])
    w.settle_suggestions()
    assert not [s for s in w.suggestions if s.kind == "loose"]
    with qtbot.waitSignal(w.queueReady, timeout=20000):
        w.iou_spin.setValue(0.60)
    w.settle_suggestions()
    (loose,) = [s for s in w.suggestions if s.kind == "loose"]
    assert (loose.box.x, loose.box.y, loose.box.w, loose.box.h) == (20, 30, 60, 40)
    assert shas[3] in w.image_model.priorities  # the queue was ranked again at 0.6
    w.close()
