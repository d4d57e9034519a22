"""Panels are built on the Qt-free ProjectState and the operations' lanes, not on the window;
a new version, wherever it comes from, reaches one handler."""

from __future__ import annotations

from PySide6.QtWidgets import QMainWindow

from labeldesk.app.state import ProjectState
from labeldesk.core.store.versions import all_versions, head
from labeldesk.gui.operations import Operations
from labeldesk.gui.versions_panel import VersionsPanel


def test_the_versions_panel_needs_only_the_state_and_the_lanes(qtbot, review_project) -> None:
    root, _ = review_project
    host = QMainWindow()  # any window: the panel asks nothing of it
    qtbot.addWidget(host)
    state, ops = ProjectState(), Operations()
    panel = VersionsPanel(state, ops, host)
    host.setCentralWidget(panel)
    ops.open(root, "lead-user")
    try:
        with qtbot.waitSignal(panel.historyShown, timeout=10000):
            state.opened(root, "lead-user", "lead")
        assert panel.buttons["Approve…"].isVisibleTo(panel)  # a lead's actions
        shown = [v.id for v in panel.model.versions]
        assert len(shown) == 2  # the images, then the classes (newest first)

        # its Revert runs on the writer and tells the state: one VERSION, the panel refreshes
        heard = []
        state.subscribe(lambda event, s: heard.append((event, s.version)))
        panel.table.selectRow(len(shown) - 1)  # the oldest
        with qtbot.waitSignal(panel.historyShown, timeout=10000):
            panel.revert_selected()
        (event, version), *_ = [h for h in heard if h[0] == "version"]
        assert panel.model.versions[0].id == version.id
        ops.lanes.reader.wait()
    finally:
        ops.close()
    from labeldesk.core.store.project import Project

    with Project.open(root) as p:
        assert head(p.db) == version.id and len(all_versions(p.db)) == 3


def test_a_revert_from_the_panel_goes_through_the_one_new_version_handler(window, qtbot):
    first = window.versions.model.versions[-1]
    window.versions.table.selectRow(len(window.versions.model.versions) - 1)
    committed = []
    window.committed.connect(committed.append)
    with qtbot.waitSignal(window.sessionLoaded, timeout=10000):  # the session was reopened
        window.versions.revert_selected()
    (version,) = committed  # once: the watched models are evaluated on it
    assert version.id != first.id and version.id == head(window.project.db)
    qtbot.waitUntil(lambda: window.versions.model.versions[0].id == version.id)


def test_the_diff_is_computed_off_the_gui_thread(window, qtbot, monkeypatch) -> None:
    import threading

    from labeldesk.app import versions as V
    from labeldesk.gui.diff_dialog import DiffDialog

    model = window.versions.model
    old, new = model.versions[-1].id, model.versions[0].id
    threads: list[threading.Thread] = []
    real = V.diff

    def diff_here(project, a, b):  # the real diff, noting the thread it runs on
        threads.append(threading.current_thread())
        return real(project, a, b)

    monkeypatch.setattr(V, "diff", diff_here)
    dialog = DiffDialog(window, window.ops, old, new)
    qtbot.addWidget(dialog)
    assert dialog.d is None and dialog.head.text() == "Comparing the versions…"  # opened at once
    with qtbot.waitSignal(dialog.ready, timeout=10000):
        pass
    assert threads and threads[0] is not threading.main_thread()
    assert (
        dialog.list.count()
        == dialog.d.counts()["images_changed"]
        + dialog.d.counts()["images_added"]
        + dialog.d.counts()["images_removed"]
    )
