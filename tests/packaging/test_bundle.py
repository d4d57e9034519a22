"""Build the review flavour of the desktop app and run the frozen program (``-m bundle``).

What a reviewer without Python gets: ``LabelDesk --version``, ``LabelDesk demo --no-gui``
(which pre-labels with the ONNX demo model, offline, without torch) and the window, opened
offscreen on the demo project and on the welcome screen, each saved as a screenshot that must
show a real window (not a blank or single-colour image).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    pytest.importorskip("PyInstaller")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("bundle")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "packaging" / "build.py"),
            "--flavour",
            "review",
            "--dist",
            str(out / "dist"),
            "--work",
            str(out / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    info = json.loads((out / "dist" / "build-info.json").read_text())
    info["exe"] = Path(info["bundle"]) / "LabelDesk"
    info["home"] = out / "home"
    info["home"].mkdir()
    return info


def frozen(info: dict, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the frozen program as a user would: no PYTHONPATH, no venv, a home of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LABELDESK_DEMO_MODEL", "PYTHONHOME")
    }
    env |= {"HOME": str(info["home"]), "QT_QPA_PLATFORM": "offscreen", "LABELDESK_USER": "rev"}
    env["XDG_CONFIG_HOME"] = str(info["home"] / ".config")
    return subprocess.run(
        [str(info["exe"]), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_a_real_window(png: Path) -> None:
    im = np.asarray(Image.open(png).convert("RGB"))
    h, w = im.shape[:2]
    assert w >= 640 and h >= 400, (w, h)
    colours = len(np.unique(im.reshape(-1, 3), axis=0))
    assert colours > 64, f"{png.name}: only {colours} colours, a blank window"
    assert im.std() > 10, f"{png.name}: almost uniform"


@pytest.mark.bundle
@pytest.mark.timeout(1800)
def test_review_bundle_runs_the_demo_and_opens_the_window(bundle, tmp_path) -> None:
    internal = Path(bundle["bundle"]) / "_internal"
    for pkg in ("torch", "ultralytics", "cv2", "torchvision"):
        assert not (internal / pkg).exists(), f"{pkg} is in the review bundle"
    assert (internal / "resources" / "models" / "demo-shapes.onnx").is_file()
    assert (internal / "resources" / "linux" / "io.github.labeldesk.LabelDesk.desktop").is_file()
    assert bundle["bundle_bytes"] < 400 * MB, bundle  # the goal for this flavour
    assert Path(bundle["archive"]).is_file()

    done = frozen(bundle, "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "labeldesk 0.1.0", done
    # background jobs start `LabelDesk -m labeldesk ...` in a bundle (sys.executable)
    done = frozen(bundle, "-m", "labeldesk", "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "labeldesk 0.1.0", done

    done = frozen(
        bundle, "demo", str(tmp_path / "demo"), "--no-gui", "--images", "16", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "onnx detect model" in done.stdout and "no torch" in done.stdout
    assert "labeldesk prelabel --model demo-shapes --imgsz 320" in done.stdout
    assert "fsck: OK" in done.stdout
    project = tmp_path / "demo" / "project"
    done = frozen(bundle, "-p", str(project), "model", "list", "--json", cwd=tmp_path)
    assert [m["format"] for m in json.loads(done.stdout)] == ["onnx"]

    shot = tmp_path / "window.png"
    done = frozen(bundle, "gui", str(project), "--screenshot", str(shot), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_a_real_window(shot)

    # `LabelDesk` alone is `LabelDesk gui`: with no last project, the welcome screen
    fresh = bundle | {"home": tmp_path / "fresh-home"}
    fresh["home"].mkdir()
    welcome = tmp_path / "welcome.png"
    done = frozen(fresh, "gui", "--screenshot", str(welcome), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_a_real_window(welcome)
