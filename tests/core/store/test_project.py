from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from labeldesk.core.errors import NotAProjectError, PermissionDeniedError, SchemaTooNewError
from labeldesk.core.store.project import Project
from labeldesk.core.store.schema import SCHEMA_VERSION


def test_init_creates_wal_database_with_schema_version(tmp_path: Path) -> None:
    p = Project.init(tmp_path / "p", user="ann")
    p.close()
    conn = sqlite3.connect(tmp_path / "p" / "labeldesk.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "image",
        "version",
        "ref",
        "annotation_set",
        "manifest_bucket",
        "manifest_tree",
        "review_session",
        "session_edit",
        "_sqlite_migrations",
    } <= tables
    assert (tmp_path / "p" / "objects" / "sha256").is_dir()


def test_init_refuses_an_existing_project(tmp_path: Path) -> None:
    Project.init(tmp_path / "p").close()
    with pytest.raises(NotAProjectError, match="already holds"):
        Project.init(tmp_path / "p")


def test_open_refuses_a_folder_without_project(tmp_path: Path) -> None:
    with pytest.raises(NotAProjectError, match="not a LabelDesk project"):
        Project.open(tmp_path)


def test_database_from_a_newer_labeldesk_is_refused_and_left_alone(tmp_path: Path) -> None:
    Project.init(tmp_path / "p").close()
    db_path = tmp_path / "p" / "labeldesk.db"
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="newer LabelDesk"):
        Project.open(tmp_path / "p")
    assert db_path.read_bytes() == before


def test_reopening_applies_no_migration_twice(tmp_path: Path) -> None:
    Project.init(tmp_path / "p").close()
    for _ in range(2):
        with Project.open(tmp_path / "p") as p:
            n = p.db.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0]
            assert n == SCHEMA_VERSION


def test_creator_is_lead_and_others_are_annotators(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", user="lead1") as p:
        assert p.role_of() == "lead"
        assert p.role_of("someone") == "annotator"
        p.set_member("bob", "lead")
        assert p.role_of("bob") == "lead"
    with Project.open(tmp_path / "p", user="carol") as p:
        with pytest.raises(PermissionDeniedError):
            p.set_member("carol", "lead")
        assert p.role_of() == "annotator"
