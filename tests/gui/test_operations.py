"""run_op: an operation runs off the GUI thread; its result, error or cancel come back on it."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtWidgets import QMainWindow

from labeldesk.core.errors import CancelledError, InputError, Problem
from labeldesk.gui.operations import Lanes, run_op


@pytest.fixture
def lanes(project):
    lanes = Lanes(project.root, project.user)
    yield lanes
    lanes.shutdown()


@pytest.fixture
def parent(qtbot):
    w = QMainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def test_the_result_reaches_the_gui_thread(qtbot, parent, lanes) -> None:
    gui = threading.current_thread()
    ran_on: list[threading.Thread] = []
    got: list = []

    def op(project):
        ran_on.append(threading.current_thread())
        return project.db.execute("SELECT count(*) FROM version").fetchone()[0]

    for lane in (lanes.writer, lanes.reader, lanes.jobs):
        with qtbot.waitSignal(run_op(parent, op, lane=lane, on_done=got.append).finished):
            pass
    assert got == [0, 0, 0]
    assert gui not in ran_on and len(set(ran_on)) == 3  # writer, reader, a job's own thread
    # None crosses threads too (it travels boxed)
    handle = run_op(parent, lambda p: None, lane=lanes.writer)
    with qtbot.waitSignal(handle.finished):
        pass
    assert handle.delivered_on is gui and handle.value is None and not handle.running


def test_wait_delivers_at_once_on_the_gui_thread(qtbot, parent, lanes) -> None:
    # For a key that acts on what an operation reads (Space on the suggestions shown): no
    # event loop runs here, yet after wait() the result has been handed over.
    got: list = []
    handle = run_op(parent, lambda p: 7, lane=lanes.lookup, on_done=got.append)
    handle.wait()
    assert got == [7] and not handle.running
    assert handle.delivered_on is threading.current_thread()
    handle.wait()  # once delivered, a no-op
    qtbot.wait(20)  # and the event loop does not deliver it a second time
    assert got == [7]


def test_the_writer_runs_in_order(qtbot, parent, lanes) -> None:
    order: list[int] = []
    handles = [run_op(parent, lambda p, i=i: order.append(i), lane=lanes.writer) for i in range(20)]
    lanes.writer.wait()
    with qtbot.waitSignal(handles[-1].finished):
        pass
    assert order == list(range(20))


def test_an_error_reaches_the_gui_thread_and_is_shown(qtbot, parent, lanes) -> None:
    errors: list[BaseException] = []

    def bad(project):
        raise InputError("bad input", [Problem("a.json", "no images"), Problem("b", "bad")])

    handle = run_op(parent, bad, lane=lanes.reader, on_error=errors.append)
    with qtbot.waitSignal(handle.failed):
        pass
    assert isinstance(errors[0], InputError) and handle.delivered_on is threading.current_thread()
    # without on_error the user sees it, every problem listed
    with qtbot.waitSignal(run_op(parent, bad, lane=lanes.jobs, title="Import").failed):
        pass
    box = parent.last_message
    assert box.windowTitle() == "Import" and len(box.detailedText().splitlines()) == 2


def test_cancel_stops_the_operation_and_shows_nothing(qtbot, parent, lanes) -> None:
    started = threading.Event()
    progress: list[tuple] = []

    def long(project, report, cancel):
        report(0, 10, "working")
        started.set()
        while not cancel():
            threading.Event().wait(0.01)  # the core loops check cancel between items
        raise CancelledError("cancelled")

    handle = run_op(
        parent,
        long,
        lane=lanes.jobs,
        progress="status",
        cancellable=True,
        on_progress=lambda *args: progress.append(args),
    )
    assert handle.widget is not None  # a bar with Cancel in the status bar
    qtbot.waitUntil(handle.widget.isVisible)
    assert started.wait(10)
    handle.cancel()
    with qtbot.waitSignal(handle.failed):
        pass
    assert isinstance(handle.error, CancelledError)
    assert progress == [(0, 10, "working")]
    assert getattr(parent, "last_message", None) is None  # a cancel is not an error box
    qtbot.waitUntil(lambda: handle.widget.parent() is None)  # the bar is gone


def test_nothing_is_delivered_once_the_parent_is_gone(qtbot, lanes) -> None:
    w = QMainWindow()
    release = threading.Event()
    got: list = []
    run_op(w, lambda p: release.wait(10) and 1, lane=lanes.reader, on_done=got.append)
    w.deleteLater()
    qtbot.wait(10)
    release.set()
    lanes.reader.wait()
    qtbot.wait(50)
    assert got == []


def test_the_window_never_writes_on_the_gui_thread(window, qtbot, review_project) -> None:
    # Every statement the GUI thread's own connection runs is recorded (SQLite's trace hook):
    # adding a class, editing, committing and starting the next session all write through the
    # writer lane, so none of them is a write here.
    _, shas = review_project
    statements: list[str] = []
    window.project.db.conn.set_trace_callback(statements.append)
    try:
        first = window.ws.session.id
        cid = window.add_class("truck")
        window.edit([*window.boxes_of(shas[0]), _box(cid)], "draw a truck")
        with qtbot.waitSignal(window.sessionLoaded, timeout=20000):
            window.commit_version("trucks")  # then a new session is started and loaded
        assert window.ws.session.id != first
    finally:
        window.project.db.conn.set_trace_callback(None)
    writes = [s for s in statements if s.split(None, 1)[0].upper() in WRITES]
    assert statements and writes == []


WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "COMMIT"}


def _box(cls: int):
    from labeldesk.core.boxes import Box

    return Box(cls, 5, 5, 20, 20, state="added", origin="human")
