"""Splits assigned as a version: deterministic, complete, and never moving an assigned image."""

from __future__ import annotations

import pytest

from labeldesk.core.errors import InputError, NothingToCommitError
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.splits import assign_splits
from labeldesk.core.store.versions import resolve


def _splits(project, ref="main") -> dict[str, str | None]:
    store = ManifestStore(project.db)
    return {i: e.split for i, e in store.entries(store.tree(resolve(project.db, ref).tree))}


def test_every_image_gets_a_split_as_a_new_version(project, images) -> None:
    add_images(project, images)
    before = resolve(project.db, "main")
    report = assign_splits(project, val=0.3, test=0.2, seed=1)
    assert report.version.parents == [before.id]
    got = _splits(project)
    assert set(got.values()) <= {"train", "val", "test"} and None not in got.values()
    assert sum(report.assigned.values()) == len(images)
    assert report.version.provenance["splits"]["seed"] == 1
    # the version it was made from is unchanged: splits are a change like any other
    again = _splits(project, before.id)
    assert set(again.values()) == {None}


def test_the_assignment_is_deterministic_and_keeps_assigned_images(
    project, images, tmp_path
) -> None:
    from labeldesk.core.store.project import Project

    add_images(project, images[:6])
    assign_splits(project, val=0.5, seed=3)
    first = _splits(project)
    other = Project.init(tmp_path / "other", user="lead-user")
    add_images(other, images[:6])
    assign_splits(other, val=0.5, seed=3)
    assert _splits(other) == first
    other.close()
    # a new batch is split; the first six keep theirs
    add_images(project, images[6:])
    report = assign_splits(project, val=0.5, seed=3)
    assert report.kept == 6
    now = _splits(project)
    assert {i: now[i] for i in first} == first
    with pytest.raises(NothingToCommitError):
        assign_splits(project, val=0.5, seed=3)


def test_a_tiny_dataset_still_gets_a_val_image(project, images) -> None:
    add_images(project, images[:2])
    assign_splits(project, val=0.01, seed=0)
    assert "val" in _splits(project).values()


def test_bad_fractions_are_refused(project, images) -> None:
    add_images(project, images)
    for kwargs in ({"val": 1.5}, {"val": -0.1}, {"val": 0.6, "test": 0.5}):
        with pytest.raises(InputError):
            assign_splits(project, **kwargs)
