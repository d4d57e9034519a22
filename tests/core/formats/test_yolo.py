"""YOLO import and export: Ultralytics layouts in and out, exact round trips, byte-identical
exports, Ultralytics' own checker, loader and trainer on the export, and every kind of bad input
refused with an itemised list and the project unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import red_fraction, snapshot, write_image, write_oriented

from labeldesk.core.errors import CancelledError, InputError
from labeldesk.core.formats import ImportOptions, export_coco, export_yolo, import_coco, import_yolo
from labeldesk.core.formats.yolo_reader import label_path
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import resolve

ROWS = "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.125\n"


def make_yolo(
    root: Path, *, n_train: int = 3, n_val: int = 2, names=("cat", "dog"), size=(64, 48)
) -> Path:
    """A small Ultralytics dataset with a data.yaml; label rows ROWS in every image."""
    seed = 0
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(root / "images" / split / f"{split[0]}{i}.png", seed=seed, size=size)
            seed += 1
            lbl = root / "labels" / split / f"{split[0]}{i}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(ROWS)
    names_yaml = "".join(f"  - {n}\n" for n in names)
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames:\n{names_yaml}")
    return root


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def entries(project: Project, ref: str = "main") -> dict:
    store = ManifestStore(project.db)
    return dict(store.entries(store.tree(resolve(project.db, ref).tree)))


def boxes(project: Project, sha: str) -> list[tuple]:
    e = entries(project)[sha]
    return sorted((b.cls, b.x, b.y, b.w, b.h) for b in load_annotation_set(project.db, e.annset))


# -- import -------------------------------------------------------------------------------------


def test_import_reads_splits_classes_names_and_pixel_boxes(project, tmp_path) -> None:
    make_yolo(tmp_path / "ds")
    report = import_yolo(project, tmp_path / "ds")
    v = report.version
    assert v.kind == "import" and v.n_images == 5 and v.n_boxes == 10
    assert v.classes == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert v.provenance["format"] == "yolo"
    assert v.provenance["sources"] == [str((tmp_path / "ds" / "data.yaml").absolute())]
    es = entries(project)
    assert sorted((e.split, e.meta_dict["file_name"]) for e in es.values()) == [
        ("train", "t0.png"),
        ("train", "t1.png"),
        ("train", "t2.png"),
        ("val", "v0.png"),
        ("val", "v1.png"),
    ]
    sha = next(iter(es))
    # 0 0.5 0.5 0.25 0.5 on 64x48 -> x 24, y 12, w 16, h 24; class index 0 -> class id 1
    assert boxes(project, sha) == [(1, 24.0, 12.0, 16.0, 24.0), (2, 12.0, 9.0, 8.0, 6.0)]


def test_flat_layout_with_classes_txt(project, tmp_path) -> None:
    ds = tmp_path / "flat"
    write_image(ds / "images" / "a.png", seed=1)
    write_image(ds / "images" / "val" / "b.png", seed=2)
    (ds / "labels" / "val").mkdir(parents=True)
    (ds / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (ds / "labels" / "val" / "b.txt").write_text("")
    (ds / "classes.txt").write_text("person\ncar\n\n")
    v = import_yolo(project, ds).version
    assert v.classes == [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]
    assert sorted((str(e.split), e.meta_dict["file_name"]) for e in entries(project).values()) == [
        ("None", "a.png"),
        ("val", "b.png"),
    ]
    assert v.n_boxes == 1


def test_side_by_side_layout(project, tmp_path) -> None:
    ds = tmp_path / "side"
    write_image(ds / "a.png", seed=1)
    (ds / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (ds / "classes.txt").write_text("thing\n")
    v = import_yolo(project, ds).version
    assert v.n_images == 1 and v.n_boxes == 1


def test_import_into_a_project_with_classes_maps_by_name(project, tmp_path) -> None:
    make_yolo(tmp_path / "a", n_train=1, n_val=0)
    import_yolo(project, tmp_path / "a")
    ds = make_yolo(tmp_path / "b", n_train=1, n_val=0, names=("dog", "bird"))
    # b's images are a's image bytes too; give b one of its own
    write_image(ds / "images" / "train" / "t0.png", seed=77)
    v = import_yolo(project, ds).version
    assert v.classes == [
        {"id": 1, "name": "cat"},
        {"id": 2, "name": "dog"},
        {"id": 3, "name": "bird"},
    ]
    new = [s for s, e in entries(project).items() if e.meta_dict["file_name"] == "t0.png"]
    assert any(boxes(project, s)[0][0] == 2 for s in new)  # dog is index 0 in b, id 2 here


def test_names_as_mapping_and_a_moved_absolute_path(project, tmp_path) -> None:
    ds = make_yolo(tmp_path / "ds", n_train=1, n_val=1)
    (ds / "data.yaml").write_text(
        'path: "/no/such/place"\ntrain: images/train\nval: images/val\n'
        "nc: 2\nnames:\n  0: cat\n  1: dog\n"
    )
    report = import_yolo(project, ds)
    assert report.version.classes[1] == {"id": 2, "name": "dog"}
    assert any("using the folder of the data.yaml" in n.reason for n in report.notes)


def test_missing_label_file_is_reported_as_unlabelled_not_background(project, tmp_path) -> None:
    ds = make_yolo(tmp_path / "ds", n_train=2, n_val=1)
    (ds / "labels" / "train" / "t1.txt").unlink()
    (ds / "labels" / "val" / "v0.txt").write_text("")  # empty file: known background
    report = import_yolo(project, ds)
    (note,) = [n for n in report.notes if "no label file" in n.reason]
    assert note.where.endswith("t1.png") and "unlabelled" in note.reason
    tags = {e.meta_dict["file_name"]: e.tags for e in entries(project).values()}
    assert tags == {"t0.png": (), "t1.png": ("unlabelled",), "v0.png": ()}
    export_yolo(project, tmp_path / "out")
    assert not (tmp_path / "out" / "labels" / "train" / "t1.txt").exists()
    assert (tmp_path / "out" / "labels" / "val" / "v0.txt").read_text() == ""
    with Project.init(tmp_path / "p2") as p2:
        assert import_yolo(p2, tmp_path / "out").version.tree == resolve(project.db, "main").tree


def test_cancelled_import_leaves_the_project_unchanged(project, tmp_path) -> None:
    make_yolo(tmp_path / "ds")
    before = snapshot(project)
    with pytest.raises(CancelledError):
        import_yolo(project, tmp_path / "ds", cancel=lambda: True)
    assert snapshot(project) == before


# -- export -------------------------------------------------------------------------------------


def test_export_layout_data_yaml_and_label_files(project, tmp_path) -> None:
    make_yolo(tmp_path / "ds", n_train=2, n_val=1)
    (tmp_path / "ds" / "labels" / "val" / "v0.txt").write_text("")
    import_yolo(project, tmp_path / "ds")
    report = export_yolo(project, tmp_path / "out")
    assert report.n_images == 3 and report.n_boxes == 4
    out = tmp_path / "out"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "cat", 1: "dog"},
    }
    assert sorted(files_of(out)) == [
        "data.yaml",
        "images/train/t0.png",
        "images/train/t1.png",
        "images/val/v0.png",
        "labels/train/t0.txt",
        "labels/train/t1.txt",
        "labels/val/v0.txt",
    ]
    assert (out / "labels" / "train" / "t0.txt").read_text() == (
        "0 0.5000000000 0.5000000000 0.2500000000 0.5000000000\n"
        "1 0.2500000000 0.2500000000 0.1250000000 0.1250000000\n"
    )
    assert (out / "labels" / "val" / "v0.txt").read_text() == ""  # no boxes: empty file
    src = tmp_path / "ds" / "images" / "train" / "t0.png"
    assert (out / "images" / "train" / "t0.png").read_bytes() == src.read_bytes()


def test_versions_without_splits_still_train_as_is(project, tmp_path) -> None:
    add_images(project, [write_image(tmp_path / "s" / f"x{i}.png", seed=i) for i in range(2)])
    export_yolo(project, tmp_path / "out", portable=True)
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert data["train"] == data["val"] == data["unassigned"] == "images/unassigned"
    assert "path" not in data
    with Project.init(tmp_path / "p2") as p2:
        import_yolo(p2, tmp_path / "out")
        assert {e.split for e in entries(p2).values()} == {None}


def test_exporting_twice_gives_byte_identical_files(project, tmp_path) -> None:
    make_yolo(tmp_path / "ds")
    import_yolo(project, tmp_path / "ds")
    export_yolo(project, tmp_path / "a", portable=True)
    export_yolo(project, tmp_path / "b", portable=True)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    export_yolo(project, tmp_path / "c")
    export_yolo(project, tmp_path / "d")
    c, d = files_of(tmp_path / "c"), files_of(tmp_path / "d")
    assert c.keys() == d.keys()
    assert [k for k in c if c[k] != d[k]] == ["data.yaml"]  # only its absolute path differs


def test_round_trip_is_exact_and_a_second_export_is_identical(project, tmp_path) -> None:
    make_yolo(tmp_path / "ds")
    original = import_yolo(project, tmp_path / "ds").version
    export_yolo(project, tmp_path / "out1", portable=True)
    with Project.init(tmp_path / "p2") as p2:
        again = import_yolo(p2, tmp_path / "out1").version
        assert (again.tree, again.classes) == (original.tree, original.classes)
        export_yolo(p2, tmp_path / "out2", portable=True)
    assert files_of(tmp_path / "out1") == files_of(tmp_path / "out2")


def test_boxes_survive_yolo_to_the_last_digit_on_large_images(project, tmp_path) -> None:
    """10 decimals keep 1e-4 px exact even on a 6000 px wide image, where 6 would not."""
    write_image(tmp_path / "ds" / "images" / "wide.png", size=(6000, 20))
    bbox = [1234.5678, 1.2345, 3210.9876, 17.0001]
    (tmp_path / "ds" / "ann.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "wide.png", "width": 6000, "height": 20}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": bbox}],
                "categories": [{"id": 5, "name": "x"}],
            }
        )
    )
    import_coco(project, [tmp_path / "ds" / "ann.json"])
    export_yolo(project, tmp_path / "out")
    with Project.init(tmp_path / "p2") as p2:
        import_yolo(p2, tmp_path / "out")
        (sha,) = entries(p2)
        assert boxes(p2, sha) == [(1, *bbox)]


def test_boxes_reaching_outside_the_image_are_clipped_on_export(project, tmp_path) -> None:
    from labeldesk.core.formats.yolo import label_text

    text, clipped, dropped, bad = label_text(
        [
            {"class": 4, "x": -10.0, "y": 5.0, "w": 30.0, "h": 10.0},
            {"class": 4, "x": 500.0, "y": 5.0, "w": 3.0, "h": 3.0},
            {"class": 9, "x": 1.0, "y": 1.0, "w": 1.0, "h": 1.0},
        ],
        {4: 0},
        100,
        50,
    )
    assert text == "0 0.1000000000 0.2000000000 0.2000000000 0.2000000000\n"
    assert (clipped, dropped, bad) == (1, 1, {9: 1})


# -- real tools ---------------------------------------------------------------------------------


def test_ultralytics_checker_reads_every_image_and_label(project, tmp_path) -> None:
    from ultralytics.data.utils import check_det_dataset, img2label_paths, verify_image_label

    make_yolo(tmp_path / "ds", n_train=4, n_val=2)
    (tmp_path / "ds" / "labels" / "val" / "v1.txt").write_text("")
    import_yolo(project, tmp_path / "ds")
    export_yolo(project, tmp_path / "out")
    data = check_det_dataset(str(tmp_path / "out" / "data.yaml"))
    assert data["nc"] == 2 and data["names"] == {0: "cat", 1: "dog"}
    totals = np.zeros(4, int)
    n_labels = 0
    for split in ("train", "val"):
        ims = sorted(str(p) for p in Path(data[split]).rglob("*.png"))
        for im, lb in zip(ims, img2label_paths(ims), strict=True):
            res = verify_image_label((im, lb, "", False, data["nc"], 0, 0, False))
            nm, nf, ne, nc, msg = res[5:]
            assert msg == "", msg
            totals += (nm, nf, ne, nc)
            n_labels += len(res[1])
    assert list(totals) == [0, 6, 1, 0]  # none missing, 6 found, 1 empty, none corrupt
    assert n_labels == 10


def test_all_eight_orientations_land_on_the_object_in_ultralytics(project, tmp_path) -> None:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    box = (10, 20, 25, 15)
    for o in range(1, 9):
        write_oriented(tmp_path / "ds" / "images" / "train" / f"o{o}.jpg", o, box)
        # YOLO rows are normalised to the upright 80x60 frame
        lbl = tmp_path / "ds" / "labels" / "train" / f"o{o}.txt"
        lbl.parent.mkdir(parents=True, exist_ok=True)
        lbl.write_text(f"0 {(10 + 12.5) / 80} {(20 + 7.5) / 60} {25 / 80} {15 / 60}\n")
    (tmp_path / "ds" / "data.yaml").write_text(
        "train: images/train\nval: images/train\nnames: [red]\n"
    )
    import_yolo(project, tmp_path / "ds")
    report = export_yolo(project, tmp_path / "out")
    assert report.reencoded == 7
    data = check_det_dataset(str(tmp_path / "out" / "data.yaml"))
    ds = YOLODataset(img_path=data["train"], data=data, imgsz=80, augment=False, task="detect")
    assert len(ds) == 8
    for i in range(len(ds)):
        item = ds.get_image_and_label(i)  # what the training loader feeds the model
        rgb = item["img"][..., ::-1]
        h, w = rgb.shape[:2]
        inst = item["instances"]
        inst.convert_bbox("xywh")
        cx, cy, bw, bh = inst.bboxes[0] * ([w, h, w, h] if inst.normalized else 1)
        assert red_fraction(rgb, (cx - bw / 2, cy - bh / 2, bw, bh)) > 0.95, item["im_file"]


def test_one_epoch_of_ultralytics_training_completes_on_the_export(project, tmp_path) -> None:
    from ultralytics import YOLO

    from labeldesk.core.demo.synth import write_yolo_dataset

    write_yolo_dataset(tmp_path / "synth", 6, 2, size=(96, 64))
    import_yolo(project, tmp_path / "synth")
    export_yolo(project, tmp_path / "out")
    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(tmp_path / "out" / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=4,
        device="cpu",
        workers=0,
        amp=False,
        plots=False,
        val=False,
        pretrained=False,
        save=False,
        project=str(tmp_path / "runs"),
        name="t",
        verbose=False,
    )
    assert model.trainer is not None and model.trainer.epoch == 0
    assert (tmp_path / "runs" / "t" / "results.csv").exists() or model.trainer.metrics


# -- EXIF helpers -------------------------------------------------------------------------------

# -- bad input ----------------------------------------------------------------------------------

BAD_ROWS = [
    ("four columns", "0 0.5 0.5 0.2", "4 columns; expected 5"),
    ("six columns", "0 0.5 0.5 0.2 0.2 0.9", "sixth column looks like a confidence"),
    ("polygon", "0 0.1 0.1 0.5 0.1 0.5 0.5", "polygon (segmentation) row with 3 points"),
    ("outside 0..1", "0 1.2 0.5 0.2 0.2", "coordinates outside [0, 1]: 1.2"),
    ("reaches outside", "0 0.95 0.5 0.2 0.2", "box reaches outside the image"),
    ("class beyond names", "2 0.5 0.5 0.2 0.2", "class 2 is beyond the 2 names (0-1)"),
    ("fractional class", "0.5 0.5 0.5 0.2 0.2", "class must be a whole number"),
    ("negative class", "-1 0.5 0.5 0.2 0.2", "class must be a whole number"),
    ("not a number", "0 abc 0.5 0.2 0.2", "not a number: 'abc'"),
    ("nan", "0 nan 0.5 0.2 0.2", "finite"),
    ("zero size", "0 0.5 0.5 0 0.2", "zero-sized or negative box"),
    ("duplicate row", "0 0.5 0.5 0.25 0.5", "duplicate of line 1"),
]


@pytest.mark.parametrize(
    ("row", "expected"), [r[1:] for r in BAD_ROWS], ids=[r[0] for r in BAD_ROWS]
)
def test_bad_label_rows_are_itemised_by_file_and_line(project, tmp_path, row, expected) -> None:
    ds = make_yolo(tmp_path / "ds")
    lbl = ds / "labels" / "train" / "t1.txt"
    lbl.write_text(ROWS.splitlines()[0] + "\n\n" + row + "\n")
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_yolo(project, ds)
    (p,) = e.value.problems
    assert p.where == f"{lbl}:3"  # the blank line 2 is skipped, as Ultralytics does
    assert expected in p.reason
    assert snapshot(project) == before


def _yaml_case(text: str):
    def f(ds: Path) -> None:
        (ds / "data.yaml").write_text(text)

    return f


BAD_LAYOUTS = [
    (
        "unsafe yaml",
        _yaml_case("train: !!python/object/apply:os.system ['touch PWNED']\nnames: [a]\n"),
        "not valid (safe) YAML",
    ),
    ("malformed yaml", _yaml_case("train: [images/train\nnames: [a]\n"), "not valid (safe) YAML"),
    ("nc mismatch", _yaml_case("train: images/train\nnc: 3\nnames: [cat, dog]\n"), "nc is 3"),
    ("no names", _yaml_case("train: images/train\n"), "names must be a list"),
    ("missing folder", _yaml_case("train: images/nope\nnames: [a, b]\n"), "not found"),
    ("no splits", _yaml_case("names: [a, b]\n"), "lists no train, val or test"),
    (
        "no images",
        lambda ds: [p.unlink() for p in sorted(ds.glob("images/*/*"))],
        "no images found",
    ),
    (
        "bad image",
        lambda ds: (ds / "images" / "train" / "t0.png").write_bytes(b"garbage"),
        "not an image",
    ),
    (
        "shared label file",
        lambda ds: write_image(ds / "images" / "train" / "t0.jpg", seed=99, fmt="JPEG"),
        "shares its label file",
    ),
    (
        "identical images",
        lambda ds: (ds / "images" / "val" / "v0.png").write_bytes(
            (ds / "images" / "train" / "t0.png").read_bytes()
        ),
        "same image bytes as",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [c[1:] for c in BAD_LAYOUTS], ids=[c[0] for c in BAD_LAYOUTS]
)
def test_bad_layouts_are_itemised_and_commit_nothing(
    project, tmp_path, change, expected, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    ds = make_yolo(tmp_path / "ds")
    change(ds)
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_yolo(project, ds)
    assert any(expected in p.reason for p in e.value.problems), e.value.problems
    assert snapshot(project) == before
    assert not (tmp_path / "PWNED").exists()


def test_malformed_yaml_names_its_line(project, tmp_path) -> None:
    ds = make_yolo(tmp_path / "ds")
    (ds / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a\n  b: c\n")
    with pytest.raises(InputError) as e:
        import_yolo(project, ds)
    (p,) = e.value.problems
    assert p.where.startswith(f"{ds / 'data.yaml'}:")


def test_clip_option_clips_and_reports_each_row(project, tmp_path) -> None:
    ds = make_yolo(tmp_path / "ds", n_train=1, n_val=0)
    lbl = ds / "labels" / "train" / "t0.txt"
    lbl.write_text("0 0.95 0.5 0.2 0.5\n0 1.1 0.5 0.5 0.5\n")
    report = import_yolo(project, ds, options=ImportOptions(clip=True))
    notes = [n for n in report.notes if "clipped" in n.reason]
    assert [n.where for n in notes] == [f"{lbl}:1", f"{lbl}:2"]
    (sha,) = entries(project)
    # both rows clip to x 0.85..1.0 of the 64 px width, y 0.25..0.75 of 48
    assert boxes(project, sha) == [(1, 54.4, 12.0, 9.6, 24.0)] * 2
    assert report.version.provenance["preprocessing"] == ["clipped 2 boxes to the image"]


def test_polygon_extent_option_converts_and_reports(project, tmp_path) -> None:
    ds = make_yolo(tmp_path / "ds", n_train=1, n_val=0)
    lbl = ds / "labels" / "train" / "t0.txt"
    lbl.write_text("1 0.25 0.25 0.75 0.25 0.5 0.75\n")
    report = import_yolo(project, ds, options=ImportOptions(polygons="extent"))
    assert [n.where for n in report.notes] == [f"{lbl}:1"]
    (sha,) = entries(project)
    assert boxes(project, sha) == [(2, 16.0, 12.0, 32.0, 24.0)]


def test_duplicate_rows_can_be_dropped_with_a_report(project, tmp_path) -> None:
    ds = make_yolo(tmp_path / "ds", n_train=1, n_val=0)
    lbl = ds / "labels" / "train" / "t0.txt"
    lbl.write_text(ROWS + ROWS.splitlines()[1] + "\n")
    report = import_yolo(project, ds, options=ImportOptions(drop_duplicate_rows=True))
    assert [(n.where, n.reason) for n in report.notes] == [
        (f"{lbl}:3", "duplicate of line 2; dropped")
    ]
    assert report.n_boxes == 2


def test_label_path_follows_ultralytics(tmp_path) -> None:
    from ultralytics.data.utils import img2label_paths

    for rel in ("images/train/a.jpg", "x/images/images/b.c.png", "flat/c.png"):
        p = tmp_path / rel
        assert str(label_path(p)) == img2label_paths([str(p)])[0]


def test_coco_export_of_a_yolo_import_numbers_from_1(project, tmp_path) -> None:
    make_yolo(tmp_path / "ds", n_train=2, n_val=1)
    import_yolo(project, tmp_path / "ds")
    export_coco(project, tmp_path / "coco")
    train = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    val = json.loads((tmp_path / "coco" / "annotations" / "instances_val.json").read_text())
    assert [c["id"] for c in train["categories"]] == [1, 2]
    assert sorted(i["id"] for i in train["images"] + val["images"]) == [1, 2, 3]
    ann_ids = [a["id"] for a in train["annotations"] + val["annotations"]]
    assert sorted(ann_ids) == list(range(1, 7))  # unique across the split files
