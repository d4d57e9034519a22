"""The torch-free ONNX path agrees with Ultralytics, and pre-labelling takes it without torch.

The shipped demo model is exported to ONNX with Ultralytics' own exporter (``labeldesk model
export``'s core function); the numpy decoder's boxes on generated scenes are compared with
Ultralytics running the ``.pt`` (the torch path) and the same ``.onnx``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from labeldesk.core.demo.synth import write_images
from labeldesk.core.inference import loading, model_files, predictions
from labeldesk.core.inference.model_files import read_onnx_header
from labeldesk.core.inference.onnx_decode import OnnxDetector, decode, letterbox, nms, resize_linear
from labeldesk.core.inference.onnx_export import export_onnx
from labeldesk.core.inference.prelabel import decode_upright_bgr, decode_upright_rgb, prelabel
from labeldesk.core.inference.registry import add_model
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import Project

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "models" / "demo-shapes.pt"
IMGSZ = 320


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """The demo model exported twice (static 320 and dynamic), through ``export_onnx``."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("export")
    project = Project.init(folder / "project", user="lead")
    try:
        add_model(project, Path(shutil.copy(DEMO, folder / "demo.pt")), "demo")
        out = {}
        for kind, dynamic in (("static", False), ("dynamic", True)):
            report = export_onnx(project, "demo", name=f"demo-{kind}", imgsz=IMGSZ, dynamic=dynamic)
            m = report.add.model
            assert (m.format, m.task, m.class_names) == (
                "onnx",
                "detect",
                report.source.class_names,
            )
            out[kind] = Path(shutil.copy(m.path, folder / f"{kind}.onnx"))
        return out
    finally:
        project.close()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scenes")
    files = [p for p, _ in write_images(folder, 6, seed=11)]
    # other sizes and aspect ratios: tall, tiny (upscaled), large
    files += [p for p, _ in write_images(folder / "tall", 2, seed=12, size=(300, 500))]
    files += [p for p, _ in write_images(folder / "small", 1, seed=13, size=(200, 150))]
    files += [p for p, _ in write_images(folder / "large", 1, seed=14, size=(1280, 720))]
    return files


def _ultralytics(weights: Path):
    loading.ultralytics()
    from ultralytics import YOLO

    return YOLO(str(weights), task="detect")


def _assert_same(ref, mine, where: str) -> int:
    """Ultralytics' Results vs our Detections: same boxes within 1 px, scores within 1e-3."""
    xyxy = ref.boxes.xyxy.cpu().numpy()
    score = ref.boxes.conf.cpu().numpy()
    cls = ref.boxes.cls.cpu().numpy().astype(int)
    assert len(mine) == len(score), where
    a = np.lexsort((xyxy[:, 0], cls))
    b = np.lexsort((mine.xyxy[:, 0], mine.classes))
    assert (cls[a] == mine.classes[b]).all(), where
    assert np.abs(xyxy[a] - mine.xyxy[b]).max(initial=0) <= 1.0, where
    assert np.abs(score[a] - mine.scores[b]).max(initial=0) <= 1e-3, where
    return len(score)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_numpy_decode_matches_ultralytics_torch_and_onnx(kind, exported, scenes) -> None:
    path = exported[kind]
    mine = OnnxDetector(path, read_onnx_header(path) or {})
    assert (mine.fixed is None) == (kind == "dynamic")
    torch_model = _ultralytics(DEMO)
    onnx_model = _ultralytics(path)
    boxes = 0
    for f in scenes:
        data = f.read_bytes()
        found = mine.predict(decode_upright_rgb(data), 0.25, 0.7, IMGSZ)
        bgr = decode_upright_bgr(data)
        kw = {"conf": 0.25, "iou": 0.7, "imgsz": IMGSZ, "verbose": False}
        # Ultralytics pads a .pt and a dynamic export to the stride only (rect), a static
        # export to its square: the torch path is asked for the same placement.
        (ref_pt,) = torch_model.predict(bgr, rect=kind == "dynamic", **kw)
        (ref_onnx,) = onnx_model.predict(bgr, **kw)
        boxes += _assert_same(ref_pt, found, f"{f.name} vs .pt")
        _assert_same(ref_onnx, found, f"{f.name} vs Ultralytics' onnx")
    assert boxes >= 15  # the comparison saw real detections, not empty images


def test_resize_is_opencvs_inter_linear() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for (h, w), (nh, nw) in [
        ((480, 640), (240, 320)),  # exact 2x (OpenCV switches to INTER_AREA)
        ((480, 640), (320, 427)),
        ((720, 1280), (180, 320)),
        ((150, 200), (240, 320)),  # upscale
    ]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        diff = np.abs(ref.astype(int) - resize_linear(img, nw, nh))
        # downscaling is bit-exact; upscaling may differ by one level on a few pixels
        assert diff.max() <= (0 if nh < h else 1), (h, w, nh, nw)
        assert (diff > 0).mean() < 0.01


def test_letterbox_places_the_image_as_ultralytics_does() -> None:
    loading.ultralytics()
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(1)
    for shape, auto in [
        ((480, 640), False),
        ((480, 640), True),
        ((500, 300), True),
        ((7, 900), False),
    ]:
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        ref = LetterBox((IMGSZ, IMGSZ), auto=auto, stride=32)(image=img)
        mine, _ = letterbox(img, (IMGSZ, IMGSZ), auto=auto, stride=32)
        assert mine.shape == ref.shape, (shape, auto)
        assert np.abs(mine.astype(int) - ref).max() <= 1, (shape, auto)


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], dtype=np.float32
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # 1 and 3 overlap box 0
    assert nms(boxes, scores, 0.99).tolist() == [0, 1, 2]  # 3 is box 0 exactly (IoU 1)
    # raw head output (4 + nc, anchors): same box, two classes -> both kept (class-wise NMS)
    out = np.zeros((4 + 2, 3), dtype=np.float32)
    out[:4, 0] = out[:4, 1] = [5, 5, 10, 10]  # centre 5,5, size 10
    out[4, 0], out[5, 1], out[4, 2] = 0.9, 0.8, 0.1  # anchor 2 below conf
    xyxy, score, cls = decode(out, 0.25, 0.7, nc=2)
    assert cls.tolist() == [0, 1] and np.allclose(xyxy[0], [0, 0, 10, 10])
    assert score.tolist() == pytest.approx([0.9, 0.8])
    # an end-to-end head's rows only need the confidence filter
    rows = np.array([[1, 2, 3, 4, 0.9, 3], [1, 2, 3, 4, 0.1, 0]], dtype=np.float32)
    xyxy, score, cls = decode(rows, 0.25, 0.7, nc=4, end2end=True)
    assert cls.tolist() == [3] and xyxy.tolist() == [[1, 2, 3, 4]]


def test_prelabel_with_onnx_runs_without_torch_or_ultralytics(tmp_path, exported) -> None:
    """The review flavour: torch, torchvision, ultralytics and cv2 cannot even be imported."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = ("torch", "torchvision", "ultralytics", "cv2")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Block())
        from pathlib import Path
        from labeldesk.core.store.importer import add_images
        from labeldesk.core.inference.registry import add_model
        from labeldesk.core.inference.prelabel import prelabel
        from labeldesk.core.store.project import Project
        from labeldesk.core.demo.synth import write_images
        p = Project.init(Path({str(tmp_path / "project")!r}), user="u")
        files = [f for f, _ in write_images(Path({str(tmp_path / "src")!r}), 3, seed=5)]
        add_images(p, files)
        add_model(p, Path({str(exported["static"])!r}), "onnx")
        r = prelabel(p, "onnx", imgsz={IMGSZ})
        assert r.predicted == 3 and r.boxes > 0, r.to_json()
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules)
        print("ok", r.boxes)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok ")


def test_prelabel_stores_the_numpy_decoders_boxes(project, tmp_path, exported, scenes) -> None:
    info = add_model(project, exported["dynamic"], "dyn").model
    add_images(project, scenes[:3])
    report = prelabel(project, "dyn", imgsz=IMGSZ)
    assert report.predicted == 3
    mine = OnnxDetector(exported["dynamic"], read_onnx_header(exported["dynamic"]) or {})
    params = {"conf": 0.25, "iou": 0.7, "imgsz": IMGSZ}
    for f in scenes[:3]:
        data = f.read_bytes()
        import hashlib

        stored = predictions.load(project.db, info.id, params, hashlib.sha256(data).hexdigest())
        found = mine.predict(decode_upright_rgb(data), 0.25, 0.7, IMGSZ)
        assert len(stored) == len(found)
        for p, (x1, y1, x2, y2), s in zip(stored, found.xyxy, found.scores, strict=True):
            assert (p.x, p.y, p.w, p.h) == pytest.approx((x1, y1, x2 - x1, y2 - y1), abs=1e-3)
            assert p.score == pytest.approx(float(s), abs=1e-6)


def test_export_refuses_a_model_that_is_not_a_pt(project, exported) -> None:
    add_model(project, exported["static"], "already-onnx")
    with pytest.raises(model_files.ModelError, match="already an onnx model"):
        export_onnx(project, "already-onnx")
    with pytest.raises(model_files.ModelError, match="no model 'nope'"):
        export_onnx(project, "nope")
