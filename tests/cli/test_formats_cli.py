"""``labeldesk import coco|yolo`` and ``labeldesk export coco|yolo`` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli as run
from helpers import snapshot, write_image

from labeldesk.cli import output
from labeldesk.cli.main import main
from labeldesk.core.demo.synth import write_yolo_dataset
from labeldesk.core.store.project import Project


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    Project.init(tmp_path / "proj", user="lead").close()
    return tmp_path / "proj"


def coco_dataset(root: Path, bbox=(2, 3, 10, 8)) -> Path:
    write_image(root / "images" / "a.png", seed=1)
    write_image(root / "images" / "b.png", seed=2)
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.png", "width": 64, "height": 48},
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 4, "bbox": list(bbox)}],
        "categories": [{"id": 4, "name": "thing"}],
    }
    (root / "instances_val.json").write_text(json.dumps(data))
    return root / "instances_val.json"


def test_yolo_in_coco_and_yolo_out_and_back(capsys, proj, tmp_path) -> None:
    write_yolo_dataset(tmp_path / "synth", 4, 2, size=(96, 64))
    code, out, _ = run(capsys, "-p", str(proj), "import", "yolo", str(tmp_path / "synth"))
    assert code == 0
    assert out.startswith("yolo: 6 images, ")
    assert "committed version" in out and "Import YOLO synth" in out

    code, out, _ = run(
        capsys, "-p", str(proj), "export", "coco", "--out", str(tmp_path / "c"), "--version", "main"
    )
    assert code == 0 and "as coco: 6 images" in out
    assert "files: annotations/instances_train.json, annotations/instances_val.json" in out

    code, out, _ = run(capsys, "-p", str(proj), "export", "yolo", "--out", str(tmp_path / "y"))
    assert code == 0 and (tmp_path / "y" / "data.yaml").is_file()

    Project.init(tmp_path / "p2").close()
    code, out, _ = run(capsys, "-p", str(tmp_path / "p2"), "import", "coco", str(tmp_path / "c"))
    assert code == 0 and out.startswith("coco: 6 images")
    with Project.open(proj) as a, Project.open(tmp_path / "p2") as b:
        from labeldesk.core.store.versions import resolve

        assert resolve(a.db, "main").n_boxes == resolve(b.db, "main").n_boxes


def test_json_reports(capsys, proj, tmp_path) -> None:
    ann = coco_dataset(tmp_path / "ds")
    code, out, _ = run(capsys, "-p", str(proj), "import", "coco", str(ann), "--json")
    report = json.loads(out)
    assert code == 0 and report["images"] == 2 and report["boxes"] == 1
    assert report["classes"] == [{"id": 4, "name": "thing"}] and report["version"]
    code, out, _ = run(
        capsys, "-p", str(proj), "export", "yolo", "--out", str(tmp_path / "y"), "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["images"] == 2 and report["copied"] == 2
    assert report["files"] == ["data.yaml"]


def test_bad_input_prints_every_problem_and_commits_nothing(capsys, proj, tmp_path) -> None:
    ann = coco_dataset(tmp_path / "ds", bbox=(60, 3, 10, 8))
    data = json.loads(ann.read_text())
    data["images"][1]["file_name"] = "../b.png"
    ann.write_text(json.dumps(data))
    with Project.open(proj) as p:
        before = snapshot(p)
    code, out, err = run(capsys, "-p", str(proj), "import", "coco", str(ann))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == "error: cannot import COCO: 2 problem(s); nothing was imported"
    assert lines[1].startswith(f"  - {ann}: images[1] (id 2): file_name '../b.png' contains '..'")
    assert lines[2].startswith(f"  - {ann}: annotations[0] (id 1): box [60, 3, 10, 8] lies")
    with Project.open(proj) as p:
        assert snapshot(p) == before


def test_clip_option_and_notes(capsys, proj, tmp_path) -> None:
    ann = coco_dataset(tmp_path / "ds", bbox=(60, 3, 10, 8))
    code, out, _ = run(
        capsys, "-p", str(proj), "import", "coco", str(ann), "--clip", "--split", "none"
    )
    assert code == 0
    assert "notes (1):" in out and "clipped to the 64x48 image" in out


def test_export_into_a_folder_that_is_not_empty_is_refused(capsys, proj, tmp_path) -> None:
    run(capsys, "-p", str(proj), "import", "coco", str(coco_dataset(tmp_path / "ds")))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    code, _, err = run(capsys, "-p", str(proj), "export", "coco", "--out", str(tmp_path / "out"))
    assert code == 1 and "is not an empty folder" in err


def test_long_work_drives_the_progress_bar(capsys, proj, tmp_path, monkeypatch) -> None:
    calls: list[tuple] = []

    class Recorder(output.ProgressBar):  # the real bar's protocol, recording its calls
        def __init__(self, *a, **k) -> None:
            pass

        def __call__(self, done: int, total: int, what: str) -> None:
            calls.append((done, total, what))

        def close(self) -> None:
            calls.append(("closed",))

    monkeypatch.setattr(output, "ProgressBar", Recorder)
    run(capsys, "-p", str(proj), "import", "coco", str(coco_dataset(tmp_path / "ds")))
    assert (2, 2, "importing images") in calls and calls[-1] == ("closed",)
    calls.clear()
    run(capsys, "-p", str(proj), "export", "yolo", "--out", str(tmp_path / "y"))
    assert (2, 2, "writing images") in calls and calls[-1] == ("closed",)


def test_follow_links_flag_on_add_and_both_imports(capsys, proj, tmp_path) -> None:
    """One link rule for ``add``, ``import coco`` and ``import yolo``: a link out of the
    dataset is refused (itemised, with the hint) until ``--follow-links`` is given."""
    stray = write_image(tmp_path / "elsewhere" / "stray.png", seed=90)
    ann = coco_dataset(tmp_path / "coco")
    os.symlink(stray, tmp_path / "coco" / "images" / "c.png")
    data = json.loads(ann.read_text())
    data["images"].append({"id": 3, "file_name": "c.png", "width": 64, "height": 48})
    ann.write_text(json.dumps(data))
    with Project.open(proj) as p:
        before = snapshot(p)
    code, out, err = run(capsys, "-p", str(proj), "import", "coco", str(ann))
    assert code == 1 and out == ""
    assert "images[2] (id 3):" in err and "leads outside" in err and "--follow-links" in err
    with Project.open(proj) as p:
        assert snapshot(p) == before
    code, out, _ = run(capsys, "-p", str(proj), "import", "coco", str(ann), "--follow-links")
    assert code == 0 and out.startswith("coco: 3 images")

    write_yolo_dataset(tmp_path / "yolo", 2, 1, size=(96, 64))
    os.symlink(stray, next((tmp_path / "yolo" / "images" / "train").iterdir()).with_name("s.png"))
    code, _, err = run(capsys, "-p", str(proj), "import", "yolo", str(tmp_path / "yolo"))
    assert code == 1 and "s.png: a symbolic link leads outside" in err
    code, out, _ = run(
        capsys, "-p", str(proj), "import", "yolo", str(tmp_path / "yolo"), "--follow-links"
    )
    assert code == 0 and out.startswith("yolo: 4 images")

    src = tmp_path / "src"
    write_image(src / "own.png", seed=91)
    os.symlink(tmp_path / "elsewhere", src / "linked")
    code, out, _ = run(capsys, "-p", str(proj), "add", str(src), "--json")
    report = json.loads(out)
    assert [Path(a["path"]).name for a in report["added"]] == ["own.png"]
    (skipped,) = report["skipped"]
    assert skipped["path"].endswith("linked") and "linked folder" in skipped["reason"]
    code, out, _ = run(capsys, "-p", str(proj), "add", str(src), "--follow-links", "--json")
    report = json.loads(out)
    assert report["skipped"] == [] and report["duplicates"][0]["path"].endswith("stray.png")


def test_labels_without_an_image_in_text_and_json(capsys, proj, tmp_path) -> None:
    write_yolo_dataset(tmp_path / "yolo", 2, 1, size=(96, 64))
    orphan = tmp_path / "yolo" / "labels" / "val" / "deleted.txt"
    orphan.write_text("0 0.5 0.5 0.2 0.2\n" * 5)
    code, out, _ = run(capsys, "-p", str(proj), "import", "yolo", str(tmp_path / "yolo"))
    assert code == 0
    assert f"{orphan}: label file without an image: its 5 box(es) were not imported" in out
    Project.init(tmp_path / "p2").close()
    code, out, _ = run(
        capsys, "-p", str(tmp_path / "p2"), "import", "yolo", str(tmp_path / "yolo"), "--json"
    )
    assert json.loads(out)["labels_without_image"] == [{"file": str(orphan), "boxes": 5}]


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(capsys, proj, tmp_path) -> None:
    write_yolo_dataset(tmp_path / "yolo", 2, 1, size=(96, 64))
    lines = ["train: images/train", "names:", f"  - &a0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (tmp_path / "yolo" / "data.yaml").write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "-p", str(proj), "import", "yolo", str(tmp_path / "yolo"))
    assert code == 1 and out == ""
    assert "refused before expanding them" in err and len(err) < 600


def test_a_format_is_required(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["import"])
    assert e.value.code == 2
    assert "FORMAT" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["import", "--help"], ["export", "yolo", "--help"]])
def test_help_is_instant_and_loads_no_core_or_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from labeldesk.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'ultralytics', 'labeldesk.core')\n"
        # the one module of defaults (constants only) gives the options their default values
        "constants = ('labeldesk.core', 'labeldesk.core.defaults')\n"
        "bad = [m for m in sys.modules if m.startswith(heavy) and m not in constants]\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED []" in out.stdout
    assert "usage: labeldesk" in out.stdout
