"""``add``: every awkward input either imports correctly or is skipped with its reason, and a
failure part-way leaves the project exactly as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import jpeg_bytes, png_bomb_bytes, snapshot, write_exif_oriented, write_image
from PIL import Image

from labeldesk.core.errors import CancelledError
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import Project


def _row(project: Project, sha: str) -> dict:
    cur = project.db.execute("SELECT * FROM image WHERE sha256 = ?", [sha])
    cols = [c[0] for c in cur.description]
    return dict(zip(cols, cur.fetchone(), strict=True))


def _sources(project: Project, sha: str) -> list[str]:
    return [
        r[0]
        for r in project.db.execute(
            "SELECT path FROM image_source WHERE sha256 = ? ORDER BY path", [sha]
        )
    ]


def test_add_imports_folder_recursively_and_commits_a_version(project, images) -> None:
    report = add_images(project, [images[0].parent])
    assert len(report.added) == 10 and not report.skipped and not report.duplicates
    v = report.version
    assert v is not None and v.kind == "import" and v.n_images == 10 and v.parents == []
    assert v.provenance["sources"] == [str(images[0].parent.absolute())]
    for a in report.added:
        assert project.objects.read_bytes(a.sha256) == Path(a.path).read_bytes()
        assert _row(project, a.sha256)["format"] == "PNG"


def test_users_files_are_never_modified(project, images) -> None:
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in images}
    add_images(project, images)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in images}
    assert before == after


def test_bad_inputs_are_skipped_with_reasons_and_good_ones_imported(project, tmp_path) -> None:
    old = write_image(tmp_path / "old" / "old.png", seed=99)
    add_images(project, [old])
    before = snapshot(project)

    src = tmp_path / "mixed"
    src.mkdir()
    good = jpeg_bytes(1, size=(80, 60))
    (src / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.jpg").write_text("this is text, not a JPEG\n")
    (src / "bomb.png").write_bytes(png_bomb_bytes())
    Image.new("CMYK", (30, 20), (10, 20, 30, 40)).save(src / "cmyk.jpg")
    Image.fromarray(np.arange(24 * 16, dtype=np.uint16).reshape(16, 24) * 100).save(
        src / "deep16.png"
    )
    pal = Image.new("P", (20, 10))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(src / "palette.png", transparency=0)
    write_image(src / "really_png.jpg", seed=5)  # a PNG wearing a .jpg name
    write_image(src / "ñandú_图像 (1).png", seed=6)
    write_image(src / "a" / "same.png", seed=7)
    write_image(src / "b" / "same.png", seed=8)
    write_image(src / "pic.bmp", seed=9, fmt="BMP")
    write_image(src / "pic.tiff", seed=10, fmt="TIFF")
    write_image(src / "pic.webp", seed=11, fmt="WEBP", lossless=True)
    outside = write_image(tmp_path / "elsewhere" / "secret.png", seed=12)
    os.symlink(outside, src / "link_out.png")
    os.symlink(src / "pic.bmp", src / "link_in.bmp")  # inside: same content, a duplicate

    report = add_images(project, [src])
    skipped = {Path(p.where).name: p.reason for p in report.skipped}
    assert set(skipped) == {"truncated.jpg", "empty.jpg", "notes.jpg", "bomb.png", "link_out.png"}
    assert "truncated" in skipped["truncated.jpg"]
    assert "empty file" in skipped["empty.jpg"]
    assert "not an image" in skipped["notes.jpg"]
    assert "decompression bomb" in skipped["bomb.png"] and "900 MP" in skipped["bomb.png"]
    assert "outside" in skipped["link_out.png"]

    added = {Path(a.path).name: a for a in report.added}
    assert set(added) == {
        "cmyk.jpg",
        "deep16.png",
        "palette.png",
        "really_png.jpg",
        "ñandú_图像 (1).png",
        "same.png",
        "link_in.bmp",  # sorts before pic.bmp, which is then its duplicate
        "pic.tiff",
        "pic.webp",
    }
    assert len([a for a in report.added if Path(a.path).name == "same.png"]) == 2
    assert added["cmyk.jpg"].info.mode == "CMYK"
    assert added["deep16.png"].info.mode.startswith("I")
    assert added["palette.png"].info.mode == "P"
    assert added["really_png.jpg"].info.format == "PNG"
    assert (added["pic.webp"].info.format, added["pic.tiff"].info.format) == ("WEBP", "TIFF")
    assert added["link_in.bmp"].info.format == "BMP"
    assert [Path(d.path).name for d in report.duplicates] == ["pic.bmp"]
    uni = added["ñandú_图像 (1).png"]
    assert _sources(project, uni.sha256) == [str((src / "ñandú_图像 (1).png").absolute())]

    # nothing that was in the project changed: every old row and object is still there as is
    after = snapshot(project)
    for table, rows in before.items():
        if table in ("ref",):
            continue
        assert set(rows) <= set(after[table]), table
    assert report.version is not None and report.version.parents == [
        project.db.execute("SELECT id FROM version WHERE seq = 1").fetchone()[0]
    ]
    assert fsck(project).ok


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_size(project, tmp_path, orientation) -> None:
    path = write_exif_oriented(tmp_path / f"o{orientation}.jpg", orientation, size=(60, 40))
    report = add_images(project, [path])
    (a,) = report.added
    row = _row(project, a.sha256)
    assert row["orientation"] == orientation
    assert (row["raw_width"], row["raw_height"]) == (60, 40)
    expected = (40, 60) if orientation >= 5 else (60, 40)
    assert (row["width"], row["height"]) == expected


def test_duplicates_are_stored_once_and_reported(project, tmp_path) -> None:
    a = write_image(tmp_path / "x" / "one.png", seed=1)
    b = tmp_path / "y" / "copy.png"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    r1 = add_images(project, [a, b])
    assert len(r1.added) == 1 and [d.of for d in r1.duplicates] == [str(a)]
    assert len(_sources(project, r1.added[0].sha256)) == 2
    r2 = add_images(project, [a])
    assert not r2.added and r2.version is None
    assert [d.of for d in r2.duplicates] == ["the project"]
    assert len(list(project.objects.iter_objects())) == 1


def test_exception_mid_import_leaves_project_exactly_as_before(
    project, tmp_path, monkeypatch
) -> None:
    add_images(project, [write_image(tmp_path / "first.png", seed=100)])
    before = snapshot(project)
    monkeypatch.setattr("labeldesk.core.store.importer.CHUNK", 4)
    monkeypatch.setattr("labeldesk.core.store.importer.STEP_FILES", 4)
    files = [write_image(tmp_path / "batch" / f"{i}.png", seed=i) for i in range(12)]

    def explode(done: int, total: int, what: str) -> None:
        if done >= 8:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        add_images(project, files, progress=explode)
    assert snapshot(project) == before

    with pytest.raises(CancelledError):
        add_images(project, files, cancel=lambda: len(list(project.objects.iter_objects())) > 4)
    assert snapshot(project) == before
    assert fsck(project).ok


def test_disk_full_mid_import_leaves_project_exactly_as_before(project, tmp_path) -> None:
    """A real write failure: the child process may not write files over 64 kB (RLIMIT_FSIZE),
    so the large image fails with EFBIG after the small ones were stored."""
    add_images(project, [write_image(tmp_path / "first.png", seed=100)])
    before = snapshot(project)
    batch = tmp_path / "batch"
    for i in range(5):
        write_image(batch / f"a{i}.png", seed=i)
    write_image(batch / "z_big.png", seed=50, size=(400, 300))  # ~360 kB of noise
    assert (batch / "z_big.png").stat().st_size > 64 * 1024
    root = project.root
    project.close()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from labeldesk.core.store.project import Project
        from labeldesk.core.store.importer import add_images
        p = Project.open({str(root)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            add_images(p, [{str(batch)!r}], workers=1)
        except OSError as e:
            print("failed:", e)
            sys.exit(3)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "too large" in r.stdout.lower()
    with Project.open(root) as again:
        assert snapshot(again) == before
        assert fsck(again).ok


def test_staging_hands_frozen_objects_back_to_the_collector_however_it_ends(
    project, tmp_path
) -> None:
    """A staging keeps full garbage collections off the objects that existed when it began
    (gc.freeze) and unfreezes them when it ends, committed or failed, nested or not."""
    import gc

    from labeldesk.core.store.importer import Staging

    assert gc.get_freeze_count() == 0
    files = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    with Staging(project) as outer:
        assert gc.get_freeze_count() > 0
        with pytest.raises(RuntimeError), Staging(project) as inner:
            inner.stage_files(files[:1])
            raise RuntimeError("inner import fails")
        assert gc.get_freeze_count() > 0  # the outer staging is still running
        outer.stage_files(files)
        outer.commit(entries={}, annsets={}, classes=None, message="m", provenance={})
    assert gc.get_freeze_count() == 0
    add_images(project, files)
    assert gc.get_freeze_count() == 0
