"""COCO import and export: ids and names kept, exact round trips, byte-identical exports, real
readers (pycocotools, PIL, OpenCV) seeing boxes on the objects, and every kind of bad input
refused with an itemised list and the project unchanged."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import red_fraction, snapshot, write_image, write_oriented
from PIL import Image

from labeldesk.core.boxes import Box
from labeldesk.core.errors import CancelledError, InputError, LabelDeskError
from labeldesk.core.formats import ImportOptions, export_coco, import_coco
from labeldesk.core.formats.coco import split_from_name
from labeldesk.core.store.annotation_sets import load_annotation_set
from labeldesk.core.store.importer import Staging, add_images
from labeldesk.core.store.manifest import Entry, ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import resolve

CATS = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]


def make_coco(
    root: Path,
    n: int = 4,
    *,
    size=(64, 48),
    first_id: int = 10,
    seed: int = 100,
    prefix: str = "img",
    file: str = "annotations.json",
) -> Path:
    """A small COCO dataset: n PNG images, two boxes each, odd category and image ids."""
    images, anns = [], []
    for i in range(n):
        name = f"sub/{prefix}{i}.png" if i % 2 else f"{prefix}{i}.png"
        write_image(root / "images" / name, seed=seed + i, size=size)
        iid = first_id + 5 * i
        images.append({"id": iid, "file_name": name, "width": size[0], "height": size[1]})
        anns.append(
            {"id": 2 * i + 1, "image_id": iid, "category_id": 3, "bbox": [1.5, 2.25, 10, 8]}
        )
        anns.append(
            {"id": 2 * i + 2, "image_id": iid, "category_id": 7, "bbox": [20, 10.125, 30, 20.5]}
        )
    path = root / file
    write_json(path, {"images": images, "annotations": anns, "categories": CATS})
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def boxes_by_image(project: Project, ref: str = "main") -> dict[str, list]:
    v = resolve(project.db, ref)
    store = ManifestStore(project.db)
    return {
        sha: sorted((b.cls, b.x, b.y, b.w, b.h) for b in load_annotation_set(project.db, e.annset))
        for sha, e in store.entries(store.tree(v.tree))
    }


# -- import -------------------------------------------------------------------------------------


def test_import_keeps_category_ids_image_ids_file_names_and_boxes(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds")
    report = import_coco(project, [ann], tmp_path / "ds" / "images")
    v = report.version
    assert v is not None and v.kind == "import" and v.n_images == 4 and v.n_boxes == 8
    assert v.classes == CATS
    assert v.provenance["format"] == "coco"
    assert v.provenance["sources"] == [str(ann.absolute())]
    store = ManifestStore(project.db)
    metas = sorted(e.meta_dict["coco_id"] for _, e in store.entries(store.tree(v.tree)))
    assert metas == [10, 15, 20, 25]
    names = {e.meta_dict["file_name"] for _, e in store.entries(store.tree(v.tree))}
    assert names == {"img0.png", "sub/img1.png", "img2.png", "sub/img3.png"}
    boxes = [b for bs in boxes_by_image(project).values() for b in bs]
    assert (3, 1.5, 2.25, 10.0, 8.0) in boxes and (7, 20.0, 10.125, 30.0, 20.5) in boxes
    one = load_annotation_set(project.db, next(iter(store.entries(store.tree(v.tree))))[1].annset)
    assert {(b.origin, b.state) for b in one} == {("human", "imported")}


def test_split_comes_from_each_file_name_or_the_option(project, tmp_path) -> None:
    assert split_from_name(Path("instances_train2017.json")) == "train"
    assert split_from_name(Path("instances_val2017.json")) == "val"
    assert split_from_name(Path("valid.json")) == "val"
    assert split_from_name(Path("instances_unassigned.json")) is None
    assert split_from_name(Path("annotations.json")) is None
    assert split_from_name(Path("contest.json")) is None
    ds = tmp_path / "ds"
    train = make_coco(ds, 2, first_id=1, seed=0, prefix="a", file="instances_train.json")
    val = make_coco(ds, 2, first_id=100, seed=50, prefix="b", file="instances_val.json")
    v = import_coco(project, [train, val], ds / "images").version
    store = ManifestStore(project.db)
    splits = sorted((e.meta_dict["coco_id"], e.split) for _, e in store.entries(store.tree(v.tree)))
    assert splits == [(1, "train"), (6, "train"), (100, "val"), (105, "val")]
    with Project.init(tmp_path / "p2") as p2:
        v2 = import_coco(p2, [train], ds / "images", split="test").version
        assert {
            e.split for _, e in ManifestStore(p2.db).entries(ManifestStore(p2.db).tree(v2.tree))
        } == {"test"}


def test_import_into_a_project_with_classes_maps_by_name(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "a", 1)], tmp_path / "a" / "images")
    ann = make_coco(tmp_path / "b", 1, first_id=50)
    data = json.loads(ann.read_text())
    data["categories"].append({"id": 9, "name": "bird"})
    write_json(ann, data)
    v = import_coco(project, [ann], tmp_path / "b" / "images").version
    assert v.classes == [*CATS, {"id": 9, "name": "bird"}]


def test_conflicting_class_ids_are_refused_clearly(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "a", 1)], tmp_path / "a" / "images")
    before = snapshot(project)
    ann = make_coco(tmp_path / "b", 1, first_id=50)
    data = json.loads(ann.read_text())
    data["categories"] = [{"id": 4, "name": "cat"}, {"id": 7, "name": "horse"}]
    for a in data["annotations"]:
        a["category_id"] = 4
    write_json(ann, data)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], tmp_path / "b" / "images")
    reasons = " | ".join(p.reason for p in e.value.problems)
    assert "'cat': the project has 'cat' as class 3" in reasons
    assert "id 7 is class 'dog' in the project" in reasons
    assert snapshot(project) == before


def test_identical_image_bytes_are_reported_never_merged(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds", 3)
    images = tmp_path / "ds" / "images"
    (images / "img2.png").write_bytes((images / "img0.png").read_bytes())
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], images)
    assert [p.where.split(": ")[-1] for p in e.value.problems] == ["images[2] (id 20)"]
    assert "same image bytes as" in e.value.problems[0].reason
    assert snapshot(project) == before
    report = import_coco(project, [ann], images, options=ImportOptions(duplicate_images="first"))
    assert report.n_images == 2
    assert any("same image bytes" in n.reason and "2 box(es)" in n.reason for n in report.notes)
    assert "left out 1 images with duplicate bytes" in report.version.provenance["preprocessing"]


# -- export -------------------------------------------------------------------------------------


def test_export_has_the_coco_fields_and_pycocotools_evaluates_it_at_ap_1(project, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann = make_coco(tmp_path / "ds")
    import_coco(project, [ann], tmp_path / "ds" / "images")
    report = export_coco(project, tmp_path / "out")
    assert report.files == ["annotations.json"] and report.n_boxes == 8
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert data["categories"] == CATS
    assert [im["id"] for im in data["images"]] == [10, 15, 20, 25]
    assert {im["file_name"] for im in data["images"]} == {
        "img0.png",
        "sub/img1.png",
        "img2.png",
        "sub/img3.png",
    }
    for im in data["images"]:
        assert set(im) == {"id", "file_name", "width", "height"}
        assert (im["width"], im["height"]) == (64, 48)
        src = tmp_path / "ds" / "images" / im["file_name"]
        assert (tmp_path / "out" / "images" / im["file_name"]).read_bytes() == src.read_bytes()
    ids = [a["id"] for a in data["annotations"]]
    assert ids == list(range(1, 9))
    for a in data["annotations"]:
        assert set(a) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd"}
        assert a["iscrowd"] == 0 and a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3])

    gt = COCO(str(tmp_path / "out" / "annotations.json"))
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in data["annotations"]
    ]
    ev = COCOeval(gt, gt.loadRes(results), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP @ IoU .50:.95
    assert ev.stats[1] == pytest.approx(1.0)  # AP @ IoU .50


def test_exporting_twice_gives_byte_identical_files(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "ds")], tmp_path / "ds" / "images")
    add_images(project, [write_oriented(tmp_path / "rot" / "r.jpg", 6, (0, 0, 5, 5))])
    export_coco(project, tmp_path / "one")
    export_coco(project, tmp_path / "two")
    one, two = files_of(tmp_path / "one"), files_of(tmp_path / "two")
    assert one == two and len(one) == 6


def test_round_trip_is_exact_and_a_second_export_is_identical(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "ds")], tmp_path / "ds" / "images")
    original = resolve(project.db, "main")
    export_coco(project, tmp_path / "out1")
    with Project.init(tmp_path / "p2") as p2:
        again = import_coco(p2, [tmp_path / "out1"]).version
        assert again.tree == original.tree  # same images, boxes, splits, ids, file names
        assert again.classes == original.classes
        export_coco(p2, tmp_path / "out2")
    assert files_of(tmp_path / "out1") == files_of(tmp_path / "out2")


def test_round_trip_of_a_reviewed_version_keeps_boxes_and_splits(project, tmp_path) -> None:
    """A version made in LabelDesk (no COCO ids, boxes of every origin and state) comes back
    with the same images, classes, splits and box geometry; provenance of boxes stays behind."""
    paths = [write_image(tmp_path / "src" / f"a{i}.png", seed=i) for i in range(3)]
    boxes = [
        Box(1, 1, 2, 3, 4, origin="model", state="accepted", score=0.9, model="m"),
        Box(2, 5.5, 6.25, 7, 8, origin="human", state="added", author="ann"),
        Box(2, 9, 9, 3, 3, origin="model", state="rejected", score=0.2, model="m"),
    ]
    with Staging(project) as st:
        staged = st.stage_files(paths)
        st.commit(
            entries={
                sha: Entry("", split)
                for (_, sha, _), split in zip(staged, ["train", "val", None], strict=True)
            },
            annsets={staged[0][1]: boxes},
            classes=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            message="reviewed",
            provenance={},
        )
    export_coco(project, tmp_path / "out1")
    assert sorted(files_of(tmp_path / "out1")) == [
        "annotations/instances_train.json",
        "annotations/instances_unassigned.json",
        "annotations/instances_val.json",
        "images/a0.png",
        "images/a1.png",
        "images/a2.png",
    ]
    with Project.init(tmp_path / "p2") as p2:
        v2 = import_coco(p2, [tmp_path / "out1"]).version
        live = {
            k: [b for b in v if b != (2, 9.0, 9.0, 3.0, 3.0)]
            for k, v in boxes_by_image(project).items()
        }
        assert boxes_by_image(p2) == live  # the rejected pre-label is not a label
        store = ManifestStore(p2.db)
        assert sorted(str(e.split) for _, e in store.entries(store.tree(v2.tree))) == [
            "None",
            "train",
            "val",
        ]
        assert v2.classes == resolve(project.db, "main").classes
        export_coco(p2, tmp_path / "out2")
    assert files_of(tmp_path / "out1") == files_of(tmp_path / "out2")


def test_new_images_are_numbered_after_the_highest_coco_id(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "ds", 2)], tmp_path / "ds" / "images")
    add_images(
        project, [write_image(tmp_path / "new" / f"z{i}.png", seed=50 + i) for i in range(2)]
    )
    export_coco(project, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [(im["id"], im["file_name"]) for im in data["images"]] == [
        (10, "img0.png"),
        (15, "sub/img1.png"),
        (16, "z0.png"),
        (17, "z1.png"),
    ]


def test_a_new_project_numbers_images_from_1_and_same_names_never_collide(project, tmp_path):
    a = write_image(tmp_path / "x" / "same.png", seed=1)
    b = write_image(tmp_path / "y" / "same.png", seed=2)
    c = write_image(tmp_path / "y" / "SAME.PNG", seed=3)
    add_images(project, [a, b, c])
    export_coco(project, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [im["id"] for im in data["images"]] == [1, 2, 3]
    names = [im["file_name"] for im in data["images"]]
    assert len({n.casefold() for n in names}) == 3  # unique even on case-insensitive disks
    assert "same.png" in names or "SAME.PNG" in names
    for im in data["images"]:
        out = (tmp_path / "out" / "images" / im["file_name"]).read_bytes()
        assert out in {a.read_bytes(), b.read_bytes(), c.read_bytes()}
    assert len({(tmp_path / "out" / "images" / n).read_bytes() for n in names}) == 3


def test_export_refuses_a_folder_that_is_not_empty_and_leaves_it_alone(project, tmp_path):
    import_coco(project, [make_coco(tmp_path / "ds", 1)], tmp_path / "ds" / "images")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(LabelDeskError, match="not an empty folder"):
        export_coco(project, out)
    assert files_of(out) == {"keep.txt": b"mine"}
    (out / "keep.txt").unlink()
    export_coco(project, out)  # an empty folder is fine
    assert (out / "annotations.json").is_file()


def test_link_option_hard_links_images_from_the_store(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "ds", 2)], tmp_path / "ds" / "images")
    report = export_coco(project, tmp_path / "out", link=True)
    assert report.linked == 2 and report.copied == 0
    img = tmp_path / "out" / "images" / "img0.png"
    assert os.stat(img).st_nlink == 2  # the store's object and the export share the bytes
    assert os.stat(img).st_mode & 0o777 == 0o444  # read-only, like the object itself


def test_cancelled_export_leaves_no_folder(project, tmp_path) -> None:
    import_coco(project, [make_coco(tmp_path / "ds", 2)], tmp_path / "ds" / "images")
    with pytest.raises(CancelledError):
        export_coco(project, tmp_path / "out", cancel=lambda: True)
    assert not (tmp_path / "out").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"project", "ds"}  # no temporary left


def test_a_full_disk_is_an_error_for_the_user_and_leaves_no_folder(project, tmp_path, monkeypatch):
    from labeldesk.core.formats import files

    import_coco(project, [make_coco(tmp_path / "ds", 2)], tmp_path / "ds" / "images")

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "copy_file", full)
    with pytest.raises(LabelDeskError, match="No space left on device"):
        export_coco(project, tmp_path / "out")
    assert {p.name for p in tmp_path.iterdir()} == {"project", "ds"}


def test_cancelled_import_leaves_the_project_unchanged(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds")
    before = snapshot(project)
    with pytest.raises(CancelledError):
        import_coco(project, [ann], tmp_path / "ds" / "images", cancel=lambda: True)
    assert snapshot(project) == before


def test_progress_is_reported(project, tmp_path) -> None:
    calls: list[tuple[int, int, str]] = []
    ann = make_coco(tmp_path / "ds")
    import_coco(project, [ann], tmp_path / "ds" / "images", progress=lambda *a: calls.append(a))
    assert calls and calls[-1][0] == calls[-1][1] == 4
    calls.clear()
    export_coco(project, tmp_path / "out", progress=lambda *a: calls.append(a))
    assert calls[-1] == (4, 4, "writing images")


# -- EXIF orientation -----------------------------------------------------------------------------


def test_all_eight_orientations_land_on_the_object_in_pil_and_opencv(project, tmp_path) -> None:
    import cv2

    box = (10, 20, 25, 15)
    images, anns = [], []
    for o in range(1, 9):
        write_oriented(tmp_path / "ds" / "images" / f"o{o}.jpg", o, box)
        images.append({"id": o, "file_name": f"o{o}.jpg", "width": 80, "height": 60})
        anns.append({"id": o, "image_id": o, "category_id": 1, "bbox": list(box)})
    ann = write_json(
        tmp_path / "ds" / "annotations.json",
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "red"}]},
    )
    import_coco(project, [ann], tmp_path / "ds" / "images")
    report = export_coco(project, tmp_path / "out")
    assert report.reencoded == 7 and report.copied == 1
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    for im in data["images"]:
        (a,) = [a for a in data["annotations"] if a["image_id"] == im["id"]]
        f = tmp_path / "out" / "images" / im["file_name"]
        with Image.open(f) as pil:  # torchvision's CocoDetection reads exactly like this
            assert pil.getexif().get(0x0112, 1) == 1
            assert pil.size == (im["width"], im["height"]) == (80, 60)
            assert red_fraction(np.asarray(pil.convert("RGB")), a["bbox"]) > 0.95, im
        bgr = cv2.imread(str(f))  # Detectron2 / MMDetection style readers
        assert red_fraction(bgr[..., ::-1], a["bbox"]) > 0.95, im
    # the exported images are what a person sees: re-importing them needs no EXIF at all
    with Project.init(tmp_path / "p2") as p2:
        import_coco(p2, [tmp_path / "out"])
        export_coco(p2, tmp_path / "out2")
    assert files_of(tmp_path / "out") == files_of(tmp_path / "out2")


def test_keep_orientation_copies_bytes_for_readers_that_apply_exif(project, tmp_path) -> None:
    src = write_oriented(tmp_path / "ds" / "images" / "o6.jpg", 6, (10, 20, 25, 15))
    ann = write_json(
        tmp_path / "ds" / "annotations.json",
        {
            "images": [{"id": 1, "file_name": "o6.jpg", "width": 80, "height": 60}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 25, 15]}],
            "categories": [{"id": 1, "name": "red"}],
        },
    )
    import_coco(project, [ann], tmp_path / "ds" / "images")
    report = export_coco(project, tmp_path / "out", upright=False)
    assert report.reencoded == 0
    assert (tmp_path / "out" / "images" / "o6.jpg").read_bytes() == src.read_bytes()


def test_a_record_giving_the_stored_size_of_a_rotated_image_is_explained(project, tmp_path):
    write_oriented(tmp_path / "ds" / "images" / "o6.jpg", 6, (10, 20, 25, 15))  # upright 80x60
    ann = write_json(
        tmp_path / "ds" / "annotations.json",
        {
            "images": [{"id": 1, "file_name": "o6.jpg", "width": 60, "height": 80}],
            "annotations": [],
            "categories": [],
        },
    )
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], tmp_path / "ds" / "images")
    (p,) = e.value.problems
    assert "80x60 as a person sees it" in p.reason and "EXIF orientation 6" in p.reason
    assert snapshot(project) == before


# -- bad input ----------------------------------------------------------------------------------


def _mutations():
    """(name, change to the dataset dict, text expected in a problem, where it points)."""

    def ann(i, **kw):
        def f(d):
            d["annotations"][i].update(kw)

        return f

    def img(i, **kw):
        def f(d):
            d["images"][i].update(kw)

        return f

    def drop(section, i, key):
        def f(d):
            del d[section][i][key]

        return f

    def dup(section, i, j):
        def f(d):
            d[section][j]["id"] = d[section][i]["id"]

        return f

    return [
        ("missing top key", lambda d: d.pop("categories"), "missing key 'categories'", ""),
        ("missing image key", drop("images", 1, "width"), "missing key(s) 'width'", "images[1]"),
        (
            "missing ann key",
            drop("annotations", 2, "bbox"),
            "missing key(s) 'bbox'",
            "annotations[2]",
        ),
        ("duplicate image id", dup("images", 0, 2), "duplicate image id 10", "images[2]"),
        (
            "duplicate ann id",
            dup("annotations", 0, 3),
            "duplicate annotation id 1",
            "annotations[3]",
        ),
        (
            "unknown category",
            ann(1, category_id=99),
            "category_id 99 is not in categories",
            "annotations[1]",
        ),
        ("unknown image", ann(1, image_id=999), "image_id 999 is not in images", "annotations[1]"),
        (
            "negative bbox",
            ann(0, bbox=[5, 5, -3, 4]),
            "zero-sized or negative box",
            "annotations[0]",
        ),
        ("zero bbox", ann(0, bbox=[5, 5, 0, 4]), "zero-sized or negative box", "annotations[0]"),
        (
            "bbox outside",
            ann(0, bbox=[60, 5, 10, 4]),
            "lies outside the 64x48 image",
            "annotations[0]",
        ),
        (
            "bbox negative x",
            ann(0, bbox=[-2, 5, 10, 4]),
            "lies outside the 64x48 image",
            "annotations[0]",
        ),
        (
            "bbox not numbers",
            ann(0, bbox=[1, 2, "3", 4]),
            "bbox must be 4 finite numbers",
            "annotations[0]",
        ),
        ("absolute file_name", img(0, file_name="/etc/passwd"), "is absolute", "images[0]"),
        ("dotdot file_name", img(0, file_name="../outside.png"), "contains '..'", "images[0]"),
        ("missing image file", img(0, file_name="nope.png"), "image file not found", "images[0]"),
        ("iscrowd 2", ann(0, iscrowd=2), "iscrowd must be 0 or 1", "annotations[0]"),
        ("negative area", ann(0, area=-1), "area must be a finite number >= 0", "annotations[0]"),
        ("string area", ann(0, area="9"), "area must be a finite number >= 0", "annotations[0]"),
        ("size mismatch", img(0, width=65), "record says 65x48", "images[0]"),
        ("string id", img(0, id="10"), "id must be an integer", "images[0]"),
    ]


@pytest.mark.parametrize(
    ("change", "expected", "where"), [m[1:] for m in _mutations()], ids=[m[0] for m in _mutations()]
)
def test_bad_input_is_itemised_and_commits_nothing(project, tmp_path, change, expected, where):
    ann = make_coco(tmp_path / "ds")
    data = json.loads(ann.read_text())
    bad = copy.deepcopy(data)
    change(bad)
    write_json(ann, bad)
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], tmp_path / "ds" / "images")
    hits = [p for p in e.value.problems if expected in p.reason]
    assert hits, e.value.problems
    assert str(ann) in hits[0].where and where in hits[0].where
    assert "nothing was imported" in e.value.summary
    assert snapshot(project) == before


def test_malformed_json_names_the_line_and_column(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds")
    ann.write_text('{"images": [\n  {"id": 1,,}\n]}')
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], tmp_path / "ds" / "images")
    (p,) = e.value.problems
    assert p.where == f"{ann}:2:12" and "malformed JSON" in p.reason
    assert snapshot(project) == before


def test_split_files_must_agree_on_categories(project, tmp_path) -> None:
    ds = tmp_path / "ds"
    train = make_coco(ds, 1, first_id=1, seed=0, prefix="a", file="instances_train.json")
    val = make_coco(ds, 1, first_id=100, seed=50, prefix="b", file="instances_val.json")
    data = json.loads(val.read_text())
    data["categories"] = [{"id": 3, "name": "dog"}, {"id": 8, "name": "cat"}]
    write_json(val, data)
    with pytest.raises(InputError) as e:
        import_coco(project, [train, val], ds / "images")
    reasons = [p.reason for p in e.value.problems]
    assert any("category 3 is 'dog' here but 'cat'" in r for r in reasons)
    assert any("category 'cat' has id 8 here but 3" in r for r in reasons)


def test_all_problems_are_listed_at_once(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds")
    data = json.loads(ann.read_text())
    data["annotations"][0]["category_id"] = 42
    data["annotations"][3]["bbox"] = [0, 0, 0, 0]
    data["images"][2]["file_name"] = "../x.png"
    write_json(ann, data)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], tmp_path / "ds" / "images")
    assert len(e.value.problems) == 3


def test_clip_option_clips_and_reports_each_box(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds", 2)
    data = json.loads(ann.read_text())
    data["annotations"][0]["bbox"] = [-2, 40, 10, 20]  # left of and below the 64x48 image
    write_json(ann, data)
    report = import_coco(
        project, [ann], tmp_path / "ds" / "images", options=ImportOptions(clip=True)
    )
    (note,) = [n for n in report.notes if "clipped" in n.reason]
    assert "annotations[0]" in note.where and "[-2, 40, 10, 20]" in note.reason
    assert (3, 0.0, 40.0, 8.0, 8.0) in [b for bs in boxes_by_image(project).values() for b in bs]
    assert report.version.provenance["preprocessing"] == ["clipped 1 boxes to the image"]


def test_skip_crowd_option_reports_each_skipped_region(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds", 2)
    data = json.loads(ann.read_text())
    data["annotations"][1]["iscrowd"] = 1
    write_json(ann, data)
    report = import_coco(
        project, [ann], tmp_path / "ds" / "images", options=ImportOptions(skip_crowd=True)
    )
    assert report.n_boxes == 3
    assert [n.reason for n in report.notes] == ["crowd region (iscrowd 1) skipped"]


def test_undecodable_image_is_itemised(project, tmp_path) -> None:
    ann = make_coco(tmp_path / "ds", 2)
    (tmp_path / "ds" / "images" / "img0.png").write_bytes(b"not a png")
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        import_coco(project, [ann], tmp_path / "ds" / "images")
    (p,) = e.value.problems
    assert "images[0]" in p.where and "not an image" in p.reason
    assert snapshot(project) == before
