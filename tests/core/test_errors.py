"""Known storage failures become clear errors and leave everything as it was.

A ``labeldesk.db`` that is no SQLite file or no LabelDesk project is refused without a byte
changed; a project that cannot be written opens read-only, reads work and writes are refused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import snapshot

from labeldesk.core.errors import (
    DiskFullError,
    NotADatabaseError,
    ReadOnlyProjectError,
    StorageError,
    storage_error,
)
from labeldesk.core.importer import add_images
from labeldesk.core.project import DB_NAME, Project
from labeldesk.core.versions import head, log, tag


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its hash: equal digests mean nothing was touched."""
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / DB_NAME).write_bytes(b"these are my notes, not a database\n" * 100)
    before = _digest(root)
    with pytest.raises(NotADatabaseError, match="not a SQLite database") as e:
        Project.open(root)
    assert e.value.exit_code == 2
    assert _digest(root) == before  # no -wal, no -shm, no byte changed


def test_a_sqlite_file_of_another_program_is_refused_unchanged(tmp_path: Path) -> None:
    """Before: migrations ran inside it and created LabelDesk's tables in the user's file."""
    root = tmp_path / "p"
    root.mkdir()
    other = sqlite3.connect(root / DB_NAME)
    other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    other.execute("INSERT INTO customers (name) VALUES ('Ada')")
    other.commit()
    other.close()
    before = _digest(root)
    with pytest.raises(NotADatabaseError, match="not a LabelDesk project") as e:
        Project.open(root)
    assert "customers" in str(e.value) and "project_meta" in str(e.value)
    assert _digest(root) == before


def test_a_database_with_a_schema_version_but_wrong_tables_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "p"
    Project.init(root, user="u").close()
    conn = sqlite3.connect(root / DB_NAME)
    conn.execute("DROP TABLE project_meta")
    conn.commit()
    conn.close()
    with pytest.raises(NotADatabaseError, match="no table project_meta"):
        Project.open(root)


def test_a_forced_read_only_open_reads_and_refuses_every_write(
    project: Project, images: list[Path], tmp_path: Path
) -> None:
    add_images(project, images[:3])
    root = project.root
    project.close()
    with Project.open(root) as p:
        before = snapshot(p)
    with Project.open(root, readonly=True, user="lead-user") as p:
        assert p.readonly
        assert [v.n_images for v in log(p.db)] == [3]  # reading works
        with pytest.raises(ReadOnlyProjectError, match="read-only") as e:
            add_images(p, images[3:])
        assert e.value.exit_code == 2
        with pytest.raises(ReadOnlyProjectError):
            tag(p, "v1", "main")
        with pytest.raises(ReadOnlyProjectError):
            p.set_member("bob", "lead")
    with Project.open(root) as p:
        assert not p.readonly
        assert snapshot(p) == before


def test_a_project_someone_else_owns_opens_read_only(
    project: Project, images: list[Path], tmp_path: Path
) -> None:
    """Folder and database without write permission: reads work, writes say why they cannot."""
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions; test_readonly_mount covers this as root")
    add_images(project, images[:2])
    root = project.root
    project.close()
    os.chmod(root / DB_NAME, 0o444)
    os.chmod(root, 0o555)
    try:
        with Project.open(root) as p:
            assert p.readonly and head(p.db) is not None
            with pytest.raises(ReadOnlyProjectError, match="not writable"):
                add_images(p, images[2:])
    finally:
        os.chmod(root, 0o755)
        os.chmod(root / DB_NAME, 0o644)


def test_storage_errors_are_mapped_one_message_each_and_bugs_are_not() -> None:
    full = storage_error(OSError(errno.ENOSPC, "No space left on device", "/x/y.png"))
    assert isinstance(full, DiskFullError) and "disk full" in str(full) and "/x/y.png" in str(full)
    ro = storage_error(OSError(errno.EROFS, "Read-only file system", "/ro/a"))
    assert isinstance(ro, ReadOnlyProjectError) and "read-only file system" in str(ro)
    denied = storage_error(PermissionError(errno.EACCES, "Permission denied", "/etc/x"))
    assert isinstance(denied, StorageError) and "permission denied: /etc/x" in str(denied)
    assert isinstance(
        storage_error(sqlite3.OperationalError("database or disk is full")), DiskFullError
    )
    assert isinstance(
        storage_error(sqlite3.OperationalError("attempt to write a readonly database")),
        ReadOnlyProjectError,
    )
    assert "disk I/O" in str(storage_error(sqlite3.OperationalError("disk I/O error")))
    assert isinstance(storage_error(sqlite3.DatabaseError("file is not a database")), StorageError)
    # bugs are not storage conditions: they keep their traceback
    assert storage_error(OSError(errno.EBADF, "Bad file descriptor")) is None
    assert storage_error(sqlite3.OperationalError("no such column: x")) is None
    assert storage_error(ValueError("bug")) is None
