"""The open project as the window's panels see it, without Qt: a model that widgets subscribe to.

:class:`ProjectState` holds what several panels show (the project, its role, the current
version, the review session, its classes, the stored prediction runs) and tells subscribers
what changed. Operations report what they changed (:class:`~labeldesk.app.changes.Changed`);
the window hands that to :meth:`ProjectState.apply`, and each panel refreshes what concerns it.
So "a new version exists" has one meaning and one path, wherever the version came from (a
review commit, an import, added images, a revert).

Callbacks run on the thread that calls ``apply``/``set_*``: in the window, the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .changes import Changed

#: The events a subscriber can receive.
OPENED = "opened"  # a project was opened (or another one)
CLOSED = "closed"  # the project was closed
VERSION = "version"  # a new version exists (``state.version`` is it)
VERSIONS = "versions"  # the history's rows changed (tags, decisions, fetched versions)
SESSION = "session"  # the review session changed (a new one, another source, reloaded)
CLASSES = "classes"  # the session's class list changed
RUNS = "runs"  # the stored prediction runs of the session's version were read
EVALUATIONS = "evaluations"  # stored evaluations changed
MODELS = "models"  # registered models changed
EVENTS = (OPENED, CLOSED, VERSION, VERSIONS, SESSION, CLASSES, RUNS, EVALUATIONS, MODELS)

Callback = Callable[[str, "ProjectState"], None]


@dataclass
class ProjectState:
    """What is open and current; subscribers hear of every change, in order."""

    root: Path | None = None
    user: str | None = None
    role: str | None = None
    version: Any = None  # the newest version made here (core.versions.Version), if any
    session_id: int | None = None
    base_id: str | None = None  # the version the session reviews
    classes: dict[int, str] = field(default_factory=dict)
    runs: list[Any] = field(default_factory=list)  # core.predictions.Run, newest first
    _subscribers: list[Callback] = field(default_factory=list, repr=False)

    # -- subscribing -------------------------------------------------------------------------
    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event, state)`` on every change; returns the unsubscribe call."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _notify(self, *events: str) -> None:
        for event in events:
            for callback in list(self._subscribers):
                callback(event, self)

    @property
    def is_open(self) -> bool:
        return self.root is not None

    # -- changes -----------------------------------------------------------------------------
    def opened(self, root: Path, user: str, role: str) -> None:
        self.root, self.user, self.role = root, user, role
        self.version = None
        self._clear_session()
        self._notify(OPENED)

    def closed(self) -> None:
        if self.root is None:
            return
        self.root = self.user = self.role = self.version = None
        self._clear_session()
        self._notify(CLOSED)

    def _clear_session(self) -> None:
        self.session_id = self.base_id = None
        self.classes, self.runs = {}, []

    def set_session(self, session_id: int | None, base_id: str | None) -> None:
        self.session_id, self.base_id = session_id, base_id
        self._notify(SESSION)

    def set_classes(self, classes: Mapping[int, str]) -> None:
        self.classes = dict(classes)
        self._notify(CLASSES)

    def set_runs(self, runs: list[Any]) -> None:
        self.runs = list(runs)
        self._notify(RUNS)

    def apply(self, changed: Changed) -> None:
        """What an operation changed, one notification per kind. A new version implies the
        history, the session and the classes changed: its one ``VERSION`` notification comes
        last (its handler starts a new session, after the rest has refreshed)."""
        events = []
        if changed.evaluations:
            events.append(EVALUATIONS)
        if changed.models:
            events.append(MODELS)
        if changed.version is not None:
            self.version = changed.version
            events.append(VERSION)
        else:
            events += [
                e for e, on in ((VERSIONS, changed.versions), (SESSION, changed.session)) if on
            ]
            if changed.classes:
                events.append(CLASSES)
        self._notify(*events)
