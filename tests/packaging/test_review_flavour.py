"""The review flavour in a plain environment: torch, Ultralytics and cv2 cannot be imported.

Each check runs in a child Python whose import system refuses those packages, which is what
``pip install -r packaging/requirements-review.txt`` (and the review bundle) gives a user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo-shapes.pt"

BLOCK = """
import importlib.abc, sys
BLOCKED = ("torch", "torchvision", "ultralytics", "cv2")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def run_without_torch(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen", **env}
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=170,
    )


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory) -> Path:
    """The demo model as the bundle carries it: dynamic ONNX export at 320."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import build
    finally:
        sys.path.pop(0)
    return build.export_demo_onnx(tmp_path_factory.mktemp("demo") / "demo-shapes.onnx")


def test_flavour_is_review_and_the_demo_wants_the_onnx_model() -> None:
    done = run_without_torch(
        """
        from labeldesk.core.flavour import is_full
        from labeldesk.core.demo.build import demo_model_path
        from labeldesk.core.errors import LabelDeskError
        assert not is_full()
        try:
            print(demo_model_path())
        except LabelDeskError as e:
            print("error:", e)
        """
    )
    assert done.returncode == 0, done.stderr
    # the source tree ships only the .pt; the review flavour looks for the ONNX export
    assert "demo-shapes.onnx" in done.stdout


def test_demo_runs_in_the_review_flavour_and_skips_training(tmp_path, demo_onnx) -> None:
    done = run_without_torch(
        f"""
        from pathlib import Path
        from labeldesk.core.demo.build import build_demo
        lines = []
        p = build_demo(Path({str(tmp_path / "demo")!r}), n_images=6, say=lines.append)
        p.close()
        print("\\n".join(lines))
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), "torch was loaded"
        """,
        LABELDESK_DEMO_MODEL=str(demo_onnx),
        LABELDESK_USER="demo-user",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "onnx detect model" in done.stdout and "no torch" in done.stdout
    assert "Training the model on v2.0 is skipped" in done.stdout
    assert "labeldesk prelabel --model demo-shapes" in done.stdout and "fsck: OK" in done.stdout


def test_the_window_offers_training_only_in_the_full_flavour() -> None:
    code = """
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from labeldesk.gui.main_window import MainWindow
        w = MainWindow(None)
        print("enabled" if w.train_action.isEnabled() else "disabled", w.train_action.toolTip())
        w.close()
        """
    done = run_without_torch(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("disabled") and "full flavour" in done.stdout
    plain = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("enabled")


def test_a_pt_model_in_the_review_flavour_is_refused_with_the_reason(tmp_path) -> None:
    done = run_without_torch(
        f"""
        from labeldesk.cli.main import main
        root = {str(tmp_path / "p")!r}
        assert main(["init", root]) == 0
        code = main(["-p", root, "model", "add", {str(DEMO)!r}])
        assert code == 1, code
        code = main(["-p", root, "model", "list", "--json"])
        """
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not installed here" in done.stderr and "full flavour" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.rstrip().endswith("[]")  # nothing was registered
