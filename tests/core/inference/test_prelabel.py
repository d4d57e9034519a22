"""Pre-labelling with the real shipped model: boxes on the objects, upright, cached, resumable."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import STORED
from PIL import Image

from labeldesk.core.demo.synth import CLASSES, SynthBox, render_scene, write_images
from labeldesk.core.errors import CancelledError, InputError, LabelDeskError
from labeldesk.core.images import open_upright
from labeldesk.core.inference import loading, model_files, predictions
from labeldesk.core.inference.prelabel import (
    decode_upright_bgr,
    prelabel,
    prelabel_params,
    show_in_session,
)
from labeldesk.core.inference.registry import add_model
from labeldesk.core.store.importer import add_images

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "models" / "demo-shapes.pt"
IMGSZ = 320  # what the demo model was trained at; quick on two CPU cores
PARAMS = prelabel_params(imgsz=IMGSZ)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def matched(truth: list[SynthBox], preds: list, threshold: float = 0.5) -> int:
    """Objects found with the right class at IoU >= threshold (greedy, one box each)."""
    free = list(preds)
    n = 0
    for t in truth:
        cands = [p for p in free if p.name == CLASSES[t.cls]]
        best = max(
            cands, key=lambda p: iou((t.x, t.y, t.w, t.h), (p.x, p.y, p.w, p.h)), default=None
        )
        if (
            best is not None
            and iou((t.x, t.y, t.w, t.h), (best.x, best.y, best.w, best.h)) >= threshold
        ):
            free.remove(best)
            n += 1
    return n


@pytest.fixture
def model(project) -> str:
    return add_model(project, DEMO, "demo").model.id


def import_scenes(project, folder: Path, n: int, seed: int = 21) -> dict[str, list[SynthBox]]:
    truth = write_images(folder, n, seed=seed)
    report = add_images(project, [folder])
    by_name = {Path(a.path).name: a.sha256 for a in report.added}
    return {by_name[p.name]: boxes for p, boxes in truth}


def test_boxes_land_on_the_objects(project, model, tmp_path) -> None:
    truth = import_scenes(project, tmp_path / "src", 6)
    report = prelabel(project, "demo", imgsz=IMGSZ, batch=4)
    assert (report.images, report.cached, report.predicted) == (6, 0, 6)
    assert report.unknown_classes == list(CLASSES)  # the import version has no classes yet
    objects = sum(len(b) for b in truth.values())
    found = 0
    for sha, boxes in truth.items():
        preds = predictions.load(project.db, model, PARAMS, sha)
        assert all(0.25 <= p.score <= 1 and p.w > 0 and p.h > 0 for p in preds)
        found += matched(boxes, preds)
    assert found / objects >= 0.55, (found, objects)  # the model's recall is ~0.65
    assert report.boxes == sum(len(predictions.load(project.db, model, PARAMS, s)) for s in truth)


def test_rotated_photos_are_predicted_upright(project, model, tmp_path) -> None:
    upright, truth = render_scene(np.random.default_rng([21, 0, 4]), 640, 480)
    folder = tmp_path / "rotated"
    folder.mkdir()
    for o in range(1, 9):
        stored = upright if STORED[o] is None else upright.transpose(STORED[o])
        exif = Image.Exif()
        exif[0x0112] = o
        stored.save(folder / f"o{o}.jpg", quality=95, exif=exif.tobytes())
        assert open_upright((folder / f"o{o}.jpg").read_bytes()).size == (640, 480)
    report = add_images(project, [folder])
    shas = {Path(a.path).stem: a.sha256 for a in report.added}
    prelabel(project, "demo", imgsz=IMGSZ)
    reference = predictions.load(project.db, model, PARAMS, shas["o1"])
    assert matched(truth, reference) >= max(1, len(truth) - 1)
    for o in range(2, 9):
        preds = predictions.load(project.db, model, PARAMS, shas[f"o{o}"])
        assert matched(truth, preds) == matched(truth, reference), o
        for p in preds:  # the same boxes, in the upright frame, whatever the stored rotation
            best = max(iou((p.x, p.y, p.w, p.h), (r.x, r.y, r.w, r.h)) for r in reference)
            assert best > 0.85, (o, p)


def test_decoding_matches_what_the_reviewer_sees(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    for mode, o in (("RGB", 6), ("RGB", 1), ("L", 3), ("RGBA", 8), ("P", 1)):
        im = Image.fromarray(arr).convert(mode)
        exif = Image.Exif()
        exif[0x0112] = o
        buf = io.BytesIO()
        im.save(buf, format="PNG", exif=exif.tobytes())
        data = buf.getvalue()
        expected = np.asarray(open_upright(data).convert("RGB"))[:, :, ::-1]
        got = decode_upright_bgr(data)
        assert got.shape == expected.shape and np.array_equal(got, expected), (mode, o)


def test_a_rerun_is_a_cache_hit_and_other_params_are_another_cache(
    project, model, tmp_path, monkeypatch
) -> None:
    import_scenes(project, tmp_path / "src", 3)
    first = prelabel(project, "demo", imgsz=IMGSZ)
    assert first.predicted == 3

    def no_loading(*a, **k):
        raise AssertionError("a fully cached run must not load the model")

    monkeypatch.setattr("labeldesk.core.inference.prelabel.load_model", no_loading)
    again = prelabel(project, "demo", imgsz=IMGSZ)
    assert (again.cached, again.predicted, again.boxes) == (3, 0, 0)
    monkeypatch.undo()
    other = prelabel(project, "demo", imgsz=IMGSZ, conf=0.5)
    assert other.predicted == 3
    n = project.db.execute("SELECT COUNT(*), COUNT(DISTINCT params) FROM prediction").fetchone()
    assert tuple(n) == (6, 2)
    with pytest.raises(InputError, match="multiple of 32"):
        prelabel(project, "demo", imgsz=300)
    with pytest.raises(InputError, match="conf"):
        prelabel(project, "demo", conf=0)


def test_cancel_keeps_what_was_predicted_and_a_rerun_resumes(project, model, tmp_path) -> None:
    import_scenes(project, tmp_path / "src", 5)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2  # after two images

    seen = []
    with pytest.raises(CancelledError, match="2 of 5 images have predictions"):
        prelabel(
            project,
            "demo",
            imgsz=IMGSZ,
            batch=10,
            cancel=cancel,
            progress=lambda d, t, w: seen.append((d, t)),
        )
    assert seen == [(1, 5), (2, 5)]
    assert len(predictions.cached_images(project.db, model, PARAMS)) == 2  # partial batch kept
    rest = prelabel(project, "demo", imgsz=IMGSZ)
    assert (rest.cached, rest.predicted) == (2, 3)


def test_a_killed_run_resumes_and_predicts_only_the_rest(project, model, tmp_path) -> None:
    import_scenes(project, tmp_path / "src", 6)
    script = textwrap.dedent(
        f"""
        import os, signal
        from labeldesk.core.store.project import Project
        from labeldesk.core.inference.prelabel import prelabel

        def progress(done, total, what):
            if done == 3:  # image 3 predicted, not stored: the batch of 2 before it is
                os.kill(os.getpid(), signal.SIGKILL)

        prelabel(Project.open({str(project.root)!r}), "demo", imgsz={IMGSZ}, batch=2,
                 progress=progress)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    assert len(predictions.cached_images(project.db, model, PARAMS)) == 2
    rest = prelabel(project, "demo", imgsz=IMGSZ, batch=2)
    assert (rest.cached, rest.predicted) == (2, 4)
    assert len(predictions.cached_images(project.db, model, PARAMS)) == 6


def test_a_changed_model_file_is_refused_before_predicting(project, tmp_path) -> None:
    weights = Path(shutil.copy(DEMO, tmp_path / "m.pt"))
    add_model(project, weights, "m")
    import_scenes(project, tmp_path / "src", 1)
    with weights.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(model_files.ModelChangedError, match="register it again"):
        prelabel(project, "m", imgsz=IMGSZ)
    assert project.db.execute("SELECT COUNT(*) FROM prediction").fetchone()[0] == 0


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    loading.ultralytics()
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("onnx")
    pt = Path(shutil.copy(DEMO, folder / "demo-shapes.pt"))
    import torch

    with warnings.catch_warnings():
        # Tracing warns about Python control flow on tensors; we run with warnings as errors.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        out = YOLO(str(pt)).export(format="onnx", imgsz=IMGSZ, simplify=False, verbose=False)
    return Path(out)


def test_onnx_export_predicts_boxes_close_to_the_pt(project, model, tmp_path, onnx_model) -> None:
    truth = import_scenes(project, tmp_path / "src", 3)
    disguised = Path(shutil.copy(onnx_model, tmp_path / "exported.pt"))  # bytes, not names
    info = add_model(project, disguised, "demo-onnx").model
    assert (info.format, info.task, info.class_names) == ("onnx", "detect", list(CLASSES))
    prelabel(project, "demo", imgsz=IMGSZ)
    report = prelabel(project, "demo-onnx", imgsz=IMGSZ)
    assert report.predicted == 3
    n = 0
    for sha in truth:
        pt = predictions.load(project.db, model, PARAMS, sha)
        ox = predictions.load(project.db, info.id, PARAMS, sha)
        assert abs(len(pt) - len(ox)) <= 1  # a box near the threshold may fall either side
        for p in pt:
            if p.score < 0.35:
                continue
            same = [o for o in ox if o.name == p.name]
            best = max(same, key=lambda o: iou((p.x, p.y, p.w, p.h), (o.x, o.y, o.w, o.h)))
            assert iou((p.x, p.y, p.w, p.h), (best.x, best.y, best.w, best.h)) > 0.9
            assert abs(best.score - p.score) < 0.05
            n += 1
    assert n >= 2
    with pytest.raises(LabelDeskError, match="fixed input size of 320"):
        prelabel(project, "demo-onnx", imgsz=640)


def test_show_in_session_makes_the_review_window_show_pending_prelabels(
    project, model, tmp_path
) -> None:
    from labeldesk.app.review import Workspace
    from labeldesk.core.store.sessions import ReviewSession

    truth = import_scenes(project, tmp_path / "src", 2)
    s = ReviewSession.start(project)
    for name in CLASSES:
        s.add_class(name)
    prelabel(project, "demo", imgsz=IMGSZ)
    show_in_session(project, s.id, model, PARAMS)
    ws = Workspace(project, ReviewSession(project, s.id))
    ws.load()
    for sha in truth:
        boxes = ws.boxes(sha)
        stored = predictions.load(project.db, model, PARAMS, sha)
        assert len(boxes) == len(stored) and all(b.state == "pending" for b in boxes)


def test_demo_prelabels_new_images_for_review(tmp_path, monkeypatch) -> None:
    from labeldesk.app.review import Workspace, open_or_start_session
    from labeldesk.core.demo.build import DEMO_MODEL_ENV, build_demo, demo_model_path

    lines: list[str] = []
    monkeypatch.setenv("LABELDESK_USER", "demo-user")
    # training is the CLI demo test's to check (tests/cli/test_cli.py); here it only costs time
    project = build_demo(tmp_path / "demo", n_images=6, train=False, say=lines.append)
    try:
        text = "\n".join(lines)
        assert "labeldesk prelabel --model demo-shapes" in text and "fsck: OK" in text
        session = open_or_start_session(project)
        ws = Workspace(project, session)
        ws.load()
        assert ws.prelabel_model is not None
        pending = [r for r in ws.rows if r.min_score is not None]
        assert len(pending) >= 2  # the new, unlabelled images show pre-labels
        assert all(b.state == "pending" for b in ws.boxes(pending[0].sha))
    finally:
        project.close()
    monkeypatch.setenv(DEMO_MODEL_ENV, str(tmp_path / "nowhere.pt"))
    with pytest.raises(LabelDeskError, match="not a file"):
        demo_model_path()
    monkeypatch.delenv(DEMO_MODEL_ENV)
    assert demo_model_path() == DEMO
    assert os.path.getsize(DEMO) < 10 * 2**20
