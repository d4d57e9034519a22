"""Running core work off the GUI thread.

Each runner is one worker thread with its own connection to the project (SQLite connections stay
in the thread that made them). The window has two: a *writer* that saves every edit and commits,
in order, and a *worker* for long reads and jobs, so a long job never delays saving an edit.
Results and errors come back to the GUI thread through a queued signal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from labeldesk.core.store.project import Project


class ProjectRunner(QObject):
    # (callback, (value,)): the value travels inside a tuple so a None result never crosses
    # threads as a bare ``object`` argument (PySide has mis-counted references to None there).
    _relay = Signal(object, tuple)

    def __init__(self, root: Path, user: str, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.root, self.user = root, user
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._relay.connect(self._deliver)
        self.pending = 0

    def _project(self) -> Project:
        project = getattr(self._local, "project", None)
        if project is None:
            project = Project.open(self.root, user=self.user)
            self._local.project = project
        return project

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future:
        """Run ``fn(project, *args)`` on the runner's thread; call back on the GUI thread."""
        self.pending += 1
        future = self._executor.submit(lambda: fn(self._project(), *args))

        def finished(f: Future) -> None:
            error = f.exception()
            if error is not None:
                self._relay.emit(on_error or _raise_later, (error,))
            else:
                self._relay.emit(on_done or (lambda _v: None), (f.result(),))

        future.add_done_callback(finished)
        return future

    def _deliver(self, callback: Callable[[Any], None], boxed: tuple) -> None:
        self.pending -= 1
        callback(boxed[0])

    def wait(self) -> None:
        """Block until everything submitted so far has run (used at close, and by tests)."""
        self._executor.submit(lambda: None).result()

    def shutdown(self) -> None:
        """Finish queued work, then close the connection on the thread that opened it."""

        def close() -> None:
            project = getattr(self._local, "project", None)
            if project is not None:
                project.close()
                self._local.project = None

        self._executor.submit(close).result()
        self._executor.shutdown(wait=True)


def _raise_later(error: BaseException) -> None:
    raise error
