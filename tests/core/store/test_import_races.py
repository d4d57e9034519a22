"""A failed, cancelled, interrupted or killed import never deletes an object that another process
committed (or is about to commit).

Each test runs two (or three) real processes against one project. They meet at explicit
hand-over points: a callback of the aborting import runs the other process to completion, or a
child prints "staged" and blocks on its stdin until the test has done its part. Nothing waits
on a sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import write_image

from labeldesk.core.boxes import EMPTY_SET_HASH
from labeldesk.core.errors import CancelledError, InputError
from labeldesk.core.formats import export_coco, import_coco
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.importer import Staging, add_images
from labeldesk.core.store.manifest import Entry, ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import get_version, head

N_A = 20  # images process A stages (five chunks, and journal steps, of four)
N_SHARED = 6  # of which process B adds byte-identical copies and commits


def _batch(folder: Path, n: int = N_A) -> list[Path]:
    return [write_image(folder / f"a{i:02d}.png", seed=500 + i, size=(24, 16)) for i in range(n)]


def _copies(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for f in files[:N_SHARED]:
        shutil.copyfile(f, folder / f"copy-{f.name}")
    return folder


def _cli_add(root: Path, folder: Path) -> None:
    """Process B: ``labeldesk add`` of ``folder``, run to completion (it must commit)."""
    r = subprocess.run(
        [sys.executable, "-m", "labeldesk.cli.main", "-p", str(root), "add", str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "LABELDESK_USER": "lead-user"},
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _main_images(project: Project) -> set[str]:
    store = ManifestStore(project.db)
    version = get_version(project.db, head(project.db))
    return {image for image, _ in store.entries(store.tree(version.tree))}


def _assert_b_survived(project: Project, copies: Path, tmp_path: Path) -> None:
    """B's committed version is whole: fsck is clean and main exports with every copy in it."""
    report = fsck(project)
    assert report.ok, report.errors
    import hashlib

    shared = {hashlib.sha256(f.read_bytes()).hexdigest() for f in copies.iterdir()}
    assert len(shared) == N_SHARED
    assert shared <= _main_images(project)
    for sha in shared:
        assert project.objects.exists(sha)
    out = tmp_path / "export"
    exported = export_coco(project, out)
    assert exported.n_images == len(_main_images(project))
    written = sorted(p for p in (out / "images").rglob("*") if p.is_file())
    assert len(written) == exported.n_images


def test_cancelled_add_keeps_objects_another_process_committed(
    project, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("labeldesk.core.store.importer.CHUNK", 4)
    monkeypatch.setattr("labeldesk.core.store.importer.STEP_FILES", 4)
    files = _batch(tmp_path / "a")
    copies = _copies(files, tmp_path / "b")
    ran_b = []

    def cancel() -> bool:
        # Called before each chunk: once A has stored two chunks (the copies among them), B adds
        # and commits, then A is cancelled.
        if len(list(project.objects.iter_objects())) >= 8 and not ran_b:
            _cli_add(project.root, copies)
            ran_b.append(True)
            return True
        return False

    with pytest.raises(CancelledError):
        add_images(project, files, cancel=cancel, workers=1)
    assert ran_b
    _assert_b_survived(project, copies, tmp_path)
    # A's own objects (not shared) are gone again: nothing is left for nobody
    assert len(list(project.objects.iter_objects())) == N_SHARED


def test_refused_coco_import_keeps_objects_another_process_committed(
    project, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("labeldesk.core.store.importer.CHUNK", 4)
    monkeypatch.setattr("labeldesk.core.store.importer.STEP_FILES", 4)
    files = _batch(tmp_path / "data" / "images")
    last = files[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated: refused
    coco = {
        "images": [
            {"id": i + 1, "file_name": f.name, "width": 24, "height": 16}
            for i, f in enumerate(files)
        ],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [1, 1, 5, 4]}
            for i in range(len(files))
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    ann = tmp_path / "data" / "annotations.json"
    ann.write_text(json.dumps(coco))
    copies = _copies(files, tmp_path / "b")
    ran_b = []

    def progress(done: int, total: int, what: str) -> None:
        if done >= 8 and not ran_b:
            _cli_add(project.root, copies)
            ran_b.append(True)

    with pytest.raises(InputError, match="cannot import COCO"):
        import_coco(project, [ann], tmp_path / "data" / "images", progress=progress)
    assert ran_b
    _assert_b_survived(project, copies, tmp_path)


CTRL_C_CHILD = textwrap.dedent(
    """
    import sys
    import labeldesk.core.store.importer as importer
    from labeldesk.core.store.project import Project

    importer.CHUNK = importer.STEP_FILES = 4
    project = Project.open(sys.argv[1], user="lead-user")

    def progress(done, total, what):
        if done == 8:
            print("staged", flush=True)
            sys.stdin.readline()  # the test presses Ctrl-C (SIGINT) while we wait here

    try:
        importer.add_images(project, [sys.argv[2]], progress=progress, workers=1)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print("finished", flush=True)
    """
)


def test_ctrl_c_on_add_keeps_objects_another_add_committed(project, tmp_path) -> None:
    files = _batch(tmp_path / "a")
    copies = _copies(files, tmp_path / "b")
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, str(project.root), str(tmp_path / "a")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "staged"
        _cli_add(project.root, copies)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, out + err
    assert "interrupted" in out
    _assert_b_survived(project, copies, tmp_path)
    assert len(list(project.objects.iter_objects())) == N_SHARED


KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import labeldesk.core.store.importer as importer
    from labeldesk.core.store.project import Project

    importer.CHUNK = importer.STEP_FILES = 4
    project = Project.open(sys.argv[1], user="lead-user")

    def progress(done, total, what):
        if done == 8:
            os.kill(os.getpid(), signal.SIGKILL)

    importer.add_images(project, [sys.argv[2]], progress=progress, workers=1)
    """
)

OPEN_CHILD = (
    "import sys; from labeldesk.core.store.project import Project; Project.open(sys.argv[1])"
)


def test_recovery_of_a_killed_import_spares_objects_an_add_in_flight_has_staged(
    project, tmp_path
) -> None:
    """A is SIGKILLed with objects staged; B (this process, opened before) stages copies of
    some of them; C opens the project, which recovers A's leftovers; then B commits."""
    files = _batch(tmp_path / "a")
    copies = _copies(files, tmp_path / "b")
    a = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(project.root), str(tmp_path / "a")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert a.returncode == -signal.SIGKILL, a.stderr
    assert project.db.execute("SELECT COUNT(*) FROM pending_object").fetchone()[0] >= 8
    ran_c = []

    def progress(done: int, total: int, what: str) -> None:
        if done == total:  # everything staged, commit next: C recovers now
            c = subprocess.run(
                [sys.executable, "-c", OPEN_CHILD, str(project.root)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert c.returncode == 0, c.stderr
            ran_c.append(True)

    report = add_images(project, [copies], progress=progress)
    assert ran_c and len(report.added) == N_SHARED and report.version is not None
    _assert_b_survived(project, copies, tmp_path)
    # C removed A's other leftovers and its journal: nothing pending, nothing orphaned
    assert project.db.execute("SELECT COUNT(*) FROM pending_object").fetchone()[0] == 0
    assert len(list(project.objects.iter_objects())) == N_SHARED


def test_an_object_two_imports_journaled_is_deleted_only_when_neither_needs_it(
    project, tmp_path
) -> None:
    """The rule itself, with two stagings of the same bytes: the first to give up leaves the
    file to the other; the file goes only when the last one gives up; a commit keeps it."""
    files = _batch(tmp_path / "a", 3)
    first, second = Staging(project), Staging(project)
    first.stage_files(files)
    second.stage_files(files[:2])
    first.abort()
    shas = sorted(second.infos)
    assert [project.objects.exists(s) for s in shas] == [True, True]
    assert len(list(project.objects.iter_objects())) == 2  # the third was first's alone
    second.abort()
    assert list(project.objects.iter_objects()) == []

    first, second = Staging(project), Staging(project)
    first.stage_files(files)
    with second:
        second.stage_files(files[:2])
        first.abort()  # while second is between staging and commit
        second.commit(
            entries={s: Entry(EMPTY_SET_HASH) for s in second.infos},
            annsets={},
            classes=None,
            message="second",
            provenance={},
        )
    assert fsck(project).ok
    assert _main_images(project) == set(second.infos)


STAGE_AND_WAIT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from labeldesk.core.store.importer import Staging
    from labeldesk.core.store.project import Project

    staging = Staging(Project.open(sys.argv[1], user="lead-user"))
    staging.stage_files([Path(a) for a in sys.argv[2:]])
    print("staged", flush=True)
    sys.stdin.readline()  # killed here
    """
)


def test_recovery_of_two_dead_imports_of_the_same_bytes_leaves_no_orphan(project, tmp_path) -> None:
    """Two imports staging the same bytes both die: recovering both deletes every file (each
    one's journal row must not keep the other's file alive) and leaves nothing behind."""
    files = _batch(tmp_path / "a", 4)
    children = []
    try:
        for subset in (files, files[:2]):  # both alive at once: neither recovers the other
            child = subprocess.Popen(
                [sys.executable, "-c", STAGE_AND_WAIT, str(project.root), *map(str, subset)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(child)
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "staged"
    finally:
        for child in children:
            child.kill()
            child.communicate()  # reaps it and closes its pipes
    ops = project.db.execute("SELECT COUNT(DISTINCT op) FROM pending_object").fetchone()[0]
    assert ops == 2 and len(list(project.objects.iter_objects())) == 4
    assert project.recover() == 4
    assert list(project.objects.iter_objects()) == []
    assert project.db.execute("SELECT COUNT(*) FROM pending_object").fetchone()[0] == 0
    assert fsck(project).ok


@pytest.mark.parametrize(
    ("step_files", "step_bytes", "steps"),
    [(12, 1 << 30, [12, 8]), (1024, 1, [4, 4, 4, 4, 4])],  # bound by files / by bytes
)
def test_a_journal_step_of_many_chunks_is_committed_before_any_of_its_files_is_written(
    project, tmp_path, monkeypatch, step_files, step_bytes, steps
) -> None:
    """The journal is written once per step of several chunks (one fsync for many files), and
    every image of the step is journaled, and committed where another process sees it, before
    the first file of the step is stored. Checked from a second connection at each write."""
    monkeypatch.setattr("labeldesk.core.store.importer.CHUNK", 4)
    monkeypatch.setattr("labeldesk.core.store.importer.STEP_FILES", step_files)
    monkeypatch.setattr("labeldesk.core.store.importer.STEP_BYTES", step_bytes)
    files = _batch(tmp_path / "a")
    other = sqlite3.connect(project.root / "labeldesk.db")
    journaled_at_write: list[tuple[str, set[str]]] = []
    real_put = project.objects.put_bytes

    def put_bytes(data: bytes, sha: str | None = None, *, durable: bool = True) -> bool:
        seen = {r[0] for r in other.execute("SELECT sha256 FROM pending_object")}
        journaled_at_write.append((str(sha), seen))
        assert not project.objects.exists(str(sha))
        return real_put(data, sha, durable=durable)

    monkeypatch.setattr(project.objects, "put_bytes", put_bytes)
    staging = Staging(project, workers=1)
    staged = staging.stage_files(files)
    other.close()
    shas = [sha for _, sha, _ in staged]
    assert [sha for sha, _ in journaled_at_write] == shas  # each file written once, in order
    done = 0
    for size in steps:
        step = set(shas[done : done + size])
        for sha, seen in journaled_at_write[done : done + size]:
            # the whole step, and nothing of the next one, was journaled before its first write
            assert seen == set(shas[: done + size]), (sha, len(seen))
        assert step <= journaled_at_write[done][1]
        done += size
    staging.abort()
    assert list(project.objects.iter_objects()) == []
