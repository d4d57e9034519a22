"""The app operations the window runs: plain functions of a real project, no Qt.

Each returns what it changed (:class:`labeldesk.app.changes.Changed`), so the window refreshes
that; a failed one leaves the project as it was.
"""

from __future__ import annotations

import sys

import pytest
from helpers import snapshot, write_image

from labeldesk.app import exchange, review, versions
from labeldesk.app import project as project_ops
from labeldesk.app.changes import Changed
from labeldesk.core.boxes import Box
from labeldesk.core.errors import InputError, LabelDeskError, MergeConflictError
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import all_versions, get_version, head


@pytest.fixture
def shas(project, images) -> list[str]:
    shas = [a.sha256 for a in add_images(project, images[:3]).added]
    s = ReviewSession.start(project)
    car = s.add_class("car")
    s.set_boxes(shas[0], [Box(car, 1, 1, 20, 20, state="imported")])
    s.commit("one label")
    return shas


def test_a_review_session_from_start_to_commit(project, shas) -> None:
    sid = review.start_session(project)
    assert review.start_session(project) == sid  # the reviewer's open session, not another
    ws = review.load_workspace(project, sid)
    assert [r.sha for r in ws.rows] == sorted(shas, key=lambda s: ws.rows[ws.index[s]].name)

    # the id the window shows at once is the one the session gives the class
    cid = review.next_class_id(ws.classes, "truck")
    changed = review.add_class(project, sid, "truck")
    assert changed == Changed(classes=True, report=cid) and cid < 0
    assert review.next_class_id({**ws.classes, cid: "truck"}, " truck ") == cid  # kept
    with pytest.raises(LabelDeskError, match="needs a name"):
        review.next_class_id(ws.classes, "  ")

    assert review.save_edit(project, sid, shas[1], [Box(cid, 2, 2, 9, 9)]) == shas[1]
    before = head(project.db)
    changed = review.commit_session(project, sid, "trucks", {"method": "manual"})
    assert changed.new_version and changed.version.id == head(project.db) != before
    assert changed.version.parents == [before]
    assert review.start_session(project) != sid  # a commit closes the session


def test_a_commit_that_conflicts_changes_nothing(project, shas) -> None:
    sid = review.start_session(project)
    other = ReviewSession.start(project)  # someone else commits the same image first
    other.set_boxes(shas[0], [])
    other.commit("theirs")
    review.save_edit(project, sid, shas[0], [Box(1, 3, 3, 5, 5)])
    before = snapshot(project)
    with pytest.raises(MergeConflictError):
        review.commit_session(project, sid, "ours", {"method": "manual"})
    assert snapshot(project) == before


def test_version_operations_report_what_changed(project, shas) -> None:
    first, main = all_versions(project.db)[0].id, head(project.db)
    assert versions.tag(project, "v1", main) == Changed(versions=True)
    assert get_version(project.db, main).tags == ["v1"]
    assert versions.decide(project, main, "approved", "fine") == Changed(versions=True)
    assert get_version(project.db, main).status == "approved"

    changed = versions.revert(project, first)
    assert changed.version.id == head(project.db) and changed.version.id not in (first, main)

    history = versions.history(project)
    assert [v.id for v in history.versions][:1] == [changed.version.id]  # newest first
    view = versions.diff(project, first, main)
    assert (view.old.id, view.new.id) == (first, main)
    assert view.diff.counts()["boxes_added"] == 1
    item = next(i for i in view.diff.images if i.image == shas[0])
    shown = versions.diff_image(project, item.image, item.old_annset, item.new_annset)
    assert shown.before == [] and len(shown.after) == 1 and shown.size == (64, 48)


def test_a_bad_import_is_itemised_and_leaves_the_project_as_it_was(project, shas, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"images": [{"id": 1, "file_name": "../x.png", "width": 5, "height": 5}],'
        ' "annotations": [], "categories": []}'
    )
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        exchange.import_dataset(project, "coco", ([str(bad)], str(tmp_path)), _quiet, _never)
    assert e.value.problems
    assert snapshot(project) == before


def test_export_then_import_round_trip(project, shas, tmp_path) -> None:
    out = tmp_path / "yolo"
    changed = exchange.export_dataset(project, "yolo", out, progress=_quiet, cancel=_never)
    assert changed.version is None and changed.report.n_images == 3
    fresh = tmp_path / "fresh"
    project_ops.init_project(fresh, "lead-user")
    with project_ops.open_project(fresh, "lead-user") as p:
        changed = exchange.import_dataset(p, "yolo", (str(out),), _quiet, _never)
        assert changed.new_version and changed.version.id == head(p.db)


def test_add_images_makes_a_version_only_when_something_is_new(project, shas, tmp_path) -> None:
    folder = tmp_path / "more"
    write_image(folder / "new.png", seed=99)
    changed = project_ops.add_images(project, str(folder), _quiet, _never)
    assert changed.new_version and len(changed.report.added) == 1
    again = project_ops.add_images(project, str(folder), _quiet, _never)
    assert again.version is None and len(again.report.duplicates) == 1


def test_operations_stay_free_of_qt() -> None:
    # run in a fresh interpreter: importing every app module loads no Qt
    import subprocess

    code = (
        "import sys, labeldesk.app.exchange, labeldesk.app.project, labeldesk.app.review, "
        "labeldesk.app.state, labeldesk.app.training, labeldesk.app.validation, "
        "labeldesk.app.versions, labeldesk.app.remote; "
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'matplotlib'))))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def _quiet(*_args) -> None:
    pass


def _never() -> bool:
    return False
