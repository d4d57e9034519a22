"""Versions, refs, approval and revert."""

from __future__ import annotations

import sqlite3

import pytest

from labeldesk.core.boxes import Box
from labeldesk.core.errors import (
    ImmutableError,
    LabelDeskError,
    NothingToCommitError,
    PermissionDeniedError,
    RefError,
    RefMovedError,
)
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.version_diff import diff
from labeldesk.core.store.versions import (
    decide,
    delete_version,
    get_version,
    head,
    log,
    resolve,
    revert,
    set_ref,
    tag,
)


@pytest.fixture
def history(project, images):
    """import -> review (2 boxes on image 0) -> review (image 1 gets a box, image 0 loses one)."""
    r = add_images(project, images)
    shas = [a.sha256 for a in r.added]
    s = ReviewSession.start(project)
    cat = s.add_class("cat")
    s.set_boxes(shas[0], [Box(cat, 1, 1, 10, 10), Box(cat, 20, 20, 5, 5)])
    v1 = s.commit("first")
    s = ReviewSession.start(project)
    cat = s.add_class("cat")  # now a real id, no longer provisional
    assert cat == 1
    s.set_boxes(shas[1], [Box(cat, 2, 2, 4, 4)])
    s.set_boxes(shas[0], [Box(cat, 1, 1, 10, 10)])
    v2 = s.commit("second")
    return project, shas, r.version, v1, v2


def test_refs_resolve_by_name_id_prefix_and_ancestry(history) -> None:
    project, _, v0, v1, v2 = history
    db = project.db
    assert resolve(db, "main").id == v2.id == head(db)
    assert resolve(db, "main~1").id == v1.id
    assert resolve(db, "main~2").id == v0.id
    assert resolve(db, v1.id[:8]).id == v1.id
    assert resolve(db, v1.id).id == v1.id
    tag(project, "rel-1", "main~1")
    assert resolve(db, "rel-1").id == v1.id
    assert resolve(db, "rel-1~1").id == v0.id
    for bad in ("main~3", "nosuchtag", "ffff0000"):
        with pytest.raises(RefError):
            resolve(db, bad)
    assert [v.id for v in log(db)] == [v2.id, v1.id, v0.id]
    assert [v.tags for v in log(db)] == [[], ["rel-1"], []]


def test_version_counts_classes_and_provenance(history) -> None:
    project, shas, v0, v1, v2 = history
    assert (v0.n_images, v0.n_boxes, v0.kind, v0.classes) == (10, 0, "import", [])
    assert (v1.n_boxes, v1.kind, v1.parents) == (2, "review", [v0.id])
    assert v1.classes == [{"id": 1, "name": "cat"}]
    assert (v2.n_boxes, v2.parents) == (2, [v1.id])
    assert v2.provenance["base"] == v1.id and v2.provenance["reviewed_images"] == 2


def test_diff_reports_images_and_boxes(history) -> None:
    project, shas, v0, v1, v2 = history
    d = diff(project, v1.id, v2.id)
    assert d.counts() == {
        "images_added": 0,
        "images_removed": 0,
        "images_changed": 2,
        "boxes_added": 1,
        "boxes_removed": 1,
    }
    assert {i.image for i in d.images} == {shas[0], shas[1]}
    assert diff(project, "main", "main").images == []
    assert diff(project, v0.id, v1.id).classes_added == ["cat"]


def test_tags_are_compare_and_swap(history) -> None:
    project, _, v0, v1, v2 = history
    tag(project, "t", v1.id)
    with pytest.raises(LabelDeskError, match="exists"):
        tag(project, "t", v2.id)
    tag(project, "t", v2.id, force=True)
    assert resolve(project.db, "t").id == v2.id
    with pytest.raises(LabelDeskError, match="invalid tag"):
        tag(project, "main", v1.id)
    with project.transaction(), pytest.raises(RefMovedError):
        set_ref(project.db, "main", v0.id, v1.id, kind="branch", user="x")
    assert head(project.db) == v2.id


def test_approved_versions_cannot_be_altered_or_deleted(history) -> None:
    project, _, v0, v1, v2 = history
    approved = decide(project, v1.id, "approved", "looks right")
    assert (approved.status, approved.status_by, approved.status_note) == (
        "approved",
        "lead-user",
        "looks right",
    )
    with pytest.raises(ImmutableError):
        decide(project, v1.id, "rejected", "changed my mind")
    with pytest.raises(ImmutableError):
        delete_version(project, v1.id)
    # even straight SQL cannot: the database itself refuses
    with pytest.raises(sqlite3.IntegrityError, match="approved"):
        project.db.execute("DELETE FROM version WHERE id = ?", [v1.id])
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        project.db.execute("UPDATE version SET message = 'x' WHERE id = ?", [v2.id])
    assert get_version(project.db, v1.id).status == "approved"


def test_reject_needs_a_note_and_may_later_be_approved(history) -> None:
    project, _, v0, v1, v2 = history
    with pytest.raises(LabelDeskError, match="note"):
        decide(project, v2.id, "rejected", "  ")
    assert decide(project, v2.id, "rejected", "boxes too loose").status == "rejected"
    assert decide(project, v2.id, "approved", "fixed upstream").status == "approved"
    rows = project.db.execute(
        "SELECT decision FROM decision WHERE version = ? ORDER BY id", [v2.id]
    ).fetchall()
    assert [r[0] for r in rows] == ["rejected", "approved"]


def test_annotators_cannot_approve(history, tmp_path) -> None:
    project, _, v0, v1, v2 = history
    with Project.open(project.root, user="annie") as other:
        with pytest.raises(PermissionDeniedError):
            decide(other, v1.id, "approved", "")
        assert get_version(other.db, v1.id).status == "committed"


def test_revert_creates_a_version_with_the_old_content(history) -> None:
    project, _, v0, v1, v2 = history
    r = revert(project, v0.id)
    assert (r.kind, r.parents, r.tree, r.classes) == ("rollback", [v2.id], v0.tree, v0.classes)
    assert head(project.db) == r.id
    with pytest.raises(NothingToCommitError):
        revert(project, v0.id)


def test_delete_only_leaf_unnamed_versions(history) -> None:
    project, _, v0, v1, v2 = history
    with pytest.raises(LabelDeskError, match="named by main"):
        delete_version(project, v2.id)
    with pytest.raises(LabelDeskError):
        delete_version(project, v1.id)
