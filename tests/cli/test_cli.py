"""The command line, driven as a user drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run_cli as run
from helpers import write_image

LABELDESK = [sys.executable, "-m", "labeldesk.cli.main"]


@pytest.fixture
def proj(tmp_path, capsys) -> Path:
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    return root


def test_help_is_fast_and_loads_neither_torch_nor_qt() -> None:
    code = (
        "import sys, runpy\nsys.argv = ['labeldesk', '--help']\n"
        "try:\n    runpy.run_module('labeldesk.cli.main', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'ultralytics', 'PySide6', 'PIL', 'numpy')]\n"
        "print('LOADED', bad)"
    )
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    assert "usage: labeldesk" in r.stdout
    for verb in (
        "init",
        "add",
        "log",
        "show",
        "diff",
        "tag",
        "approve",
        "reject",
        "revert",
        "fsck",
        "demo",
    ):
        assert verb in r.stdout
    assert "LOADED []" in r.stdout
    assert elapsed < 5  # generous for a loaded CI machine; typically ~0.1 s


@pytest.mark.parametrize("verb", ["log", "show"])
def test_reading_versions_loads_no_boxes_hashes_or_dataclasses(
    proj, tmp_path, capsys, verb
) -> None:
    """Read commands start in about twice a bare `import sqlite3` (bench/startup.py): they must
    not import what only writing, diffing or evaluating needs. Each of these modules cost a
    read command a few milliseconds (OpenSSL's hashlib, dataclasses with inspect, boxes)."""
    write_image(tmp_path / "src" / "a.png", seed=1)
    assert run(capsys, "-p", str(proj), "add", str(tmp_path / "src"))[0] == 0
    code = (
        "import sys\n"
        "from labeldesk.cli.main import main\n"
        f"rc = main(['-p', {str(proj)!r}, {verb!r}])\n"
        "heavy = ('dataclasses', 'hashlib', 'numpy', 'sqlite_utils', 'labeldesk.core.boxes',\n"
        "         'labeldesk.core.store.manifest', 'labeldesk.core.store.packed',\n"
        "         'labeldesk.core.validation.watch', 'labeldesk.core.training.runs')\n"
        "print('LOADED', rc, [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED 0 []" in out.stdout, out.stdout + out.stderr
    assert "Add 1 image" in out.stdout  # and it did read the version


def test_init_add_log_show(proj, tmp_path, capsys) -> None:
    src = tmp_path / "src"
    for i in range(3):
        write_image(src / f"{i}.png", seed=i)
    (src / "readme.txt").write_text("not an image")
    code, out, _ = run(capsys, "-p", str(proj), "add", str(src))
    assert code == 0
    assert "added 3, duplicates 0, skipped 1" in out
    assert "readme.txt: not an image" in out
    code, out, _ = run(capsys, "-p", str(proj), "log", "--json")
    (v,) = json.loads(out)
    assert v["kind"] == "import" and v["n_images"] == 3 and v["status"] == "committed"
    code, out, _ = run(capsys, "-p", str(proj), "show", v["id"][:6], "--json")
    assert json.loads(out)["id"] == v["id"]
    code, out, _ = run(capsys, "-p", str(proj), "log")
    assert v["id"][:12] in out and "Add 3 images" in out


def test_a_closed_pipe_ends_quietly(proj, tmp_path, capsys) -> None:
    # `labeldesk log | head -1`: the reader leaves early; no traceback, status as if by SIGPIPE
    write_image(tmp_path / "src" / "a.png")
    assert run(capsys, "-p", str(proj), "add", str(tmp_path / "src"))[0] == 0
    r_fd, w_fd = os.pipe()
    os.close(r_fd)  # the reader is gone before anything is written
    with open(w_fd, "wb") as out:
        r = subprocess.run(
            [*LABELDESK, "-p", str(proj), "log"], stdout=out, stderr=subprocess.PIPE, text=True
        )
    assert r.stderr == "" and r.returncode == 141


def test_add_only_bad_files_exits_non_zero(proj, tmp_path, capsys) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    code, out, _ = run(capsys, "-p", str(proj), "add", str(tmp_path / "x.jpg"))
    assert code == 1 and "empty file" in out


def _two_versions(proj: Path, tmp_path: Path, capsys) -> list[dict]:
    write_image(tmp_path / "a" / "1.png", seed=1)
    write_image(tmp_path / "b" / "2.png", seed=2)
    run(capsys, "-p", str(proj), "add", str(tmp_path / "a"))
    run(capsys, "-p", str(proj), "add", str(tmp_path / "b"), "-m", "second batch")
    return json.loads(run(capsys, "-p", str(proj), "log", "--json")[1])


def test_diff_tag_approve_reject_revert(proj, tmp_path, capsys) -> None:
    v2, v1 = _two_versions(proj, tmp_path, capsys)
    code, out, _ = run(capsys, "-p", str(proj), "diff", "main~1", "main", "--json")
    d = json.loads(out)
    assert (d["a"], d["b"], d["images_added"]) == (v1["id"], v2["id"], 1)
    assert d["images"][0]["path"].endswith("2.png")
    code, out, _ = run(capsys, "-p", str(proj), "diff", "main~1", "main")
    assert "images: +1 -0 ~0" in out

    assert run(capsys, "-p", str(proj), "tag", "v1", "main~1")[0] == 0
    code, out, _ = run(capsys, "-p", str(proj), "tag", "--json")
    assert json.loads(out)[0]["tag"] == "v1"
    code, _, err = run(capsys, "-p", str(proj), "reject", "main", "--note", "blurry")
    assert code == 0
    code, _, _ = run(capsys, "-p", str(proj), "approve", "v1", "--note", "ok")
    assert code == 0
    code, _, err = run(capsys, "-p", str(proj), "reject", "v1", "--note", "oops")
    assert code == 1 and "approved" in err
    code, out, _ = run(capsys, "-p", str(proj), "revert", "v1")
    assert code == 0
    log = json.loads(run(capsys, "-p", str(proj), "log", "--json")[1])
    assert log[0]["kind"] == "rollback" and log[0]["tree"] == v1["tree"]
    assert [v["status"] for v in log] == ["committed", "rejected", "approved"]


def test_annotator_cannot_approve_from_cli(proj, tmp_path, capsys, monkeypatch) -> None:
    _two_versions(proj, tmp_path, capsys)
    monkeypatch.setenv("LABELDESK_USER", "annie")
    code, _, err = run(capsys, "-p", str(proj), "approve", "main")
    assert code == 1 and "only a lead" in err


def test_errors_are_messages_not_tracebacks(tmp_path, capsys) -> None:
    code, _, err = run(capsys, "-p", str(tmp_path), "log")
    assert code == 1 and "not a LabelDesk project" in err
    root = tmp_path / "p"
    run(capsys, "init", str(root))
    code, _, err = run(capsys, "-p", str(root), "show", "main")
    assert code == 1 and "no versions yet" in err
    code, _, err = run(capsys, "-p", str(root), "show", "v9")
    assert code == 1 and "unknown ref" in err


def test_demo_runs_end_to_end_in_a_real_process(tmp_path) -> None:
    env = {**os.environ, "LABELDESK_USER": "demo-user"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)
    r = subprocess.run(
        [*LABELDESK, "demo", str(tmp_path / "demo"), "--images", "12"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "labeldesk fsck: OK" in r.stdout
    assert "No display here" in r.stdout  # headless: says how to open it instead of failing
    r_demo = r
    r = subprocess.run(
        [*LABELDESK, "-p", str(tmp_path / "demo" / "project"), "log", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    log = json.loads(r.stdout)
    # import, two review passes, the splits (approved as v2.0), then a fresh unlabelled batch
    # that the demo model pre-labels
    assert [v["kind"] for v in log] == ["import", "review", "review", "review", "import"]
    assert log[3]["status"] == "approved" and log[3]["tags"] == ["v1.0"]
    assert log[1]["status"] == "approved" and log[1]["tags"] == ["v2.0"]
    assert "labeldesk prelabel --model demo-shapes" in r_demo.stdout
    # the demo model is watched, and was evaluated on both labelled versions
    evaluated = [bool(v["watch"]) for v in log]
    assert evaluated == [False, False, True, True, False]
    assert log[2]["watch"][0]["model"] == "demo-shapes" and log[3]["watch"][0]["drop"] is None
    # the loop closed: a model was trained on v2.0 and judged against the shipped one
    assert log[1]["trained"] == ["demo-shapes-ft"]
    assert "labeldesk promote demo-shapes-ft" in r_demo.stdout


def test_show_says_method_and_model_in_words(proj, tmp_path, capsys) -> None:
    from labeldesk.core.inference import predictions
    from labeldesk.core.store.project import Project, now_iso
    from labeldesk.core.store.sessions import ReviewSession

    write_image(tmp_path / "a" / "1.png", seed=1)
    run(capsys, "-p", str(proj), "add", str(tmp_path / "a"))
    code, out, _ = run(capsys, "-p", str(proj), "show", "main")
    assert code == 0 and "None" not in out
    assert "method: images added (no labelling)" in out and "model: none" in out

    params = {"conf": 0.25, "iou": 0.7, "imgsz": 640}
    with Project.open(proj) as p:
        with p.transaction():
            p.db.execute(
                "INSERT INTO model (id, name, path, format, task, class_names, added_at, "
                "added_by) VALUES (?, 'shapes-v2', '/m.pt', 'pt', 'detect', '[\"car\"]', ?, 'x')",
                ["ab" * 32, now_iso()],
            )
        predictions.store(p, "ab" * 32, params, [])
        s = ReviewSession.start(p)
        s.add_class("car")
        (sha,) = [r[0] for r in p.db.execute("SELECT sha256 FROM image")]
        s.set_boxes(sha, [])
        s.commit(
            "reviewed",
            provenance={"method": "semi-automatic", "model": "ab" * 32, "model_params": params},
        )
    code, out, _ = run(capsys, "-p", str(proj), "show", "main")
    assert code == 0 and "None" not in out and "ab" * 32 not in out and "{" not in out
    assert "method: semi-automatic" in out
    assert "model: shapes-v2 (confidence ≥ 0.25, overlap (NMS IoU) 0.7, image size 640 px)" in out


def test_a_diff_of_image_metadata_only_says_which_field(proj, tmp_path, capsys) -> None:
    from labeldesk.core.store.manifest import Entry, ManifestStore
    from labeldesk.core.store.project import Project
    from labeldesk.core.store.version_diff import diff
    from labeldesk.core.store.versions import resolve, write_version

    write_image(tmp_path / "a" / "1.png", seed=1)
    run(capsys, "-p", str(proj), "add", str(tmp_path / "a"))
    with Project.open(proj) as p:
        v = resolve(p.db, "main")
        store = ManifestStore(p.db)
        tree = store.tree(v.tree)
        (sha,) = [r[0] for r in p.db.execute("SELECT sha256 FROM image")]
        old = store.entry(tree, sha)
        new = Entry(old.annset, old.split, old.tags, (("file_name", "renamed.png"),))
        with p.transaction():
            write_version(
                p,
                tree=store.apply(tree, {sha: new}),
                classes=v.classes,
                parents=[v.id],
                kind="import",
                message="rename",
                provenance={},
                move_main_from=v.id,
            )
        (change,) = diff(p, "main~1", "main").images
    assert change.what_changed() == ["file_name"]
    code, out, _ = run(capsys, "-p", str(proj), "diff", "main~1", "main")
    assert code == 0 and out.rstrip().endswith("file_name")
    code, out, _ = run(capsys, "-p", str(proj), "diff", "main~1", "main", "--json")
    assert json.loads(out)["images"][0]["meta_changed"] == ["file_name"]


def test_demo_force_replaces_a_demo_and_only_a_demo(tmp_path) -> None:
    from labeldesk.core.demo.build import clear_demo_folder
    from labeldesk.core.errors import LabelDeskError
    from labeldesk.core.store.project import Project

    demo = tmp_path / "demo"
    Project.init(demo / "project").close()  # where build_demo puts its project
    write_image(demo / "source-images" / "a.png")
    with pytest.raises(LabelDeskError, match="--force"):
        clear_demo_folder(demo, force=False)
    clear_demo_folder(demo, force=True)
    assert not demo.exists()

    other = tmp_path / "mine"
    write_image(other / "holiday.png")
    with pytest.raises(LabelDeskError, match="does not hold a LabelDesk demo"):
        clear_demo_folder(other, force=True)
    assert (other / "holiday.png").exists()
    clear_demo_folder(tmp_path / "new", force=False)  # missing: fine


def test_a_command_parsed_alone_is_the_same_command() -> None:
    """`labeldesk CMD` builds only CMD's parser (start-up); it must be the full parser's CMD."""
    import argparse

    from labeldesk.cli.main import build_parser, command_names

    def sub_parsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (action,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(action.choices)

    full = sub_parsers(build_parser())
    assert set(full) == command_names()
    # each verbs module adds exactly the commands the table says (a run imports only its own)
    import importlib

    from labeldesk.cli.main import VERB_MODULES, _OnlyCommand

    for module, commands in VERB_MODULES.items():
        recorder = _OnlyCommand(None, None)
        importlib.import_module(f"labeldesk.cli.{module}").add_parsers(recorder)
        assert recorder.names == set(commands), module
    for name, parser in full.items():
        alone = sub_parsers(build_parser(name))
        assert list(alone) == [name]
        assert alone[name].format_help() == parser.format_help(), name
