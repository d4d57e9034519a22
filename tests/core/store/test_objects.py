from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from labeldesk.core.store.objects import ObjectStore


def test_put_stores_bytes_by_hash_read_only(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    data = b"\x89PNG not really but bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data) is True
    path = store.path(sha)
    assert path == tmp_path / "objects" / "sha256" / sha[:2] / sha[2:]
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert not list(store.iter_temp_files())
    assert list(store.iter_objects()) == [(sha, path)]


def test_adding_an_existing_object_is_a_no_op(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    data = b"same bytes"
    assert store.put_bytes(data) is True
    before = store.path(hashlib.sha256(data).hexdigest()).stat()
    assert store.put_bytes(data) is False
    after = store.path(hashlib.sha256(data).hexdigest()).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")

    # a memoryview over an object that is not bytes-like fails inside the write loop
    with pytest.raises(TypeError):
        store.put_bytes(object(), sha="ab" * 32)  # type: ignore[arg-type]
    assert not list(store.iter_temp_files())
    assert not store.exists("ab" * 32)
