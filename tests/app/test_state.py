"""The project state the window's panels are built on: Qt-free, with change notifications."""

from __future__ import annotations

from pathlib import Path

from labeldesk.app import state as S
from labeldesk.app.changes import Changed
from labeldesk.app.state import ProjectState


def listen(state: ProjectState) -> list[str]:
    heard: list[str] = []
    state.subscribe(lambda event, s: heard.append(event))
    return heard


def test_opening_and_closing_are_announced_and_reset_what_is_current() -> None:
    state = ProjectState()
    heard = listen(state)
    state.opened(Path("/p"), "ann", "annotator")
    state.set_session(3, "abc")
    state.set_classes({1: "car"})
    assert (state.is_open, state.session_id, state.classes) == (True, 3, {1: "car"})
    state.closed()
    state.closed()  # closing twice says nothing the second time
    assert heard == [S.OPENED, S.SESSION, S.CLASSES, S.CLOSED]
    assert not state.is_open and state.session_id is None and state.classes == {}


def test_a_new_version_is_one_notification_after_the_rest() -> None:
    state = ProjectState()
    heard = listen(state)
    version = object()
    state.apply(Changed(version=version, versions=True, classes=True, evaluations=True))
    # the history, session and classes are implied by the new version: one VERSION, last
    assert heard == [S.EVALUATIONS, S.VERSION] and state.version is version


def test_changes_without_a_version_name_each_kind() -> None:
    state = ProjectState()
    heard = listen(state)
    state.apply(Changed(versions=True))
    state.apply(Changed(session=True, classes=True))
    state.apply(Changed(models=True))
    state.apply(Changed(report="only a report"))  # nothing changed: nothing said
    assert heard == [S.VERSIONS, S.SESSION, S.CLASSES, S.MODELS]


def test_subscribers_hear_in_order_and_can_leave() -> None:
    state = ProjectState()
    order: list[str] = []
    leave = state.subscribe(lambda e, s: order.append(f"first {e}"))
    state.subscribe(lambda e, s: order.append(f"second {e}"))
    state.set_runs(["run"])
    leave()
    state.set_runs([])
    assert order == ["first runs", "second runs", "second runs"]
