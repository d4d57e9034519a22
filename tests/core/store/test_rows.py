"""Rows are read by column name: a SELECT list in another order reads the same objects."""

from __future__ import annotations

import pytest
from helpers import model_row

from labeldesk.core.inference import registry as models
from labeldesk.core.store import versions
from labeldesk.core.store.db import named
from labeldesk.core.store.importer import add_images


def _reversed(columns: str) -> str:
    return ", ".join(reversed([c.strip() for c in columns.split(",")]))


def test_versions_and_models_do_not_depend_on_column_order(project, images) -> None:
    add_images(project, images[:2])
    model_row(project, "ab" * 32, "detector")
    version = versions.resolve(project.db, "main")
    row = named(
        project.db, f"SELECT {_reversed(versions._COLUMNS)} FROM version WHERE id = ?", [version.id]
    ).fetchone()
    assert versions._row_to_version(row, version.tags) == version
    (info,) = models.list_models(project.db)
    row = named(project.db, f"SELECT {_reversed(models._COLUMNS)} FROM model").fetchone()
    assert models._row(row) == info


def test_a_column_the_select_lacks_fails_loudly(project, images) -> None:
    add_images(project, images[:1])
    row = named(project.db, "SELECT id, seq FROM version").fetchone()
    with pytest.raises(IndexError):
        versions._row_to_version(row)
