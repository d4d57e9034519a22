"""Input that must be refused or reported, not half-used (issue 11, items 5, 7 and 8).

Label files no image claims are reported with their box count; a YAML alias bomb is refused
before it expands and every problem text is capped; a symbolic link that leads out of the
dataset is refused by ``add``, ``import coco`` and ``import yolo`` alike unless the user asks
to follow links. Real files, real links, real projects."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import snapshot, write_image

from labeldesk.core.errors import MAX_PROBLEM_TEXT, InputError, Problem
from labeldesk.core.formats import ImportOptions, import_coco, import_yolo
from labeldesk.core.formats.common import MAX_YAML_ALIASES
from labeldesk.core.store.importer import add_images

ROWS = "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.125\n"
FOLLOW = ImportOptions(follow_links=True)


def make_yolo(root: Path, n_train: int = 2, n_val: int = 1) -> Path:
    seed = 0
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            write_image(root / "images" / split / f"{split[0]}{i}.png", seed=seed)
            seed += 1
            label = root / "labels" / split / f"{split[0]}{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(ROWS)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n")
    return root


def make_coco(root: Path, names=("a.png", "b.png")) -> Path:
    images = []
    for i, name in enumerate(names, 1):
        if not (root / "images" / name).exists() and not (root / "images" / name).is_symlink():
            write_image(root / "images" / name, seed=40 + i)
        images.append({"id": i, "file_name": name, "width": 64, "height": 48})
    anns = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [1, 2, 10, 8]}
        for i in range(1, len(names) + 1)
    ]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return path


CATS = [{"id": 1, "name": "thing"}]


def refused(fn, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return info.value


def where_reasons(err: InputError) -> dict[str, str]:
    return {Path(p.where.split(":")[0]).name: p.reason for p in err.problems}


# -- item 5: label files without an image ------------------------------------------------------


def test_yolo_label_files_without_an_image_are_reported_with_their_boxes(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    (ds / "labels" / "train" / "deleted.txt").write_text(ROWS * 3 + "\n")  # 6 rows, a blank
    (ds / "labels" / "val" / "sub").mkdir()
    (ds / "labels" / "val" / "sub" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n" * 6)
    # an image Ultralytics does not list (.gif): its label file is an orphan too
    write_image(ds / "images" / "train" / "anim.gif", seed=9, fmt="GIF")
    (ds / "labels" / "train" / "anim.txt").write_text(ROWS)

    report = import_yolo(project, ds)

    assert (report.n_images, report.n_boxes) == (3, 6)  # only the paired files
    orphans = {Path(f).name: n for f, n in report.labels_without_image}
    assert orphans == {"deleted.txt": 6, "gone.txt": 6, "anim.txt": 2}
    notes = {Path(n.where).name: n.reason for n in report.notes}
    assert "label file without an image" in notes["deleted.txt"]
    assert "6 box(es) were not imported" in notes["gone.txt"]
    data = report.to_json()
    assert sorted((Path(o["file"]).name, o["boxes"]) for o in data["labels_without_image"]) == [
        ("anim.txt", 2),
        ("deleted.txt", 6),
        ("gone.txt", 6),
    ]
    assert {Path(n["where"]).name for n in data["notes"]} >= {"deleted.txt", "gone.txt"}


def test_flat_layout_reports_orphans_but_not_classes_txt(project, tmp_path):
    ds = tmp_path / "flat"
    write_image(ds / "a.png", seed=1)
    (ds / "a.txt").write_text(ROWS)
    (ds / "b.txt").write_text(ROWS)  # its image was deleted
    (ds / "classes.txt").write_text("cat\ndog\n")
    report = import_yolo(project, ds)
    assert [(Path(f).name, n) for f, n in report.labels_without_image] == [("b.txt", 2)]


def test_a_complete_dataset_reports_no_orphans(project, tmp_path):
    report = import_yolo(project, make_yolo(tmp_path / "ds"))
    assert report.labels_without_image == []
    assert not [n for n in report.notes if "without an image" in n.reason]


def test_coco_annotations_of_a_missing_image_are_refused(project, tmp_path):
    """COCO says which image each box belongs to; an id that names no image record means the
    file is inconsistent, so it is refused (itemised), not imported without those boxes."""
    path = make_coco(tmp_path / "coco")
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 9, "image_id": 77, "category_id": 1, "bbox": [1, 1, 4, 4]})
    path.write_text(json.dumps(data))
    before = snapshot(project)
    err = refused(import_coco, project, [path])
    assert [str(p) for p in err.problems] == [
        f"{path}: annotations[2] (id 9): image_id 77 is not in images"
    ]
    assert snapshot(project) == before


# -- item 7: YAML alias bomb, capped messages --------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs under ``names``: ``width ** levels`` strings from about 1.4 KB."""
    lines = ["names:", f"  - &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  - &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "train: images/train\nval: images/val\n" + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    (ds / "data.yaml").write_text(alias_bomb())
    assert (ds / "data.yaml").stat().st_size < 1500  # the size from the report
    before = snapshot(project)
    err = refused(import_yolo, project, ds)
    (problem,) = err.problems
    assert problem.where.endswith("data.yaml")
    assert "alias" in problem.reason and "refused before expanding" in problem.reason
    assert len(str(err)) < 500
    assert snapshot(project) == before


def test_many_aliases_and_a_self_referring_alias_are_refused(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    many = ", ".join(["*n"] * (MAX_YAML_ALIASES + 1))
    (ds / "data.yaml").write_text(f"x: &n cat\ntrain: images/train\nnames: [{many}]\n")
    (p,) = refused(import_yolo, project, ds).problems
    assert f"more than {MAX_YAML_ALIASES} YAML aliases" in p.reason
    (ds / "data.yaml").write_text("train: images/train\nnames: &a [cat, *a]\n")
    (p,) = refused(import_yolo, project, ds).problems
    assert "refers to a value that contains it" in p.reason


def test_a_few_aliases_are_fine(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    (ds / "data.yaml").write_text(
        "base: &split images/train\ntrain: *split\nval: images/val\nnames: &n [cat, dog]\n"
    )
    assert import_yolo(project, ds).version.classes == [
        {"id": 1, "name": "cat"},
        {"id": 2, "name": "dog"},
    ]


def test_every_problem_text_is_capped(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    huge = "x" * 200_000
    nested = json.dumps([list(range(1000))] * 3)  # JSON is YAML: names that are not names
    (ds / "data.yaml").write_text(f'train: "{huge}"\nval: images/val\nnames: {nested}\n')
    err = refused(import_yolo, project, ds)
    assert len(err.problems) >= 4
    for p in err.problems:
        assert len(p.where) <= MAX_PROBLEM_TEXT and len(p.reason) <= MAX_PROBLEM_TEXT
    assert len(str(err)) < 5000
    names = [p.reason for p in err.problems if p.reason.startswith("names[0]")]
    assert names and "..." in names[0]  # the value is quoted, abridged
    train = next(p for p in err.problems if ": train: " in p.where)
    assert "characters left out" in train.where and train.where.endswith(huge[-10:])


def test_problem_caps_where_and_reason_keeping_both_ends():
    p = Problem("dir/" * 1000 + "name.png", "r" * 10_000 + " (use --clip)")
    assert len(p.where) <= MAX_PROBLEM_TEXT and p.where.endswith("name.png")
    assert len(p.reason) <= MAX_PROBLEM_TEXT and p.reason.endswith("(use --clip)")
    assert "characters left out" in p.reason
    assert Problem("short", "text") == Problem("short", "text")  # untouched when short


# -- item 8: links that lead outside the dataset -----------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every dataset: an image, a folder of images and a secret text file."""
    root = tmp_path / "elsewhere"
    write_image(root / "stray.png", seed=70)
    for i in range(2):
        write_image(root / "folder" / f"o{i}.png", seed=71 + i)
    (root / "secret.txt").write_text("root:x:0:0:secret\n")
    return root


def test_yolo_refuses_a_linked_image_that_leads_outside(project, tmp_path, outside):
    ds = make_yolo(tmp_path / "ds")
    os.symlink(outside / "stray.png", ds / "images" / "train" / "stray.png")
    before = snapshot(project)
    err = refused(import_yolo, project, ds)
    (p,) = err.problems
    assert p.where.endswith("stray.png")
    assert "leads outside" in p.reason and "--follow-links" in p.reason
    assert snapshot(project) == before
    report = import_yolo(project, ds, options=FOLLOW)
    assert report.n_images == 4  # the linked image is read when asked for


def test_yolo_refuses_a_linked_folder_and_reports_it(project, tmp_path, outside):
    ds = make_yolo(tmp_path / "ds")
    os.symlink(outside / "folder", ds / "images" / "train" / "more")
    err = refused(import_yolo, project, ds)
    (p,) = err.problems
    assert p.where.endswith("more") and p.reason.startswith("linked folder: ")
    assert "leads outside" in p.reason
    assert import_yolo(project, ds, options=FOLLOW).n_images == 5


def test_yolo_refuses_a_split_folder_that_is_a_link_out(project, tmp_path, outside):
    ds = make_yolo(tmp_path / "ds")
    os.symlink(outside / "folder", ds / "images" / "test")
    (ds / "data.yaml").write_text(
        "train: images/train\nval: images/val\ntest: images/test\nnames: [cat, dog]\n"
    )
    (p,) = refused(import_yolo, project, ds).problems
    assert p.where.endswith("test") and "leads outside" in p.reason


def test_yolo_never_reads_a_label_file_that_links_out(project, tmp_path, outside):
    ds = make_yolo(tmp_path / "ds")
    label = ds / "labels" / "train" / "t0.txt"
    label.unlink()
    os.symlink(outside / "secret.txt", label)
    err = refused(import_yolo, project, ds)
    (p,) = err.problems
    assert p.where.endswith("t0.txt") and "leads outside" in p.reason
    assert "secret" not in str(err).replace("secret.txt", "")  # its content is not shown


def test_yolo_follows_links_that_stay_inside_and_reports_a_loop(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    write_image(ds / "extra" / "e0.png", seed=50)
    (ds / "labels" / "train" / "also").mkdir()
    (ds / "labels" / "train" / "also" / "e0.txt").write_text(ROWS)
    os.symlink(ds / "extra", ds / "images" / "train" / "also")  # inside the dataset: read
    os.symlink(ds / "images", ds / "images" / "train" / "loop")  # back up: a loop
    report = import_yolo(project, ds)
    assert report.n_images == 4 and report.n_boxes == 8
    (loop,) = [n for n in report.notes if n.where.endswith("loop")]
    assert "a loop" in loop.reason and "not read again" in loop.reason


def test_coco_refuses_linked_images_and_folders_that_lead_outside(project, tmp_path, outside):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    os.symlink(outside / "stray.png", root / "images" / "c.png")
    os.symlink(outside / "folder", root / "images" / "sub")
    path = make_coco(root, ("a.png", "c.png", "sub/o0.png"))
    before = snapshot(project)
    err = refused(import_coco, project, [path])
    assert [p.where.split(": ")[-1] for p in err.problems] == [
        "images[1] (id 2)",
        "images[2] (id 3)",
    ]
    assert all("leads outside" in p.reason and "--follow-links" in p.reason for p in err.problems)
    assert snapshot(project) == before
    assert import_coco(project, [path], options=FOLLOW).n_images == 3


def test_coco_link_inside_the_images_folder_is_fine(project, tmp_path):
    root = tmp_path / "coco"
    write_image(root / "images" / "real" / "a.png", seed=3)
    os.symlink(root / "images" / "real", root / "images" / "alias")
    path = make_coco(root, ("alias/a.png",))
    assert import_coco(project, [path]).n_images == 1


def test_add_uses_the_same_rule_for_files_and_folders(project, tmp_path, outside):
    src = tmp_path / "src"
    write_image(src / "own.png", seed=60)
    write_image(src / "inner" / "i.png", seed=61)
    os.symlink(outside / "stray.png", src / "stray.png")
    os.symlink(outside / "folder", src / "linked")
    os.symlink(src / "inner", src / "same")  # inside: its files are read once, then reported
    os.symlink(src, src / "inner" / "up")  # a loop back to the folder being read
    os.symlink(src / "nothing.png", src / "broken.png")

    report = add_images(project, [src])
    assert sorted(Path(a.path).name for a in report.added) == ["i.png", "own.png"]
    skipped = {Path(p.where).name: p.reason for p in report.skipped}
    assert set(skipped) == {"stray.png", "linked", "same", "up", "broken.png"}
    assert "leads outside" in skipped["stray.png"] and "--follow-links" in skipped["stray.png"]
    assert skipped["linked"].startswith("linked folder: ")
    assert "loop" in skipped["up"]
    assert "already read" in skipped["same"]
    assert "broken symbolic link" in skipped["broken.png"]

    report = add_images(project, [src], follow_links=True)
    assert sorted(Path(a.path).name for a in report.added) == ["o0.png", "o1.png", "stray.png"]
    assert {Path(p.where).name for p in report.skipped} == {"same", "up", "broken.png"}


def test_a_label_folder_that_links_out_is_refused_once_per_label(project, tmp_path, outside):
    ds = make_yolo(tmp_path / "ds")
    moved = outside / "labels-train"
    (ds / "labels" / "train").rename(moved)
    os.symlink(moved, ds / "labels" / "train")
    err = refused(import_yolo, project, ds)
    assert sorted(Path(p.where).name for p in err.problems) == ["t0.txt", "t1.txt"]
    assert all("leads outside" in p.reason for p in err.problems)
    assert import_yolo(project, ds, options=FOLLOW).n_boxes == 6


def test_a_fifo_is_reported_never_opened(project, tmp_path):
    ds = make_yolo(tmp_path / "ds")
    label = ds / "labels" / "train" / "t0.txt"
    label.unlink()
    os.mkfifo(label)  # reading it would block forever
    os.mkfifo(ds / "images" / "val" / "pipe.png")
    err = refused(import_yolo, project, ds)
    assert sorted((Path(p.where).name, p.reason) for p in err.problems) == [
        ("pipe.png", "not a regular file"),
    ]
    (ds / "images" / "val" / "pipe.png").unlink()
    (p,) = refused(import_yolo, project, ds).problems
    assert (Path(p.where).name, p.reason) == ("t0.txt", "not a regular file")
    report = add_images(project, [ds / "labels"])
    assert [(Path(s.where).name, s.reason) for s in report.skipped][:1] == [
        ("t0.txt", "not a regular file")
    ]


def test_notes_beyond_the_limit_are_counted_not_dropped(project, tmp_path):
    from labeldesk.core.formats.common import Notes

    notes = Notes(limit=3)
    for i in range(10):
        notes.add(f"f{i}", "clipped")
    assert [n.where for n in notes] == ["f0", "f1", "f2", "…"]
    assert notes[-1].reason == "7 more notes not listed"


def test_a_linked_label_folder_not_searched_for_orphans_is_said(project, tmp_path, outside):
    ds = make_yolo(tmp_path / "ds")
    (outside / "more").mkdir()
    (outside / "more" / "x.txt").write_text(ROWS)
    os.symlink(outside / "more", ds / "labels" / "val" / "more")
    report = import_yolo(project, ds)
    (note,) = [n for n in report.notes if n.where.endswith("more")]
    assert "not searched" in note.reason and "--follow-links" in note.reason
    with_links = import_yolo(project, ds, options=FOLLOW)
    assert [Path(f).name for f, _ in with_links.labels_without_image] == ["x.txt"]


def test_the_link_rule_is_not_fooled_by_dotdot_after_a_link(tmp_path, outside):
    from labeldesk.core.paths import link_problem

    scope = tmp_path / "scope"
    scope.mkdir()
    os.symlink(outside / "folder", scope / "link")
    sneaky = scope / "link" / ".." / "stray.png"  # lexically scope/stray.png; really outside
    assert "leads outside" in str(link_problem(sneaky, scope))
    assert link_problem(sneaky, scope, follow_links=True) is None
    write_image(scope / "plain.png")
    assert link_problem(scope / "plain.png", scope) is None
    assert link_problem(scope / "missing.png", scope) is None  # missing: the caller's to say
