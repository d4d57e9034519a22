"""The command line under hostile conditions: roles, broken projects, full and read-only disks.

Known conditions (a full or read-only disk, a file that is no project) end with one clear line
and exit status 2, never a traceback; the project is unchanged afterwards.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DEMO_MODEL, fill, snapshot, write_image
from helpers import run_cli as run

from labeldesk.core.demo.synth import write_yolo_dataset
from labeldesk.core.store.project import Project


@pytest.fixture
def released(tmp_path, capsys, monkeypatch) -> Path:
    """A project led by ``boss`` with annotator ``ann``; v1.0 is tagged and approved."""
    monkeypatch.setenv("LABELDESK_USER", "boss")
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    assert run(capsys, "-p", str(root), "member", "ann", "annotator")[0] == 0
    write_image(tmp_path / "src" / "a.png", seed=1)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
    write_image(tmp_path / "src" / "b.png", seed=2)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
    assert run(capsys, "-p", str(root), "tag", "v1.0", "main~1")[0] == 0
    assert run(capsys, "-p", str(root), "approve", "v1.0", "--note", "ok")[0] == 0
    return root


def test_cli_annotator_cannot_move_or_delete_a_release_tag(released, capsys, monkeypatch):
    p = str(released)
    code, out, _ = run(capsys, "-p", p, "tag", "--json")
    monkeypatch.setenv("LABELDESK_USER", "ann")
    code, _, err = run(capsys, "-p", p, "tag", "-f", "v1.0", "main")
    assert code == 1
    assert "only a lead may move" in err and "Traceback" not in err
    code, _, err = run(capsys, "-p", p, "tag", "-d", "v1.0")
    assert code == 1 and "only a lead may delete" in err
    assert run(capsys, "-p", p, "tag", "--json")[1] == out  # the tag list did not change
    monkeypatch.setenv("LABELDESK_USER", "boss")
    code, out, _ = run(capsys, "-p", p, "tag", "-d", "v1.0")
    assert code == 0 and out.startswith("deleted tag v1.0")


def test_cli_last_lead_cannot_demote_themselves(released, capsys):
    p = str(released)
    code, _, err = run(capsys, "-p", p, "member", "boss", "annotator")
    assert code == 1 and "no lead left" in err
    assert "boss: lead" in run(capsys, "-p", p, "member", "boss")[1]


# -- a real full or read-only file system --------------------------------------------------------


def state(root: Path) -> dict:
    with Project.open(root) as p:
        return snapshot(p)


def noisy_images(folder: Path, n: int, seed: int = 100, side: int = 256) -> Path:
    """``n`` incompressible PNGs of about side²·3 bytes each: they fill a small disk fast."""
    for i in range(n):
        write_image(folder / f"n{i:02d}.png", seed=seed + i, size=(side, side))
    return folder


@pytest.fixture
def full_project(tmp_path, tmpfs, capsys):
    """A project with one version on a 4 MiB tmpfs; its state before anything fails."""
    fs = tmpfs("fs")
    root = fs / "p"
    assert run(capsys, "init", str(root))[0] == 0
    write_image(tmp_path / "first" / "a.png", seed=1)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "first"))[0] == 0
    return fs, root, state(root)


def assert_clear(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_disk_full_during_add_is_one_clear_error_and_changes_nothing(
    full_project, tmp_path, capsys
):
    fs, root, before = full_project
    src = noisy_images(tmp_path / "big", 12)  # ~2.4 MB, the disk has less
    filler = fill(fs, leave=600_000)  # room for a couple of objects, not all
    code, _, err = run(capsys, "-p", str(root), "add", str(src))
    assert_clear(code, err, "disk full", "nothing was changed")
    filler.unlink()
    assert state(root) == before
    # with room again, the same add works: nothing was left half-done in the way
    assert run(capsys, "-p", str(root), "add", str(src))[0] == 0


def test_disk_full_during_import_is_one_clear_error_and_changes_nothing(
    full_project, tmp_path, capsys
):
    fs, root, before = full_project
    data = write_yolo_dataset(tmp_path / "yolo", 20, 4, size=(320, 240))
    noisy_images(Path(data).parent / "images" / "train", 6, seed=300)  # bulk, unlabelled
    filler = fill(fs, leave=300_000)
    code, _, err = run(capsys, "-p", str(root), "import", "yolo", str(data.parent))
    assert_clear(code, err, "disk full")
    filler.unlink()
    assert state(root) == before


def test_disk_full_during_export_leaves_no_output(tmp_path, tmpfs, capsys):
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    assert run(capsys, "-p", str(root), "add", str(noisy_images(tmp_path / "big", 8)))[0] == 0
    before = state(root)
    fs = tmpfs("out", 1 << 20)  # 1 MiB for 1.5 MB of images
    code, _, err = run(capsys, "-p", str(root), "export", "coco", "--out", str(fs / "ds"))
    assert_clear(code, err, "disk full")
    assert [f.name for f in fs.iterdir()] == []  # no partial folder, no hidden temp folder
    assert state(root) == before


def test_disk_full_at_commit_is_one_clear_error_and_changes_nothing(full_project, capsys):
    fs, root, before = full_project
    from labeldesk.core.boxes import Box
    from labeldesk.core.errors import DiskFullError, storage_error
    from labeldesk.core.store.sessions import ReviewSession

    with Project.open(root) as p:
        s = ReviewSession.start(p)
        cat = s.add_class("cat")
        image = p.db.execute("SELECT sha256 FROM image").fetchone()[0]
        s.set_boxes(image, [Box(cat, i % 50, i % 40, 5, 5) for i in range(400)])
        with_edits = snapshot(p)
        filler = fill(fs)
        with pytest.raises(Exception) as e:
            s.commit("cats")
        assert isinstance(storage_error(e.value), DiskFullError), repr(e.value)
        filler.unlink()
        assert snapshot(p) == with_edits  # the session is still there, main did not move
        s.commit("cats")  # and commits once there is room
    # the same through the command line: `revert` commits a version
    filler = fill(fs)
    code, _, err = run(capsys, "-p", str(root), "revert", "main~1")
    assert_clear(code, err, "disk full")
    filler.unlink()


def test_disk_full_during_prelabel_is_one_clear_error(full_project, tmp_path, capsys):
    fs, root, _ = full_project
    p = ("-p", str(root))
    weights = shutil.copy(DEMO_MODEL, tmp_path / "shapes.pt")
    assert run(capsys, *p, "model", "add", str(weights), "--name", "shapes")[0] == 0
    from labeldesk.core.errors import DiskFullError, storage_error
    from labeldesk.core.inference.prelabel import prelabel

    before = state(root)
    with Project.open(root) as project:  # opened first: the disk fills while it predicts
        filler = fill(fs)
        with pytest.raises(Exception) as e:
            prelabel(project, "shapes", imgsz=160)
        assert isinstance(storage_error(e.value), DiskFullError), repr(e.value)
        filler.unlink()
    assert state(root) == before  # the batch that could not be stored left nothing behind
    filler = fill(fs)
    code, _, err = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "160")
    assert_clear(code, err, "disk full")
    filler.unlink()
    assert state(root) == before


def test_a_read_only_mount_reads_and_refuses_writes_clearly(full_project, tmp_path, capsys):
    fs, root, before = full_project
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    p = ("-p", str(root))
    for read in (("log",), ("show",), ("fsck",), ("tag",), ("member",)):
        code, out, err = run(capsys, *p, *read)
        assert code == 0, (read, err)
    out_dir = tmp_path / "export"
    assert run(capsys, *p, "export", "coco", "--out", str(out_dir))[0] == 0
    assert (out_dir / "annotations.json").exists() or any(out_dir.rglob("*.json"))
    write_image(tmp_path / "more" / "b.png", seed=2)
    for write in (("add", str(tmp_path / "more")), ("tag", "v1", "main"), ("member", "x", "lead")):
        code, _, err = run(capsys, *p, *write)
        assert_clear(code, err, "read-only")
    # the real entry point: one line on stderr, status 2, no traceback
    r = subprocess.run(
        [sys.executable, "-m", "labeldesk.cli.main", *p, "add", str(tmp_path / "more")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
    assert state(root) == before


def test_file_size_limit_fails_cleanly(tmp_path, capsys):
    """Runs everywhere (no mount): a real kernel limit (RLIMIT_FSIZE) stops the object write."""
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    before = state(root)
    src = noisy_images(tmp_path / "big", 2, side=320)  # ~300 KB each
    limit = 200_000  # above the database's size, below one image's

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run(
        [sys.executable, "-m", "labeldesk.cli.main", "-p", str(root), "add", str(src)],
        capture_output=True,
        text=True,
        preexec_fn=limited,
        restore_signals=False,  # keep SIGXFSZ ignored across exec
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "too large" in r.stderr
    assert state(root) == before


def test_model_add_refuses_onnx_data_outside_its_folder(tmp_path, capsys):
    pytest.importorskip("onnx")
    from onnx_models import external_onnx  # a real ONNX model with external data

    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    before = state(root)
    (tmp_path / "secret.bin").write_bytes(b"\0" * 32)
    model = external_onnx(tmp_path / "m", "../secret.bin")
    code, _, err = run(capsys, "-p", str(root), "model", "add", str(model), "--name", "x")
    assert code == 1 and "outside the model's folder" in err and "Traceback" not in err
    assert state(root) == before
    good = external_onnx(tmp_path / "good")
    code, out, err = run(capsys, "-p", str(root), "model", "add", str(good), "--name", "good")
    assert code == 0, err


def test_unknown_errors_keep_their_traceback(tmp_path, capsys, monkeypatch):
    """Only known storage conditions are softened: a bug must still show where it is."""
    import errno

    from labeldesk.cli import verbs
    from labeldesk.cli.main import main

    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0

    def buggy(args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(verbs, "cmd_log", buggy)
    with pytest.raises(OSError, match="Bad file descriptor"):
        main(["-p", str(root), "log"])


def test_init_on_a_full_disk_leaves_nothing_behind(tmpfs, capsys):
    fs = tmpfs("fs", 1 << 20)
    fill(fs, leave=8192)  # room to create the folder, not the database
    code, _, err = run(capsys, "init", str(fs / "p"))
    assert_clear(code, err, "disk full")
    assert sorted(f.name for f in fs.iterdir()) == ["filler"]  # no half project to misread


def test_a_read_only_mount_still_sees_what_a_killed_writer_committed(
    full_project, tmp_path, capsys
):
    """The writer dies without closing: its commits are only in the -wal file, which a read-only
    open must still read (SQLite's read-only shared memory), not ignore."""
    fs, root, _ = full_project
    write_image(tmp_path / "late" / "c.png", seed=3)
    child = (
        "import os, sys\n"
        "from labeldesk.core.store.importer import add_images\n"
        "from labeldesk.core.store.project import Project\n"
        "p = Project.open(sys.argv[1])\n"
        "add_images(p, [sys.argv[2]], message='late')\n"
        "os._exit(0)  # no close, no checkpoint: the commit lives in the WAL only\n"
    )
    subprocess.run(
        [sys.executable, "-c", child, str(root), str(tmp_path / "late" / "c.png")], check=True
    )
    assert (root / "labeldesk.db-wal").stat().st_size > 0
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    try:
        code, out, err = run(capsys, "-p", str(root), "log", "--json")
        assert code == 0, err
        assert json.loads(out)[0]["message"] == "late"
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)


def test_a_labeldesk_db_that_is_no_project_is_refused_with_status_2(tmp_path, capsys):
    import hashlib
    import sqlite3

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "labeldesk.db").write_text("not a database\n" * 50)
    other = tmp_path / "other"
    other.mkdir()
    conn = sqlite3.connect(other / "labeldesk.db")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    write_image(tmp_path / "src" / "a.png", seed=1)
    for root, words in ((notes, "not a SQLite database"), (other, "not a LabelDesk project")):
        db = root / "labeldesk.db"
        before = hashlib.sha256(db.read_bytes()).hexdigest()
        for argv in (("log",), ("add", str(tmp_path / "src"))):
            code, _, err = run(capsys, "-p", str(root), *argv)
            assert_clear(code, err, words, "nothing was changed")
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before
        assert sorted(f.name for f in root.iterdir()) == ["labeldesk.db"]


def test_a_read_only_project_with_an_orphaned_log_is_refused_not_misread(
    full_project, tmp_path, capsys
):
    """A -wal without its -shm on a read-only disk: an immutable read would miss its commits."""
    fs, root, _ = full_project
    write_image(tmp_path / "late" / "c.png", seed=3)
    child = (
        "import os, sys\n"
        "from labeldesk.core.store.importer import add_images\n"
        "from labeldesk.core.store.project import Project\n"
        "add_images(Project.open(sys.argv[1]), [sys.argv[2]], message='late')\n"
        "os._exit(0)\n"
    )
    subprocess.run(
        [sys.executable, "-c", child, str(root), str(tmp_path / "late" / "c.png")], check=True
    )
    (root / "labeldesk.db-shm").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    try:
        code, _, err = run(capsys, "-p", str(root), "log")
        assert_clear(code, err, "write-ahead log left by an interrupted writer")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], check=True)
    code, out, _ = run(capsys, "-p", str(root), "log")  # writable again: SQLite finishes it
    assert code == 0 and "late" in out
