"""Exports verify what they use, and killed exports leave nothing behind for long.

Every kind of damage ``labeldesk fsck`` names (a flipped byte, a truncated or missing object, an
object replaced by a FIFO, a content-addressed row edited in SQLite so it no longer hashes to its
key, a row deleted behind LabelDesk's back) makes ``export coco`` and ``export yolo`` refuse with
an itemised list and the hint to run fsck, leaving the output folder as it was and the project
unchanged. A temporary folder left by an export killed with SIGKILL is removed by the next
export into the same parent folder, and only when its process is gone.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_cli, snapshot, write_exif_oriented, write_image

from labeldesk.core.boxes import Box
from labeldesk.core.errors import IntegrityError
from labeldesk.core.formats import export_coco, export_yolo
from labeldesk.core.formats.files import OutputFolder
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.importer import Staging
from labeldesk.core.store.manifest import Entry
from labeldesk.core.store.objects import (
    ObjectDamagedError,
    copy_verified,
    read_object,
    read_verified,
    verify_file,
)
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import resolve

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "labeldesk.cli.main"]
EXPORTS: dict[str, Callable[..., object]] = {"coco": export_coco, "yolo": export_yolo}


@pytest.fixture
def labelled(project: Project, tmp_path: Path) -> tuple[Project, list[str]]:
    """Five images with two boxes each (the last EXIF-rotated, so it is re-encoded upright).

    Returns the project and the image hashes in source order.
    """
    paths = [write_image(tmp_path / "src" / f"img{i}.png", seed=40 + i) for i in range(4)]
    paths.append(write_exif_oriented(tmp_path / "src" / "turned.jpg", 6))
    with Staging(project) as staging:
        staged = staging.stage_files(paths)
        shas = [sha for _, sha, _ in staged]
        assert None not in shas
        entries = {sha: Entry("", "train" if i % 2 else "val") for i, sha in enumerate(shas)}
        annsets = {
            sha: [
                Box(1, 1.0 + i, 2.0, 10.0, 8.0, origin="human", state="imported"),
                Box(2, 20.0, 5.0 + i, 12.0, 9.5, origin="human", state="imported"),
            ]
            for i, sha in enumerate(shas)
        }
        staging.commit(
            entries=entries,
            annsets=annsets,
            classes=[{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            message="five images",
            provenance={},
        )
    return project, [s for s in shas if s is not None]


def _writable(path: Path) -> Path:
    os.chmod(path, 0o644)
    return path


def flip_byte(project: Project, sha: str) -> None:
    path = _writable(project.objects.path(sha))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit different
    path.write_bytes(bytes(data))


def truncate(project: Project, sha: str) -> None:
    path = _writable(project.objects.path(sha))
    path.write_bytes(path.read_bytes()[:100])


def shell(project: Project, sql: str, args: tuple | list = ()) -> None:
    """Change the database the way a plain ``sqlite3`` shell would: another connection, no
    LabelDesk code. The triggers refuse such writes (see tests/core/store/test_fsck.py), so this
    user drops them first, as anyone with the file can: what export must then catch is the
    damage."""
    con = sqlite3.connect(project.root / "labeldesk.db")
    try:
        triggers = [
            r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ]
        for name in triggers:
            con.execute(f"DROP TRIGGER [{name}]")
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def annset_of(project: Project, sha: str) -> str:
    from labeldesk.core.store.manifest import ManifestStore

    store = ManifestStore(project.db)
    entry = store.entry(store.tree(resolve(project.db, "main").tree), sha)
    assert entry is not None
    return entry.annset


def tamper_annset(project: Project, sha: str) -> str:
    """Move one box of image ``sha`` by a pixel, keeping the row's key: returns the key."""
    h = annset_of(project, sha)
    (text,) = project.db.execute("SELECT boxes FROM annotation_set WHERE hash = ?", [h]).fetchone()
    boxes = json.loads(text)
    boxes[0]["x"] += 1
    shell(
        project,
        "INSERT OR REPLACE INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, ?)",
        (h, json.dumps(boxes, sort_keys=True, separators=(",", ":")), len(boxes)),
    )
    return h


def bucket_of(project: Project, sha: str) -> str:
    (text,) = project.db.execute(
        "SELECT buckets FROM manifest_tree WHERE hash = ?", [resolve(project.db, "main").tree]
    ).fetchone()
    return json.loads(text)[sha[:3]]


def tamper_bucket(project: Project, sha: str) -> str:
    """Move image ``sha`` to another split in its bucket row, keeping the key."""
    bh = bucket_of(project, sha)
    row = project.db.execute(
        "SELECT entries, n_images, n_boxes FROM manifest_bucket WHERE hash = ?", [bh]
    ).fetchone()
    entries = json.loads(row[0])
    entries[sha][1] = "test"
    shell(
        project,
        "INSERT OR REPLACE INTO manifest_bucket (hash, entries, n_images, n_boxes) "
        "VALUES (?, ?, ?, ?)",
        (bh, json.dumps(entries, sort_keys=True, separators=(",", ":")), row[1], row[2]),
    )
    return bh


def refused(project: Project, fmt: str, out: Path, **kw: object) -> IntegrityError:
    """Export ``fmt`` into ``out`` expecting a refusal; checks nothing was written or changed."""
    before = snapshot(project)
    parent_before = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    out_before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    with pytest.raises(IntegrityError) as info:
        EXPORTS[fmt](project, out, **kw)
    assert "labeldesk fsck" in str(info.value)
    assert snapshot(project) == before
    # the output folder is as it was (absent, or empty), and no temporary is left beside it
    assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else None) == out_before
    assert sorted(p.name for p in out.parent.iterdir()) == parent_before
    return info.value


# -- objects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_a_flipped_byte_is_refused_by_name_and_nothing_is_written(labelled, tmp_path, fmt, link):
    project, shas = labelled
    flip_byte(project, shas[1])
    err = refused(project, fmt, tmp_path / "exports" / "out", link=link)
    (problem,) = err.problems
    assert problem.where == f"object {shas[1]}"
    assert problem.reason.startswith("corrupt (content hashes to ")
    assert "img1.png" in problem.reason  # the file it would have been exported as
    assert any(shas[1] in e and "corrupt" in e for e in fsck(project).errors)  # fsck agrees


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_a_damaged_rotated_image_is_refused_before_it_is_re_encoded(labelled, tmp_path, fmt):
    project, shas = labelled
    truncate(project, shas[4])  # the EXIF-rotated one: read whole, then re-encoded
    err = refused(project, fmt, tmp_path / "out")
    (problem,) = err.problems
    size = project.db.execute("SELECT byte_size FROM image WHERE sha256 = ?", [shas[4]]).fetchone()
    assert problem.where == f"object {shas[4]}"
    assert problem.reason.startswith(f"truncated (100 of {size[0]} bytes)")


def test_missing_and_truncated_objects_are_all_listed_at_once(labelled, tmp_path) -> None:
    project, shas = labelled
    truncate(project, shas[0])
    _writable(project.objects.path(shas[2])).unlink()
    flip_byte(project, shas[3])
    out = tmp_path / "out"
    out.mkdir()  # an empty folder given by the user stays, empty
    err = refused(project, "coco", out)
    got = {p.where: p.reason for p in err.problems}
    assert set(got) == {f"object {shas[i]}" for i in (0, 2, 3)}
    assert got[f"object {shas[0]}"].startswith("truncated")
    assert got[f"object {shas[2]}"].startswith("object file is missing")
    assert got[f"object {shas[3]}"].startswith("corrupt")
    assert "3 damaged" in err.summary


def test_an_object_replaced_by_a_fifo_is_refused_without_hanging(labelled, tmp_path) -> None:
    project, shas = labelled
    path = _writable(project.objects.path(shas[0]))
    path.unlink()
    os.mkfifo(path)  # opening it for reading would wait for a writer forever
    project.close()
    # In a child with a time limit: a hang must fail this test, not stall the suite.
    r = subprocess.run(
        [*CLI, "-p", str(project.root), "export", "yolo", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 1, r.stderr
    assert f"object {shas[0]}: not a regular file" in r.stderr
    assert "labeldesk fsck" in r.stderr
    assert not (tmp_path / "out").exists()


def test_verified_exports_are_byte_identical_to_unverified_ones(labelled, tmp_path) -> None:
    project, _ = labelled
    for fmt, export in EXPORTS.items():
        export(project, tmp_path / f"{fmt}-checked")
        export(project, tmp_path / f"{fmt}-raw", verify=False)
        a, b = tmp_path / f"{fmt}-checked", tmp_path / f"{fmt}-raw"
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        if fmt == "yolo":  # data.yaml holds its own folder's path
            files.remove(Path("data.yaml"))
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_verified_reads_refuse_damage_and_leave_no_half_copy(labelled, tmp_path) -> None:
    project, shas = labelled
    src = project.objects.path(shas[0])
    good = src.read_bytes()
    assert read_verified(src, shas[0]) == good == read_object(project.objects, shas[0])
    verify_file(src, shas[0])
    copy_verified(src, tmp_path / "copy", shas[0])
    assert (tmp_path / "copy").read_bytes() == good
    flip_byte(project, shas[0])
    for check in (
        lambda: read_verified(src, shas[0]),
        lambda: verify_file(src, shas[0]),
        lambda: copy_verified(src, tmp_path / "bad", shas[0]),
    ):
        with pytest.raises(ObjectDamagedError, match="corrupt"):
            check()
    assert not (tmp_path / "bad").exists()  # a copy that failed its hash is removed
    with pytest.raises(ObjectDamagedError, match="missing"):
        read_verified(tmp_path / "nothing", shas[0])


# -- rows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_an_edited_annotation_set_is_refused(labelled, tmp_path, fmt) -> None:
    project, shas = labelled
    h = tamper_annset(project, shas[2])
    err = refused(project, fmt, tmp_path / "out")
    assert [(p.where, p.reason) for p in err.problems] == [
        (f"annotation set {h}", "content does not match its hash")
    ]
    assert any(h in e and "does not match" in e for e in fsck(project).errors)


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_an_edited_manifest_bucket_is_refused(labelled, tmp_path, fmt) -> None:
    project, shas = labelled
    bh = tamper_bucket(project, shas[1])
    err = refused(project, fmt, tmp_path / "out")
    assert [(p.where, p.reason) for p in err.problems] == [
        (f"manifest bucket {bh}", "content does not match its hash")
    ]


def test_an_edited_manifest_tree_is_refused(labelled, tmp_path) -> None:
    project, shas = labelled
    tree = resolve(project.db, "main").tree
    (text,) = project.db.execute(
        "SELECT buckets FROM manifest_tree WHERE hash = ?", [tree]
    ).fetchone()
    buckets = json.loads(text)
    del buckets[shas[0][:3]]  # the image disappears from the version
    shell(
        project,
        "INSERT OR REPLACE INTO manifest_tree (hash, buckets, n_images, n_boxes) "
        "VALUES (?, ?, 4, 8)",
        (tree, json.dumps(buckets, sort_keys=True, separators=(",", ":"))),
    )
    err = refused(project, "yolo", tmp_path / "out")
    assert [(p.where, p.reason) for p in err.problems] == [
        (f"manifest tree {tree}", "content does not match its hash")
    ]


def test_a_version_row_given_another_tree_is_refused(labelled, tmp_path) -> None:
    project, shas = labelled
    first = resolve(project.db, "main")
    # a second, smaller version: its tree is a real, intact one
    with Staging(project) as staging:
        staging.commit(
            entries={shas[0]: Entry("", "train")},
            annsets={shas[0]: []},
            classes=first.classes,
            message="one image",
            provenance={},
            replace_all=True,
        )
    second = resolve(project.db, "main")
    # point the first version's row at the second's tree, keeping its id (issue 11, item 2)
    _replace_version_tree(project, first.id, second.tree)
    err = refused(project, "coco", tmp_path / "out", ref=first.id)
    (problem,) = err.problems
    assert problem.where == f"version {first.id}"
    assert "does not hash to its id" in problem.reason
    export_coco(project, tmp_path / "ok", ref=second.id)  # an intact version still exports


def _replace_version_tree(project: Project, vid: str, tree: str) -> None:
    con = sqlite3.connect(project.root / "labeldesk.db")
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(version)")]
        values = list(con.execute("SELECT * FROM version WHERE id = ?", [vid]).fetchone())
    finally:
        con.close()
    values[cols.index("tree")] = tree
    marks = ",".join("?" * len(cols))
    # the insert triggers refuse this now; shell() drops them first, as a hostile user would
    shell(project, f"INSERT OR REPLACE INTO version ({','.join(cols)}) VALUES ({marks})", values)


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_a_deleted_bucket_row_is_an_itemised_error_not_a_traceback(labelled, tmp_path, capsys, fmt):
    project, shas = labelled
    bh = bucket_of(project, shas[3])
    shell(project, "DELETE FROM manifest_bucket WHERE hash = ?", (bh,))
    before = snapshot(project)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "-p", str(project.root), "export", fmt, "--out", str(out))
    assert code == 1, err
    assert "Traceback" not in err
    assert f"manifest bucket {bh}: missing (images {shas[3][:3]}…" in err
    assert "labeldesk fsck" in err
    assert not out.exists() and snapshot(project) == before


def test_a_deleted_annotation_set_row_is_an_itemised_error(labelled, tmp_path, capsys) -> None:
    project, shas = labelled
    gone = [annset_of(project, shas[0]), annset_of(project, shas[4])]
    for h in gone:
        shell(project, "DELETE FROM annotation_set WHERE hash = ?", (h,))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "-p", str(project.root), "export", "yolo", "--out", str(out))
    assert code == 1 and "Traceback" not in err
    for h in gone:
        assert f"annotation set {h}: missing" in err
    assert "2 damaged" in err and not out.exists()


def test_rows_and_objects_are_listed_together(labelled, tmp_path) -> None:
    project, shas = labelled
    h = tamper_annset(project, shas[0])
    flip_byte(project, shas[1])
    err = refused(project, "coco", tmp_path / "out", link=True)
    assert {p.where for p in err.problems} == {f"annotation set {h}", f"object {shas[1]}"}


# -- evaluation and inference read verified data too --------------------------------------------


def test_evaluation_refuses_an_edited_annotation_set(labelled) -> None:
    from labeldesk.core.validation.evaluation import ImageIndex, ground_truth

    project, shas = labelled
    h = tamper_annset(project, shas[3])
    index = ImageIndex.build(project, "main")
    with pytest.raises(IntegrityError) as info:
        ground_truth(project, index)
    assert [p.where for p in info.value.problems] == [f"annotation set {h}"]


def _pad_annotation_sets(project: Project, n: int) -> None:
    """Store ``n`` sets no version uses, so a version's sets are a small part of the table."""
    from labeldesk.core.store.annotation_sets import put_annotation_set

    with project.transaction():
        for i in range(n):
            put_annotation_set(project.db, [Box(1, float(i), 1.0, 5.0, 5.0, state="imported")])


@pytest.mark.parametrize("sparse", [False, True], ids=["table-scan", "by-key"])
def test_ground_truth_reads_the_same_sets_by_scan_or_by_key(labelled, sparse) -> None:
    """A version's sets are read in one pass over the table when they are a good part of it,
    by key otherwise: both give the same labels and refuse the same damage, in hash order."""
    from labeldesk.core.validation.evaluation import ImageIndex, ground_truth

    project, shas = labelled
    before = ground_truth(project, ImageIndex.build(project, "main"))
    if sparse:
        _pad_annotation_sets(project, 40)  # 5 sets of 45: looked up by key
    index = ImageIndex.build(project, "main")
    gt = ground_truth(project, index)
    assert list(gt) == list(before) == index.shas
    for sha in shas:
        for a, b in zip(gt[sha], before[sha], strict=True):
            assert a.tolist() == b.tolist()
    edited = tamper_annset(project, shas[1])
    deleted = annset_of(project, shas[3])
    shell(project, "DELETE FROM annotation_set WHERE hash = ?", (deleted,))
    with pytest.raises(IntegrityError) as info:
        ground_truth(project, ImageIndex.build(project, "main"))
    assert [(p.where, p.reason) for p in info.value.problems] == [
        (f"annotation set {edited}", "content does not match its hash"),
        (f"annotation set {deleted}", "missing (a manifest entry refers to it)"),
    ]


def test_evaluation_refuses_a_version_with_a_deleted_bucket(labelled) -> None:
    from labeldesk.core.validation.evaluation import ImageIndex

    project, shas = labelled
    bh = bucket_of(project, shas[0])
    shell(project, "DELETE FROM manifest_bucket WHERE hash = ?", (bh,))
    with pytest.raises(IntegrityError, match="labeldesk fsck") as info:
        ImageIndex.build(project, "main")
    assert [p.where for p in info.value.problems] == [f"manifest bucket {bh}"]


def test_images_read_for_inference_are_verified(labelled, tmp_path) -> None:
    from labeldesk.core.inference.prelabel import _Prefetch

    project, shas = labelled
    # another valid image's bytes under this name: it decodes fine, but it is not this image
    path = _writable(project.objects.path(shas[2]))
    path.write_bytes(write_image(tmp_path / "other.png", seed=999).read_bytes())
    prefetch = _Prefetch(project, shas[:3])
    try:
        got = {sha: (img is not None, why) for sha, img, why in prefetch}
    finally:
        prefetch.close()
    assert got[shas[0]] == got[shas[1]] == (True, None)
    ok, why = got[shas[2]]
    assert not ok and "corrupt (content hashes to" in str(why)


# -- temporary folders of killed exports ---------------------------------------------------------

CHILD = """
import sys
from labeldesk.core.formats import export_coco
from labeldesk.core.store.project import Project

def ready(done, total, what):
    # the temporary folder exists and holds images: say so, then wait to be killed
    print("ready", flush=True)
    sys.stdin.read()

with Project.open(sys.argv[1]) as project:
    export_coco(project, sys.argv[2], progress=ready)
"""


def test_a_killed_exports_temp_folder_is_removed_by_the_next_export(labelled, tmp_path, capsys):
    project, _ = labelled
    parent = tmp_path / "exports"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(project.root), str(parent / "first")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        (temp,) = parent.iterdir()
        assert temp.name.startswith(".first.labeldesk-") and f"-{child.pid}-" in temp.name
        assert (temp / "images").is_dir()
        # while the exporting process lives, its folder is an export in progress: kept
        run_cli(capsys, "-p", str(project.root), "export", "coco", "--out", str(parent / "a"))
        assert temp.is_dir()
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdin:
            child.stdin.close()
        if child.stdout:
            child.stdout.close()
    assert temp.is_dir()  # a killed export cannot clean up after itself
    code, out, err = run_cli(
        capsys, "-p", str(project.root), "export", "yolo", "--out", str(parent / "first")
    )
    assert code == 0, err
    assert f"removed stale temp folder {temp} (left by an export that was killed: " in out
    assert f"process {child.pid} is gone" in out
    assert sorted(p.name for p in parent.iterdir()) == ["a", "first"]
    assert (parent / "first" / "data.yaml").is_file()


def test_only_this_hosts_dead_exports_are_cleaned(labelled, tmp_path) -> None:
    project, _ = labelled
    parent = tmp_path / "exports"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)  # a process that has exited: its pid is gone
    host = OutputFolder(parent / "x").tmp.name.split(".labeldesk-")[1].rsplit("-", 2)[0]
    stale = [
        parent / f".old.labeldesk-{host}-{pid}-0123abcd",
        parent / f".old.labeldesk-{pid}-0123abcd",
    ]
    kept = [
        parent / f".old.labeldesk-another-machine-{pid}-0123abcd",  # its pid means nothing here
        parent / f".old.labeldesk-{host}-{os.getpid()}-0123abcd",  # alive: in progress
        parent / ".old.labeldesk-notes",  # not one of ours
    ]
    for folder in stale + kept:
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "a.png").write_bytes(b"x")
    report = export_coco(project, parent / "new")
    assert sorted(report.stale_removed) == sorted((str(p), pid) for p in stale)
    assert all(p.is_dir() for p in kept) and not any(p.exists() for p in stale)
    assert report.to_json()["removed_stale_temp"] == [
        {"path": p, "pid": n} for p, n in report.stale_removed
    ]
