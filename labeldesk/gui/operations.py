"""The one way the GUI runs work: :func:`run_op`, off the GUI thread, result or error back on it.

In the manner of Anki's ``CollectionOp``/``QueryOp``: an *operation* is a plain function of the
project (the ``labeldesk.app`` functions); :func:`run_op` runs it on a :class:`Lane` and calls
``on_done(value)`` or ``on_error(error)`` on the GUI thread, optionally showing progress with a
Cancel button (a window-modal dialog, or a bar in the status bar while the user keeps working).

A lane is where an operation runs, each with its own connection to the project (SQLite
connections stay in the thread that made them):

* the **writer**: one thread, in order; every edit, commit, tag, revert, class and session
  change goes here, so the database is written in one order and the window never waits on it;
* the **reader**: one thread for long reads (loading the session, ranking the queue, a diff),
  so a long read never delays saving an edit;
* the **lookup**: one thread for the small reads of the image on screen (its suggestions), so
  they never wait behind a long read;
* **jobs**: a thread of its own per operation, for work that takes minutes (inference,
  training, network) and must hold up neither of the others; the operation's writes are
  core's own transactions.

The loader's decode pool (:mod:`.loader`) is separate: it handles pixels, not the project.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

from labeldesk.app.project import open_project
from labeldesk.core.errors import CancelledError, InputError, LabelDeskError

if TYPE_CHECKING:
    from labeldesk.core.store.project import Project

Progress = Callable[[int, int, str], None]
Cancel = Callable[[], bool]


class Lane:
    """Runs calls with a project connection of its own: on one thread in order, or
    (``dedicated``) each on a fresh thread that opens and closes its connection. A dedicated
    lane without a ``root`` runs calls that need no project (they get None)."""

    def __init__(
        self, root: Path | None, user: str | None, name: str, *, dedicated: bool = False
    ) -> None:
        self.root, self.user, self.name, self.dedicated = root, user, name, dedicated
        self._local = threading.local()
        self._executor = None if dedicated else ThreadPoolExecutor(1, thread_name_prefix=name)

    def _project(self) -> Project:
        project = getattr(self._local, "project", None)
        if project is None:
            assert self.root is not None
            project = open_project(self.root, self.user)
            self._local.project = project
        return project

    def start(self, call: Callable[[Any], Any], finished: Callable[[bool, Any], None]) -> Any:
        """Run ``call(project)``; ``finished(ok, value_or_error)`` runs on the lane's thread.
        Returns the Future (shared lanes) or the Thread (dedicated ones)."""

        def shared() -> None:
            try:
                value = call(self._project())
            except BaseException as e:
                finished(False, e)
            else:
                finished(True, value)

        if self._executor is not None:
            return self._executor.submit(shared)

        def own() -> None:
            project = None
            try:
                if self.root is not None:
                    project = open_project(self.root, self.user)
                value = call(project)
            except BaseException as e:
                finished(False, e)
            else:
                finished(True, value)
            finally:
                if project is not None:
                    project.close()

        thread = threading.Thread(target=own, name=self.name, daemon=True)
        thread.start()
        return thread

    def wait(self) -> None:
        """Block until everything submitted so far has run (used at close, and by tests)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result()

    def shutdown(self) -> None:
        """Finish queued work, then close the connection on the thread that opened it."""
        if self._executor is None:
            return

        def close() -> None:
            project = getattr(self._local, "project", None)
            if project is not None:
                project.close()
                self._local.project = None

        self._executor.submit(close).result()
        self._executor.shutdown(wait=True)


class Lanes:
    """The lanes of one open project: ``writer``, ``reader`` and ``jobs``."""

    def __init__(self, root: Path, user: str) -> None:
        self.writer = Lane(root, user, "labeldesk-writer")
        self.reader = Lane(root, user, "labeldesk-reader")
        # small reads for the image on screen (its suggestions): never behind a long read
        self.lookup = Lane(root, user, "labeldesk-lookup")
        self.jobs = Lane(root, user, "labeldesk-job", dedicated=True)

    def shutdown(self) -> None:
        for lane in (self.writer, self.reader, self.lookup):
            lane.shutdown()


class Operations:
    """The open project's lanes, for the window and its panels: run an operation on a lane
    by name (``"writer"``, ``"reader"``, ``"jobs"``); nothing runs while no project is open."""

    def __init__(self) -> None:
        self.lanes: Lanes | None = None

    def open(self, root: Path, user: str) -> None:
        self.close()
        self.lanes = Lanes(root, user)

    def close(self) -> None:
        """Finish what was queued (every edit is saved), then close the connections."""
        if self.lanes is not None:
            self.lanes.shutdown()
            self.lanes = None

    def run(
        self, parent: QObject, op: Callable[..., Any], *, lane: str = "reader", **options: Any
    ) -> Op | None:
        """:func:`run_op` on the named lane of the open project; None when none is open."""
        if self.lanes is None:
            return None
        return run_op(parent, op, lane=getattr(self.lanes, lane), **options)

    def call(self, op: Callable[[Any], Any], *, lane: str = "writer") -> Any:
        """Run ``op(project)`` on a shared lane and wait for its value (or its error): only
        for the few steps that must finish before the window goes on, such as closing."""
        assert self.lanes is not None and lane in ("writer", "reader")
        answer: list[tuple[bool, Any]] = []
        getattr(self.lanes, lane).start(op, lambda ok, value: answer.append((ok, value))).result()
        ok, value = answer[0]
        if not ok:
            raise value
        return value


class Op(QObject):
    """One running operation. ``finished(value)`` or ``failed(error)`` fire on the GUI thread
    after ``on_done``/``on_error``; ``cancel()`` asks a cancellable operation to stop."""

    finished = Signal(object)
    failed = Signal(object)
    # (ok, (value,)): the value travels inside a tuple so a None result never crosses threads
    # as a bare ``object`` argument (PySide has mis-counted references to None there).
    _relay = Signal(bool, tuple)
    _progress = Signal(tuple)  # whatever the operation reports, as the arguments it gave

    def __init__(self, parent: QObject, title: str) -> None:
        super().__init__(parent)
        self.title = title
        self.cancelled = threading.Event()
        self.running = True
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None  # a jobs-lane operation's own thread
        self.future: Any = None
        self.delivered_on: threading.Thread | None = None  # the thread the result reached
        self._ui: Any = None
        self._on_done: Callable[[Any], None] | None = None
        self._on_error: Callable[[BaseException], None] | None = None

    def _deliver(self, ok: bool, boxed: tuple) -> None:
        self.running = False
        self.delivered_on = threading.current_thread()
        if self._ui is not None:
            self._ui.close()
        if ok:
            self.value = boxed[0]
            if self._on_done is not None:
                self._on_done(boxed[0])
            self.finished.emit(boxed[0])
        else:
            self.error = boxed[0]
            if self._on_error is not None:
                self._on_error(boxed[0])
            else:
                show_error(_widget(self.parent()).window(), self.title, boxed[0])
            self.failed.emit(boxed[0])

    def wait(self) -> None:
        """Block until the result is delivered: for a key that acts on what the operation
        reads (Space accepts the suggestions shown), where the lookup takes milliseconds."""
        if not self.running:
            return
        if self.future is not None:
            self.future.result()
        elif self.thread is not None:
            self.thread.join()
        # the delivery is queued for this object: run it now rather than on the next loop
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)

    @property
    def widget(self) -> QWidget | None:
        """The status-bar bar of a ``progress="status"`` operation (None otherwise)."""
        return getattr(self._ui, "widget", None)

    def cancel(self) -> None:
        self.cancelled.set()
        if self._ui is not None:
            self._ui.cancelling()


def run_op(
    parent: QObject,
    op: Callable[..., Any],
    *,
    lane: Lane,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    progress: Literal["dialog", "status"] | None = None,
    on_progress: Callable[..., None] | None = None,
    cancellable: bool = False,
    title: str = "LabelDesk",
) -> Op:
    """Run ``op`` on ``lane``; ``on_done(value)`` or ``on_error(error)`` on the GUI thread.

    ``op`` is called as ``op(project)``, or, when ``progress``, ``on_progress`` or
    ``cancellable`` is given, as ``op(project, report, cancel)`` with core's callbacks:
    ``cancel() -> bool`` and ``report(*args)`` (``report(done, total, what)`` for the shown
    progress; ``on_progress(*args)`` receives whatever was reported, on the GUI thread).
    ``progress="dialog"``: a window-modal progress dialog with Cancel; ``"status"``: a bar with
    Cancel in the window's status bar (the user keeps working).
    Without ``on_error`` the error is shown to the user (a cancel shows nothing). Nothing is
    delivered once ``parent`` is gone.
    """
    handle = Op(parent, title)
    if progress == "dialog":
        handle._ui = _DialogProgress(_widget(parent), title, handle)
    elif progress == "status":
        handle._ui = _StatusProgress(_widget(parent), title, handle)
    with_callbacks = progress is not None or on_progress is not None or cancellable

    def report(*args: Any) -> None:
        handle._progress.emit(args)

    def call(project: Project) -> Any:
        if with_callbacks:
            return op(project, report, handle.cancelled.is_set)
        return op(project)

    if handle._ui is not None:
        handle._progress.connect(lambda args: handle._ui.show(*args))
    if on_progress is not None:
        handle._progress.connect(lambda args: on_progress(*args))
    handle._on_done, handle._on_error = on_done, on_error
    # A bound method of the handle (which lives on the GUI thread): the slot runs there.
    handle._relay.connect(handle._deliver, Qt.ConnectionType.QueuedConnection)
    started = lane.start(call, lambda ok, value: handle._relay.emit(ok, (value,)))
    if isinstance(started, threading.Thread):
        handle.thread = started
    else:
        handle.future = started
    return handle


def _widget(parent: QObject) -> QWidget:
    while parent is not None and not isinstance(parent, QWidget):
        parent = parent.parent()
    assert parent is not None, "run_op needs a widget among its parent's ancestors"
    return parent


class _DialogProgress:
    """A window-modal progress dialog with Cancel (shown only if the job takes a while)."""

    def __init__(self, parent: QWidget, title: str, op: Op) -> None:
        self.dialog = QProgressDialog(title, "Cancel", 0, 0, parent)
        self.dialog.setWindowTitle(title)
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.dialog.canceled.connect(op.cancelled.set)

    def show(self, done: int, total: int, what: str) -> None:
        self.dialog.setMaximum(max(total, 1))
        self.dialog.setValue(min(done, max(total, 1)))
        self.dialog.setLabelText(f"{what}: {done}/{total}")

    def cancelling(self) -> None:
        self.dialog.setLabelText(f"{self.dialog.windowTitle()}: cancelling…")

    def close(self) -> None:
        self.dialog.reset()


class _StatusProgress:
    """A bar with a Cancel button in the status bar, for work the user goes on beside."""

    def __init__(self, parent: QWidget, title: str, op: Op) -> None:
        from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton

        self.title = title
        self.widget = QWidget()
        lay = QHBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(220)
        self.bar.setRange(0, 0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cancel_button.clicked.connect(op.cancel)
        for w in (self.label, self.bar, self.cancel_button):
            lay.addWidget(w)
        parent.window().statusBar().addPermanentWidget(self.widget)

    def show(self, done: int, total: int, what: str) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, max(total, 1)))
        self.label.setText(f"{what}: {done}/{total}")

    def cancelling(self) -> None:
        self.label.setText(f"{self.title}: cancelling…")

    def close(self) -> None:
        self.widget.setParent(None)
        self.widget.deleteLater()


def show_error(parent: QWidget, title: str, error: BaseException) -> None:
    """An error as the user should see it: the reason, and for bad input every problem."""
    if isinstance(error, CancelledError):
        return
    box = QMessageBox(QMessageBox.Icon.Warning, title, str(error), parent=parent)
    if isinstance(error, InputError):
        box.setText(error.summary)
        box.setInformativeText(f"{len(error.problems)} problem(s); nothing was changed.")
        box.setDetailedText("\n".join(str(p) for p in error.problems))
    elif not isinstance(error, LabelDeskError):  # a bug: its traceback goes to the terminal
        import traceback

        traceback.print_exception(error)
        box.setText(f"{type(error).__name__}: {error}")
    box.open()
    parent.last_message = box  # type: ignore[attr-defined]  # kept alive, reachable for tests
