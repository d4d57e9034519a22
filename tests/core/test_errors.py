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

import numpy as np
import pytest
from helpers import snapshot

from labeldesk.core.errors import (
    DiskFullError,
    NotADatabaseError,
    ReadOnlyProjectError,
    StorageError,
    storage_error,
)
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import DB_NAME, Project
from labeldesk.core.store.versions import head, log, tag


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
        pytest.skip("root ignores file permissions; tests/cli/test_errors_cli.py's tmpfs covers it")
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
    assert isinstance(
        denied, StorageError
    ) and "permission denied: /etc/x (Permission denied)" in str(denied)
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


# -- ONNX models whose tensors live in separate files -------------------------------------------

onnx = pytest.importorskip("onnx")
from onnx_models import WEIGHTS, external_onnx  # noqa: E402


def test_an_onnx_model_with_external_data_registers_with_its_data(
    project: Project, tmp_path: Path
) -> None:
    from labeldesk.core.inference.loading import load_model
    from labeldesk.core.inference.model_files import ModelChangedError, combined_id, private_copy
    from labeldesk.core.inference.registry import add_model, file_state, get_model

    path = external_onnx(tmp_path / "m")
    data = path.parent / "tensors.bin"
    sha = hashlib.sha256
    info = add_model(project, path, "ext").model
    assert info.format == "onnx" and info.class_names == ["a", "b"]
    # the id covers the tensors too: changing them is noticed, not run under the old identity
    parts = {"tensors.bin": sha(data.read_bytes()).hexdigest()}
    assert info.id == combined_id(sha(path.read_bytes()).hexdigest(), parts)
    assert file_state(info) == "ok"
    # the private copy that runs holds the data file too, and onnxruntime computes with it
    ort = pytest.importorskip("onnxruntime")
    with private_copy(path, expected=info.id) as (copy, _):
        assert (copy.parent / "tensors.bin").read_bytes() == data.read_bytes()
        session = ort.InferenceSession(str(copy), providers=["CPUExecutionProvider"])
        x = np.ones((1, 4), dtype=np.float32)
        assert np.allclose(session.run(None, {"X": x})[0], x @ WEIGHTS)
    # and so does the folder a loaded model runs from (before: only the .onnx was copied)
    with load_model(info) as loaded:
        run_from = loaded._folder / "weights.onnx"
        session = ort.InferenceSession(str(run_from), providers=["CPUExecutionProvider"])
        assert np.allclose(session.run(None, {"X": x})[0], x @ WEIGHTS)
    data.write_bytes(np.zeros_like(WEIGHTS).tobytes())
    assert file_state(info) == "changed"
    with pytest.raises(ModelChangedError, match="changed since it was registered"):
        get_model(project, "ext")
    data.unlink()
    with (
        pytest.raises(ModelChangedError, match=r"tensors\.bin, which is missing"),
        private_copy(path, expected=info.id),
    ):
        pass


def test_onnx_external_data_outside_the_model_folder_is_refused(
    project: Project, tmp_path: Path
) -> None:
    from labeldesk.core.inference.model_files import ModelError
    from labeldesk.core.inference.registry import add_model

    secret = tmp_path / "secret.bin"
    secret.write_bytes(WEIGHTS.tobytes())
    before = snapshot(project)
    cases = {
        "up": ("../secret.bin", "outside the model's folder"),
        "abs": (str(secret), "outside the model's folder"),
    }
    for name, (location, reason) in cases.items():
        path = external_onnx(tmp_path / name, location)
        with pytest.raises(ModelError, match=reason):
            add_model(project, path, name)
    linked = external_onnx(tmp_path / "link", "linked.bin")
    (linked.parent / "linked.bin").symlink_to(secret)
    with pytest.raises(ModelError, match="a link that leads outside"):
        add_model(project, linked, "link")
    fifo_model = external_onnx(tmp_path / "fifo", "pipe.bin")
    os.mkfifo(fifo_model.parent / "pipe.bin")
    with pytest.raises(ModelError, match="not a regular file"):  # refused, never hangs
        add_model(project, fifo_model, "fifo")
    assert snapshot(project) == before
