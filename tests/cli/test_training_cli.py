"""``labeldesk train``, ``promote``, ``lineage`` and ``prelabel`` with the release model, driven
as a user drives them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_cli as run

from labeldesk.core.demo.synth import write_yolo_dataset

pytestmark = pytest.mark.timeout(600)

TINY = ["--epochs", "1", "--imgsz", "64", "--batch", "8"]


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("cli-train")
    ds = write_yolo_dataset(base / "ds", 24, 8, seed=4, size=(160, 120)).parent
    root = base / "proj"
    from labeldesk.cli.main import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELDESK_USER", "lead")  # the project's creator, so its lead
        assert main(["init", str(root)]) == 0
        assert main(["-p", str(root), "import", "yolo", str(ds)]) == 0
        yield root


def test_train_prints_the_model_and_its_figures(proj, capsys) -> None:
    code, out, err = run(
        capsys,
        "-p",
        str(proj),
        "train",
        "--config",
        "yolov8n.yaml",
        *TINY,
        "--name",
        "cli-1",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "cli-1" and result["run"]["status"] == "completed"
    code, out, _ = run(capsys, "-p", str(proj), "lineage", "cli-1")
    assert code == 0 and "learned from version" in out


def test_a_device_that_does_not_exist_is_a_clear_error(proj, capsys) -> None:
    code, out, err = run(
        capsys, "-p", str(proj), "train", "--config", "yolov8n.yaml", *TINY, "--device", "7"
    )
    assert code == 1
    assert "failed" in err and "Traceback" not in err
    code, out, _ = run(capsys, "-p", str(proj), "model", "list", "--json")
    assert [m["name"] for m in json.loads(out)] == ["cli-1"]


def test_promote_exit_codes_and_the_release_model_prelabels(proj, capsys) -> None:
    code, out, err = run(capsys, "-p", str(proj), "promote", "cli-1")
    assert code == 0, err
    assert "first release model" in out
    code, out, err = run(
        capsys, "-p", str(proj), "train", "--config", "yolov8n.yaml", *TINY, "--name", "cli-2"
    )
    assert code == 0, err
    code, out, err = run(capsys, "-p", str(proj), "promote", "cli-2", "--min-gain", "1")
    assert code == 1 and "NOT PROMOTED" in out
    code, out, _ = run(capsys, "-p", str(proj), "model", "show", "cli-1", "--json")
    assert json.loads(out)["release"] is True
    # with no --model, pre-labelling uses the release model
    code, out, err = run(capsys, "-p", str(proj), "prelabel", "--imgsz", "64", "--json")
    assert code == 0, err
    assert json.loads(out)["model_name"] == "cli-1"


def test_log_and_report_show_what_was_trained_on_each_version(proj, capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "-p", str(proj), "log", "--json")
    assert code == 0
    (only,) = json.loads(out)
    assert "cli-1" in only["trained"]
    code, out, _ = run(capsys, "-p", str(proj), "log")
    assert "models trained on it" in out and "cli-1" in out
    report = tmp_path / "report.html"
    assert run(capsys, "-p", str(proj), "report", "--out", str(report))[0] == 0
    html = report.read_text()
    training = html[html.index("<h2>Training</h2>") :]
    assert "cli-1" in training and "completed" in training


def test_training_never_loads_torch_in_the_calling_process(proj) -> None:
    """Only the child trains: the command (or a window) stays light and cannot be crashed by it."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom labeldesk.cli.main import main\n"
        f"rc = main(['-p', {str(proj)!r}, 'train', '--config', 'yolov8n.yaml', "
        "'--epochs', '1', '--imgsz', '64', '--batch', '8', '--name', 'light'])\n"
        "print(rc, 'torch' in sys.modules, 'ultralytics' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=500)
    assert r.stdout.split()[-3:] == ["0", "False", "False"], r.stdout + r.stderr
