"""``labeldesk model export NAME --format onnx``: an ONNX model made and registered in one step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import DEMO_MODEL
from helpers import run_cli as run

from labeldesk.core.demo.synth import write_images


def test_model_export_registers_an_onnx_model_that_prelabels(tmp_path, capsys) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    write_images(tmp_path / "src", 2, seed=5)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
    pt = Path(shutil.copy(DEMO_MODEL, tmp_path / "demo.pt"))
    assert run(capsys, "-p", str(root), "model", "add", str(pt), "--name", "demo")[0] == 0
    before = pt.read_bytes()
    code, out, err = run(
        capsys, "-p", str(root), "model", "export", "demo", "--format", "onnx", "--imgsz", "320"
    )
    assert code == 0, err
    assert "registered as demo-onnx" in out
    assert pt.read_bytes() == before  # the user's file is only read
    code, out, _ = run(capsys, "-p", str(root), "model", "list", "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    onnx = listed["demo-onnx"]
    assert onnx["format"] == "onnx" and onnx["class_names"] == listed["demo"]["class_names"]
    assert Path(onnx["path"]).is_relative_to(root / "objects")  # stored in the project
    code, out, err = run(
        capsys, "-p", str(root), "prelabel", "--model", "demo-onnx", "--imgsz", "320", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["predicted"] == 2
    # exporting an .onnx again is refused with the reason, and nothing is registered
    code, _, err = run(capsys, "-p", str(root), "model", "export", "demo-onnx")
    assert code == 1 and "already an onnx model" in err
    code, out, _ = run(capsys, "-p", str(root), "model", "list", "--json")
    assert len(json.loads(out)) == 2
