"""The window's Remote menu: Push and Pull in the background, ahead/behind, pulled versions."""

from __future__ import annotations

from pathlib import Path

from labeldesk.core.boxes import Box
from labeldesk.core.remote.config import add_remote
from labeldesk.core.remote.sync import clone, push
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession


def test_push_and_pull_from_the_window(
    window, review_project, qtbot, tmp_path: Path, remote_url: str
) -> None:
    root, shas = review_project
    with Project.open(root, user="lead-user") as p:
        add_remote(p, "origin", remote_url)
    actions = window.remote_actions
    with qtbot.waitSignal(actions.refreshed, timeout=10000):  # read on the reader
        actions.refresh()
    assert actions.label.text() == "origin: not synced yet"
    assert actions.push_action.isEnabled()

    actions.push_action.trigger()
    qtbot.waitUntil(lambda: actions.job is None and "↑0 ↓0" in actions.label.text(), timeout=30000)

    # someone else commits on a clone and pushes
    other, _ = clone(remote_url, str(tmp_path / "other"), user="bob")
    s = ReviewSession.start(other)
    s.set_boxes(shas[1], [Box(1, 5.0, 5.0, 20.0, 20.0)])
    theirs = s.commit("bob's review").id
    push(other)
    other.close()

    actions.pull_action.trigger()
    qtbot.waitUntil(lambda: actions.job is None, timeout=30000)
    qtbot.waitUntil(lambda: "↓0" in actions.label.text(), timeout=10000)
    shown = lambda: {v.id for v in window.versions.model.items}  # noqa: E731
    qtbot.waitUntil(lambda: theirs in shown(), timeout=10000)  # the pulled version is listed
