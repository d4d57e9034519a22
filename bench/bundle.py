"""Benchmark: the desktop bundles' size, start-up and ONNX pre-labelling (issue 16).

    python packaging/build.py                     # first: the review flavour in dist/LabelDesk
    python bench/bundle.py [--images 48] [--starts 5] [--full-dist dist/full/LabelDesk]

Prints, in one run:
  * size on disk of each flavour's folder that exists (and of this virtual environment);
  * time from starting the program to its first painted window (offscreen, on a demo project):
    the frozen review app (``LabelDesk gui``) against the same app from this virtual
    environment (``python -m labeldesk gui``), alternated --starts times; medians count;
  * ONNX pre-label throughput, images/s, on the same generated scenes and the same ONNX export
    of the demo model: LabelDesk's torch-free path (``prelabel``, storing its boxes; in this
    process and in the frozen review app) against Ultralytics' own ONNX path
    (``YOLO(onnx).predict`` per image, decoding included), alternated --repeats times, best
    of each.

Goals: review flavour under 400 MB, start-up within 1.2x of the venv's, ONNX throughput at
least Ultralytics'. Timing on a shared machine is noisy: read the figures, do not gate on them.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "0"
os.environ.setdefault("YOLO_VERBOSE", "False")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))
sys.path.insert(0, str(ROOT))

import build  # noqa: E402  (packaging/build.py)

from labeldesk.core.demo.synth import write_images  # noqa: E402
from labeldesk.core.inference.loading import load_model  # noqa: E402
from labeldesk.core.inference.prelabel import decode_upright_bgr, prelabel  # noqa: E402
from labeldesk.core.inference.registry import add_model  # noqa: E402
from labeldesk.core.store.importer import add_images  # noqa: E402
from labeldesk.core.store.project import Project  # noqa: E402

IMGSZ = 320
MB = 1e6


def first_paint_s(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning ``cmd`` to its "PAINTED" line (LABELDESK_EXIT_ON_PAINT=1)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "PAINTED":
            dt = time.perf_counter() - t0
            proc.wait(timeout=60)
            return dt
    raise RuntimeError(f"{cmd} ended without painting (status {proc.wait()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dist", type=Path, default=ROOT / "dist" / "LabelDesk", help="review bundle")
    ap.add_argument("--full-dist", type=Path, default=ROOT / "dist" / "full" / "LabelDesk")
    ap.add_argument("--images", type=int, default=48, help="scenes to pre-label")
    ap.add_argument("--starts", type=int, default=5, help="start-ups of each program")
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs of each path")
    args = ap.parse_args()
    exe = args.dist / "LabelDesk"
    if not exe.is_file():
        raise SystemExit(f"no review bundle at {args.dist}: run python packaging/build.py first")
    out: dict = {"images": args.images, "imgsz": IMGSZ}
    out["review_bytes"] = build.folder_size(args.dist)
    if (args.full_dist / "LabelDesk").is_file():
        out["full_bytes"] = build.folder_size(args.full_dist)
    out["venv_bytes"] = build.folder_size(Path(sys.prefix))
    print(
        f"size: review {out['review_bytes'] / MB:.0f} MB"
        + (f", full {out['full_bytes'] / MB:.0f} MB" if "full_bytes" in out else "")
        + f", this virtual environment {out['venv_bytes'] / MB:.0f} MB",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="labeldesk-bench-bundle-") as tmp:
        work = Path(tmp)
        onnx = build.export_demo_onnx(work / "demo-shapes.onnx")
        files = [p for p, _ in write_images(work / "src", args.images, seed=21)]
        project = Project.init(work / "project", user="bench")
        add_images(project, files)
        info = add_model(project, onnx, "demo-onnx").model

        # --- start-up: frozen against the venv, alternated ---------------------------------
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LABELDESK_EXIT_ON_PAINT": "1"}
        env["HOME"] = str(work / "home")
        env.pop("PYTHONPATH", None)
        venv_env = {**env, "PYTHONPATH": str(ROOT)}
        frozen, venv = [], []
        first_paint_s([str(exe), "gui", str(project.root)], env)  # page cache, font cache
        first_paint_s([sys.executable, "-m", "labeldesk", "gui", str(project.root)], venv_env)
        for _ in range(args.starts):
            frozen.append(first_paint_s([str(exe), "gui", str(project.root)], env))
            venv.append(
                first_paint_s(
                    [sys.executable, "-m", "labeldesk", "gui", str(project.root)], venv_env
                )
            )
        out["start_frozen_s"] = round(statistics.median(frozen), 3)
        out["start_venv_s"] = round(statistics.median(venv), 3)
        out["start_ratio"] = round(out["start_frozen_s"] / out["start_venv_s"], 2)
        print(
            f"first painted window: frozen {out['start_frozen_s']:.2f} s, venv "
            f"{out['start_venv_s']:.2f} s (median of {args.starts}; ratio {out['start_ratio']})",
            flush=True,
        )

        # --- ONNX throughput ----------------------------------------------------------------
        from ultralytics import YOLO

        yolo = YOLO(str(onnx), task="detect")
        arrays = [decode_upright_bgr(f.read_bytes()) for f in files[:2]]
        for a in arrays:  # warm up both
            yolo.predict(a, imgsz=IMGSZ, verbose=False)
        ul_times, ld_times = [], []
        with load_model(info) as lm:  # loaded and warmed up, as the Ultralytics model is
            assert lm.onnx is not None
            for a in arrays:
                lm.onnx.predict(a[:, :, ::-1], 0.25, 0.7, IMGSZ)
            for r in range(args.repeats):  # alternated; the best of each counts
                t0 = time.perf_counter()
                for f in files:  # decoding included, as prelabel includes it
                    array = decode_upright_bgr(f.read_bytes())
                    yolo.predict(array, imgsz=IMGSZ, conf=0.25, iou=0.7, verbose=False)
                ul_times.append(time.perf_counter() - t0)
                # a fresh cache key each repeat (conf a hair apart), so every image is predicted
                report = prelabel(project, info, conf=0.25 + r * 1e-6, imgsz=IMGSZ, loaded=lm)
                assert report.predicted == args.images
                ld_times.append(report.seconds)
        ul, ld = min(ul_times), min(ld_times)
        project.close()
        out["ultralytics_onnx_ips"] = round(args.images / ul, 1)
        out["labeldesk_onnx_ips"] = round(args.images / ld, 1)
        # the frozen review app, on a fresh cache key (another conf), its own timing
        done = subprocess.run(
            [
                str(exe),
                "-p",
                str(work / "project"),
                "prelabel",
                "--model",
                "demo-onnx",
                "--imgsz",
                str(IMGSZ),
                "--conf",
                "0.3",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        frozen_report = json.loads(done.stdout)
        out["frozen_onnx_ips"] = round(frozen_report["predicted"] / frozen_report["seconds"], 1)
        print(
            f"ONNX pre-label throughput: LabelDesk {out['labeldesk_onnx_ips']} img/s in this "
            f"process, {out['frozen_onnx_ips']} img/s in the frozen review app; Ultralytics' "
            f"ONNX path {out['ultralytics_onnx_ips']} img/s",
            flush=True,
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
