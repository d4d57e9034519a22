"""Benchmark: training through LabelDesk against a plain Ultralytics run, in one run.

    python bench/train.py [--train 48 --val 16 --epochs 2 --imgsz 160] [--materialise 100000]

The same generated dataset is trained for the same epochs, with the same arguments:
  * plain: the version exported once with ``labeldesk export yolo`` (not timed), then
    ``YOLO("yolov8n.yaml").train(data=...)`` in a fresh Python process (so both pay the torch
    import);
  * LabelDesk: ``labeldesk.core.training.train`` on the version, which materialises it (hard
    links), runs the same training in a child process and registers the best weights.
Goal: LabelDesk's total at most 1.1x the plain run's.

``--materialise N`` also times materialising an N-image version with hard links, alone (the
images are tiny PNGs imported once; only ``export_yolo(link=True)`` is timed).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

from labeldesk.core.demo.synth import write_yolo_dataset
from labeldesk.core.formats.yolo import export_yolo, import_yolo
from labeldesk.core.store.project import Project
from labeldesk.core.training.train import TrainOptions, train

PLAIN = """
import sys, json
from ultralytics import YOLO
args = json.loads(sys.argv[1])
YOLO("yolov8n.yaml").train(**args)
"""


def plain_run(data: Path, out: Path, opts: TrainOptions) -> float:
    args = {**opts.ultralytics_args(), "data": str(data), "project": str(out), "name": "plain"}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps(args)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def materialise(n: int, tmp: Path) -> dict[str, float]:
    """A labelled N-image version (tiny PNGs, one box each, imported in one staging step), then
    only ``export_yolo(link=True)`` timed: what ``train`` does before Ultralytics starts."""
    import numpy as np
    from PIL import Image

    from labeldesk.core.boxes import Box
    from labeldesk.core.store.importer import Staging
    from labeldesk.core.store.manifest import Entry

    src = tmp / "tiny"
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        sub = src / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        paths.append(sub / f"{i:06d}.png")
        Image.fromarray(arr).save(paths[-1], compress_level=1)
    p = Project.init(tmp / "big", user="bench")
    with Staging(p) as staging:
        staged = staging.stage_files(paths)
        entries = {
            sha: Entry("", "train" if i % 5 else "val") for i, (_, sha, _) in enumerate(staged)
        }
        annsets = {sha: [Box(1, 1, 1, 4, 4, origin="human", state="imported")] for sha in entries}
        staging.commit(
            entries=entries,
            annsets=annsets,
            classes=[{"id": 1, "name": "thing"}],
            message="bench",
            provenance={},
        )
    t = time.perf_counter()
    export_yolo(p, tmp / "linked", link=True)
    linked = time.perf_counter() - t
    p.close()
    return {"images": n, "materialise_s": round(linked, 2), "images_per_s": round(n / linked)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=48)
    ap.add_argument("--val", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--materialise", type=int, default=0, metavar="N")
    args = ap.parse_args()
    opts = TrainOptions(epochs=args.epochs, imgsz=args.imgsz, batch=8)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ds = write_yolo_dataset(tmp / "ds", args.train, args.val, seed=0, size=(320, 240))
        project = Project.init(tmp / "proj", user="bench")
        import_yolo(project, ds.parent)
        exported = tmp / "exported"
        export_yolo(project, exported)
        plain = plain_run(exported / "data.yaml", tmp / "plain-runs", opts)
        t = time.perf_counter()
        result = train(project, config="yolov8n.yaml", options=opts)
        ours = time.perf_counter() - t
        figures: dict[str, object] = {
            "images": args.train + args.val,
            "epochs": args.epochs,
            "imgsz": args.imgsz,
            "plain_s": round(plain, 2),
            "labeldesk_s": round(ours, 2),
            "ratio": round(ours / plain, 3),
            "labeldesk_train_wall_s": result.run.wall_s,
        }
        print(
            f"plain Ultralytics run {plain:.1f} s, LabelDesk (materialise + train + register) "
            f"{ours:.1f} s: {ours / plain:.2f}x (goal <= 1.1x)"
        )
        project.close()
        if args.materialise:
            m = materialise(args.materialise, tmp)
            figures["materialise"] = m
            print(
                f"materialising {m['images']} images with hard links: {m['materialise_s']} s "
                f"({m['images_per_s']} images/s)"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
