"""The real main window, driven with real key presses and mouse events (offscreen)."""

from __future__ import annotations

import json

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from labeldesk.core.boxes import Box
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import resolve


def saved_edit(window, sha: str) -> list[Box] | None:
    window.writer.wait()
    with Project.open(window.project.root) as p:
        row = p.db.execute(
            "SELECT boxes FROM session_edit WHERE session = ? AND image = ?",
            [window.ws.session.id, sha],
        ).fetchone()
    return [Box.from_dict(d) for d in json.loads(row[0])] if row else None


def key(window, k, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(window.canvas, k, modifier)


def view_point(window, x: float, y: float) -> QPoint:
    return window.canvas.mapFromScene(QPointF(x, y))


def drag(window, start: QPoint, end: QPoint, steps: int = 5) -> None:
    vp = window.canvas.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        p = start + (end - start) * i / steps
        QTest.mouseMove(vp, p)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_prelabels_are_shown_pending_and_accept_all_moves_on(window, review_project) -> None:
    _, shas = review_project
    assert window.current == shas[0]
    items = window.canvas.items_
    assert [i.box.state for i in items] == ["pending", "pending"]
    assert items[0].pen().style() == Qt.PenStyle.DashLine
    key(window, Qt.Key.Key_Space)
    assert window.current == shas[1]
    saved = saved_edit(window, shas[0])
    assert [b.state for b in saved] == ["accepted", "accepted"]
    assert window.ws.rows[0].state == "reviewed"


def test_confidence_slider_hides_low_prelabels_live(window) -> None:
    assert len(window.canvas.visible_items()) == 2
    window.conf_slider.setValue(50)
    assert [i.box.score for i in window.canvas.visible_items()] == [0.9]
    window.conf_slider.setValue(0)
    assert len(window.canvas.visible_items()) == 2


def test_move_and_resize_by_mouse_are_one_undo_step_each(window, review_project) -> None:
    _, shas = review_project
    car = next(i for i in window.canvas.items_ if i.box.score == 0.9)
    start = view_point(window, 50, 50)  # inside the car box (20,30 60x40)
    end = view_point(window, 70, 60)
    drag(window, start, end)
    moved = window.boxes_of(shas[0])[car.index]
    assert moved.state == "edited"
    assert abs(moved.x - 40) < 2 and abs(moved.y - 40) < 2 and moved.w == 60
    assert window.undo_stack.count() == 1
    # resize from the bottom-right handle of the (now selected) box
    corner = view_point(window, moved.x + moved.w, moved.y + moved.h)
    drag(window, corner, view_point(window, moved.x + moved.w + 20, moved.y + moved.h + 10))
    resized = window.boxes_of(shas[0])[car.index]
    assert abs(resized.w - 80) < 2 and abs(resized.h - 50) < 2
    assert abs(resized.x - moved.x) < 0.01
    assert window.undo_stack.count() == 2
    assert saved_edit(window, shas[0])[car.index] == resized

    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.boxes_of(shas[0])[car.index] == moved
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.boxes_of(shas[0])[car.index].state == "pending"
    key(
        window,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert window.boxes_of(shas[0])[car.index] == moved
    assert saved_edit(window, shas[0])[car.index] == moved


def test_draw_change_class_delete_and_reject(window, review_project) -> None:
    _, shas = review_project
    key(window, Qt.Key.Key_2)  # nothing selected: the next drawn box is class 2 (bus)
    key(window, Qt.Key.Key_W)
    drag(window, view_point(window, 100, 10), view_point(window, 140, 25))
    boxes = window.boxes_of(shas[0])
    drawn = boxes[-1]
    assert (drawn.origin, drawn.state, window.ws.classes[drawn.cls]) == ("human", "added", "bus")
    assert abs(drawn.w - 40) < 2 and abs(drawn.h - 15) < 2
    key(window, Qt.Key.Key_1)  # the drawn box is selected: make it a car
    assert window.ws.classes[window.boxes_of(shas[0])[-1].cls] == "car"
    key(window, Qt.Key.Key_Delete)  # a human box is deleted outright
    assert len(window.boxes_of(shas[0])) == 2
    key(window, Qt.Key.Key_Tab)
    first = window.canvas.selected_index()
    assert first >= 0
    key(window, Qt.Key.Key_X)  # a model box is rejected, kept in the record
    assert window.boxes_of(shas[0])[first].state == "rejected"
    key(window, Qt.Key.Key_Tab)
    key(window, Qt.Key.Key_A)
    states = sorted(b.state for b in window.boxes_of(shas[0]))
    assert states == ["accepted", "rejected"]
    assert window.ws.rows[0].state == "edited"
    assert sorted(b.state for b in saved_edit(window, shas[0])) == ["accepted", "rejected"]


def test_commit_gives_the_expected_version(window, review_project, qtbot) -> None:
    root, shas = review_project
    key(window, Qt.Key.Key_Space)  # image 0: accept both
    key(window, Qt.Key.Key_Tab)  # image 1: reject the selected one, accept the other
    key(window, Qt.Key.Key_X)
    key(window, Qt.Key.Key_Space)
    with qtbot.waitSignal(window.committed, timeout=10000) as sig:
        window.commit_version("reviewed two images")
    version = sig.args[0]
    # the commit queued behind the last edit does not leave "saving…" up
    assert window.save_label.text() == "all edits saved"
    assert version.provenance["method"] == "semi-automatic"
    assert version.provenance["model"] == "m1"
    with Project.open(root) as p:
        store = ManifestStore(p.db)
        tree = store.tree(resolve(p.db, "main").tree)
        labels = {sha: load_annotation_set(p.db, store.entry(tree, sha).annset) for sha in shas}
    assert len(labels[shas[0]]) == 2 and len(labels[shas[1]]) == 1
    assert all(b.state == "accepted" and b.origin == "model" for b in labels[shas[0]])
    assert labels[shas[2]] == [] and labels[shas[3]] == []
    qtbot.waitUntil(lambda: window.ws is not None and window.ws.session.base_id == version.id)
    # the history is read on the reader lane: the table shows the new version once it is read
    qtbot.waitUntil(lambda: window.versions.model.versions[0].id == version.id)


def test_help_overlay_lists_every_shortcut(window) -> None:
    from labeldesk.gui.shortcuts import SHORTCUTS

    key(window, Qt.Key.Key_F1)
    assert window.help.isVisible()
    for sc in SHORTCUTS:
        assert sc.text in window.help.text()
    key(window, Qt.Key.Key_F1)
    assert not window.help.isVisible()


def test_filters(window, review_project) -> None:
    window.below_check.setChecked(True)
    window.below_spin.setValue(0.5)
    assert window.image_model.rowCount() == 4  # every image has a bus at 0.3
    window.below_check.setChecked(False)
    window.class_filter.setCurrentIndex(window.class_filter.findText("with bus"))
    assert window.image_model.rowCount() == 4
    window.class_filter.setCurrentIndex(0)
    key(window, Qt.Key.Key_Space)
    window.state_filter.setCurrentText("reviewed")
    assert window.image_model.rowCount() == 1
    window.state_filter.setCurrentText("not reviewed")
    assert window.image_model.rowCount() == 3
    window.state_filter.setCurrentText("all images")
    window.below_check.setChecked(True)
    assert window.image_model.rowCount() == 3  # image 0's pre-labels were all accepted


def test_models_pass_the_model_tester(window, qtmodeltester) -> None:
    qtmodeltester.check(window.image_model)
    qtmodeltester.check(window.box_model)
    qtmodeltester.check(window.class_model)
    qtmodeltester.check(window.versions.model)


def test_add_class_then_draw_with_it(window, review_project) -> None:
    _, shas = review_project
    cid = window.add_class("truck")
    assert cid is not None and cid < 0  # provisional until the session commits
    assert window.class_model.classes[-1] == (cid, "truck")
    key(window, Qt.Key.Key_W)
    drag(window, view_point(window, 10, 100), view_point(window, 50, 140))
    assert window.ws.classes[window.boxes_of(shas[0])[-1].cls] == "truck"
    saved = saved_edit(window, shas[0])  # stored in canonical order
    assert [b.cls for b in saved if b.origin == "human"] == [cid]


def test_conflicting_commit_shows_both_sides_and_applies_the_choice(
    window, review_project, qtbot
) -> None:
    root, shas = review_project
    # someone else commits a change to image 0 after this session began
    with Project.open(root, user="other") as p:
        from labeldesk.core.store.sessions import ReviewSession

        s = ReviewSession.start(p)
        s.set_boxes(shas[0], [Box(1, 1, 1, 5, 5)])
        s.commit("other's edit")
    key(window, Qt.Key.Key_Space)  # we accept the pre-labels of image 0: a conflict
    window.commit_version("mine")
    qtbot.waitUntil(lambda: getattr(window, "conflict_dialog", None) is not None, timeout=10000)
    dialog = window.conflict_dialog
    assert dialog.isVisible() and dialog.list.count() == 1
    assert len(dialog.theirs.items_) == 1 and len(dialog.ours.items_) == 2
    dialog.pick_theirs.setChecked(True)
    with qtbot.waitSignal(window.committed, timeout=10000) as sig:
        dialog.accept()
    assert sig.args[0].kind == "merge"
    with Project.open(root) as p:
        store = ManifestStore(p.db)
        entry = store.entry(store.tree(resolve(p.db, "main").tree), shas[0])
        assert load_annotation_set(p.db, entry.annset) == [Box(1, 1, 1, 5, 5)]


def test_a_status_message_stays_readable_while_a_job_comes_and_goes(window, qtbot) -> None:
    # QStatusBar re-shows its normal widgets whenever its layout is rebuilt (a job's progress
    # widget added or removed); the window's status text then drew over the message.
    from labeldesk.gui.operations import run_op

    bar, label = window.statusBar(), window.status_label
    assert label.isVisible()
    bar.showMessage("Watched models on abc: ok")
    assert not label.isVisible()
    job = run_op(
        window,
        lambda project, progress, cancel: 42,
        lane=window.lanes.jobs,
        progress="status",
        title="a short job",
    )
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    qtbot.wait(50)  # the layout's queued re-show, then the status bar's own settling
    assert not label.isVisible() and bar.currentMessage() == "Watched models on abc: ok"
    bar.clearMessage()
    assert label.isVisible()
