"""Review sessions: persisted edits, commit, and merging when main moved."""

from __future__ import annotations

import pytest
from helpers import snapshot

from labeldesk.core.boxes import Box
from labeldesk.core.errors import LabelDeskError, MergeConflictError, NothingToCommitError
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import head, resolve


@pytest.fixture
def shas(project, images) -> list[str]:
    return [a.sha256 for a in add_images(project, images).added]


def _labels(project: Project, image: str, ref: str = "main") -> list[Box]:
    store = ManifestStore(project.db)
    entry = store.entry(store.tree(resolve(project.db, ref).tree), image)
    return load_annotation_set(project.db, entry.annset)


def test_edits_survive_closing_the_project(project, shas) -> None:
    s = ReviewSession.start(project)
    cid = s.add_class("car")
    s.set_boxes(shas[0], [Box(cid, 1, 2, 3, 4)])
    root = project.root
    project.close()
    with Project.open(root, user="lead-user") as again:
        (info,) = ReviewSession.open_sessions(again)
        s2 = ReviewSession(again, info.id)
        assert s2.classes()[cid] == "car"
        assert s2.edits() == {shas[0]: [Box(cid, 1, 2, 3, 4)]}
        v = s2.commit("after reopen")
        assert v.classes == [{"id": 1, "name": "car"}]
        assert _labels(again, shas[0]) == [Box(1, 1, 2, 3, 4)]


def test_rejected_prelabels_are_recorded_but_not_labels(project, shas) -> None:
    s = ReviewSession.start(project)
    cid = s.add_class("car")
    kept = Box(cid, 1, 1, 5, 5, origin="model", state="accepted", score=0.9, model="m1")
    thrown = Box(cid, 9, 9, 5, 5, origin="model", state="rejected", score=0.3, model="m1")
    s.set_boxes(shas[0], [kept, thrown])
    v = s.commit("review")
    assert v.n_boxes == 1
    assert _labels(project, shas[0]) == [kept.with_(cls=1)]
    assert thrown in s.edits()[shas[0]]


def test_non_overlapping_sessions_merge_by_image(project, shas) -> None:
    a = ReviewSession.start(project)
    b = ReviewSession.start(project)
    ca, cb = a.add_class("car"), b.add_class("bus")
    a.set_boxes(shas[0], [Box(ca, 0, 0, 1, 1)])
    b.set_boxes(shas[1], [Box(cb, 0, 0, 2, 2)])
    b.set_boxes(shas[2], [Box(cb, 0, 0, 3, 3)])
    va = a.commit("a")
    vb = b.commit("b")
    assert vb.kind == "merge" and vb.parents == [va.id, va.parents[0]]
    assert vb.classes == [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]
    assert _labels(project, shas[0]) == [Box(1, 0, 0, 1, 1)]
    assert _labels(project, shas[1]) == [Box(2, 0, 0, 2, 2)]
    assert vb.n_boxes == 3


def test_conflict_is_reported_and_changes_nothing_until_resolved(project, shas) -> None:
    a = ReviewSession.start(project)
    b = ReviewSession.start(project)
    c = a.add_class("car")
    assert b.add_class("car") == c
    a.set_boxes(shas[0], [Box(c, 0, 0, 1, 1)])
    b.set_boxes(shas[0], [Box(c, 5, 5, 1, 1)])
    b.set_boxes(shas[1], [Box(c, 7, 7, 1, 1)])
    a.commit("a")
    before = snapshot(project)
    with pytest.raises(MergeConflictError) as exc:
        b.commit("b")
    (conflict,) = exc.value.conflicts
    assert conflict.image == shas[0] and conflict.theirs != conflict.ours
    assert snapshot(project) == before
    assert b.status == "open"

    v = b.commit("b, theirs", resolutions={shas[0]: "theirs"})
    assert _labels(project, shas[0]) == [Box(1, 0, 0, 1, 1)]
    assert _labels(project, shas[1]) == [Box(1, 7, 7, 1, 1)]
    assert v.kind == "merge"


def test_conflict_resolved_as_ours(project, shas) -> None:
    a, b = ReviewSession.start(project), ReviewSession.start(project)
    c = a.add_class("car")
    b.add_class("car")
    a.set_boxes(shas[0], [Box(c, 0, 0, 1, 1)])
    b.set_boxes(shas[0], [Box(c, 5, 5, 1, 1)])
    a.commit("a")
    b.commit("b", resolutions={shas[0]: "ours"})
    assert _labels(project, shas[0]) == [Box(1, 5, 5, 1, 1)]


def test_same_change_on_both_sides_is_no_conflict(project, shas) -> None:
    a, b = ReviewSession.start(project), ReviewSession.start(project)
    c = a.add_class("car")
    b.add_class("car")
    a.set_boxes(shas[0], [Box(c, 0, 0, 1, 1)])
    b.set_boxes(shas[0], [Box(c, 0, 0, 1, 1)])
    a.commit("a")
    b.commit("b")
    assert _labels(project, shas[0]) == [Box(1, 0, 0, 1, 1)]


def test_session_rules(project, shas) -> None:
    s = ReviewSession.start(project)
    with pytest.raises(NothingToCommitError):
        s.commit("empty")
    with pytest.raises(LabelDeskError, match="unknown class"):
        s.set_boxes(shas[0], [Box(42, 0, 0, 1, 1)])
    with pytest.raises(LabelDeskError, match="not in the session's base"):
        s.set_boxes("ab" * 32, [])
    with pytest.raises(ValueError):
        Box(1, 0, 0, 0, 5)
    s.set_boxes(shas[0], [])
    s.abandon()
    with pytest.raises(LabelDeskError, match="abandoned"):
        s.commit("too late")
    assert head(project.db) == resolve(project.db, "main").id
