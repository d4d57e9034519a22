"""fsck finds every kind of damage by name, and only says OK after reading every byte."""

from __future__ import annotations

import os

import pytest
from helpers import write_image

from labeldesk.cli.main import main
from labeldesk.core.fsck import fsck
from labeldesk.core.importer import add_images


@pytest.fixture
def stored(project, images):
    report = add_images(project, images)
    return project, [a.sha256 for a in report.added]


def _writable(path):
    os.chmod(path, 0o644)
    return path


def test_clean_project_is_ok_after_reading_every_byte(stored) -> None:
    project, shas = stored
    report = fsck(project)
    assert report.ok and not report.errors
    assert report.objects_checked == len(shas)
    assert report.bytes_checked == sum(project.objects.path(s).stat().st_size for s in shas)
    assert report.versions_checked == 1


def test_flipped_byte_is_found(stored) -> None:
    project, shas = stored
    path = _writable(project.objects.path(shas[3]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit different
    path.write_bytes(bytes(data))
    report = fsck(project)
    assert not report.ok
    assert any(shas[3] in e and "corrupt" in e for e in report.errors), report.errors


def test_truncated_object_is_found(stored) -> None:
    project, shas = stored
    path = _writable(project.objects.path(shas[1]))
    path.write_bytes(path.read_bytes()[:100])
    (err,) = fsck(project).errors
    assert shas[1] in err and "truncated" in err


def test_missing_object_is_found_with_its_source(stored) -> None:
    project, shas = stored
    _writable(project.objects.path(shas[2])).unlink()
    (err,) = fsck(project).errors
    assert shas[2] in err and "missing" in err and "imported from" in err


def test_orphan_object_is_found(stored, tmp_path) -> None:
    project, shas = stored
    data = write_image(tmp_path / "stray.png", seed=1234).read_bytes()
    project.objects.put_bytes(data)
    import hashlib

    orphan = hashlib.sha256(data).hexdigest()
    (err,) = fsck(project).errors
    assert orphan in err and "orphan" in err


def test_row_pointing_at_missing_annotation_set_is_found(stored) -> None:
    project, shas = stored
    project.db.execute("PRAGMA foreign_keys = OFF")
    project.db.execute("DROP TRIGGER annotation_set_immutable")
    project.db.execute("DELETE FROM annotation_set")
    errors = fsck(project).errors
    assert errors and all("annotation set" in e and "missing" in e for e in errors)


def test_cli_fsck_exit_status(stored, capsys) -> None:
    project, shas = stored
    assert main(["-p", str(project.root), "fsck"]) == 0
    assert "OK: re-hashed 10 objects" in capsys.readouterr().out
    _writable(project.objects.path(shas[0])).unlink()
    assert main(["-p", str(project.root), "fsck"]) == 1
    out = capsys.readouterr().out
    assert shas[0] in out and "1 problem(s) found" in out
