"""Train the small demo detector shipped as ``resources/models/demo-shapes.pt``.

Why this exists: the demo project and the pre-labelling features need a detector that runs
offline, and the project can neither ship third-party weights nor download them. So the demo
model is trained here, from scratch, on scenes from ``labeldesk.core.demo.synth``: anyone can
rebuild it bit-for-bit-ish with one command and see exactly what it was trained on.

The model is meant to be *good but not perfect* (mAP50 roughly 0.6-0.9 on fresh scenes), so a
reviewer trying the demo sees both correct pre-labels and the misses and false positives the
review workflow exists to catch.

    python resources/train_demo_model.py [--out resources/models/demo-shapes.pt]
        [--epochs N] [--device cpu] [--threads 1]

It writes the weights (optimizer stripped, FP16) and, next to them, a JSON file with the
recipe, the dataset sizes, the metrics and the library versions. Nothing is written into the
repository except those two files; the dataset and Ultralytics' run folder live in a temporary
directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "resources" / "models" / "demo-shapes.pt"

# Recipe defaults, tuned on a 2-core CPU machine to land in the intended accuracy band within
# about an hour of single-threaded training.
DEFAULTS: dict[str, Any] = {
    "model": "yolov8n.yaml",
    "epochs": 15,
    "imgsz": 320,
    "batch": 16,
    "n_train": 1200,
    "n_val": 200,
    "n_test": 300,
    "seed": 0,
    "image_size": (640, 480),
    "close_mosaic": 3,
}


def _offline_env(threads: int) -> None:
    """Keep Ultralytics off the network and torch on the requested number of threads.

    Must run before torch or ultralytics is imported: both read these at import time.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_VERBOSE"] = os.environ.get("YOLO_VERBOSE", "True")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="weights file to write")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--imgsz", type=int, default=DEFAULTS["imgsz"])
    p.add_argument("--batch", type=int, default=DEFAULTS["batch"])
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"])
    p.add_argument("--n-val", type=int, default=DEFAULTS["n_val"])
    p.add_argument("--n-test", type=int, default=DEFAULTS["n_test"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--model", default=DEFAULTS["model"], help="Ultralytics model YAML")
    p.add_argument("--close-mosaic", type=int, default=DEFAULTS["close_mosaic"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--keep", type=Path, default=None, help="keep dataset and run folder here")
    return p.parse_args(argv)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _metrics(result: Any) -> dict[str, Any]:
    """The numbers worth recording from an Ultralytics DetMetrics object."""
    from labeldesk.core.demo.synth import CLASSES

    box = result.box
    per_class = {
        CLASSES[int(c)]: round(float(ap50), 4)
        for c, ap50 in zip(result.ap_class_index, box.ap50, strict=True)
    }
    return {
        "mAP50": round(float(box.map50), 4),
        "mAP50-95": round(float(box.map), 4),
        "precision": round(float(box.mp), 4),
        "recall": round(float(box.mr), 4),
        "AP50_per_class": per_class,
    }


def _scrub(value: Any, tmp: str) -> Any:
    """Replace the temporary directory in recorded paths, so metadata does not leak it."""
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>")
    if isinstance(value, dict):
        return {k: _scrub(v, tmp) for k, v in value.items()}
    return value


def _clean_checkpoint(ckpt: dict[str, Any], tmp: str) -> dict[str, Any]:
    """Drop machine-specific paths and the per-epoch history from an Ultralytics checkpoint.

    The history is kept in the JSON instead; the paths (temporary dataset, run folder, local
    checkout) mean nothing on another machine.
    """
    ckpt["train_args"] = _scrub(ckpt.get("train_args") or {}, tmp)
    model_args = getattr(ckpt.get("model"), "args", None)
    if isinstance(model_args, dict):
        ckpt["model"].args = _scrub(model_args, tmp)
    if isinstance(ckpt.get("git"), dict):
        ckpt["git"] = {k: v for k, v in ckpt["git"].items() if k != "root"}
    ckpt["train_results"] = None
    return ckpt


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _offline_env(args.threads)

    import numpy as np
    import PIL
    import torch
    import ultralytics
    from ultralytics import YOLO

    sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing
    from labeldesk.core.demo.synth import CLASSES, write_yolo_dataset

    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="labeldesk-demo-train-") as tmp_name:
        work = args.keep.resolve() if args.keep else Path(tmp_name)
        if args.keep:
            shutil.rmtree(work, ignore_errors=True)
        size = DEFAULTS["image_size"]

        t0 = time.perf_counter()
        data_yaml = write_yolo_dataset(work / "data", args.n_train, args.n_val, args.seed, size)
        # The held-out test set comes from another seed: scenes the model has never seen,
        # made the way the demo project makes its images.
        test_yaml = write_yolo_dataset(work / "test", 0, args.n_test, args.seed + 1, size)
        dataset_s = time.perf_counter() - t0

        model = YOLO(args.model)  # architecture from YAML: random init, nothing downloaded
        t0 = time.perf_counter()
        model.train(
            data=str(data_yaml),
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            device=args.device,
            workers=args.workers,
            seed=args.seed,
            deterministic=True,
            pretrained=False,
            amp=False,  # AMP is CPU-irrelevant, and its check would download a model
            plots=False,  # plotting needs a font download
            cache=False,  # "ram" caching is documented as non-deterministic
            close_mosaic=args.close_mosaic,
            project=str(work / "runs"),
            name="train",
            exist_ok=True,
            verbose=True,
        )
        train_s = time.perf_counter() - t0
        trainer = model.trainer
        best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
        val_metrics = _metrics(trainer.validator.metrics)

        # Final weights: Ultralytics already stripped the optimizer and stored FP16; drop the
        # temporary paths from the recorded arguments and save to the output path.
        ckpt = torch.load(best, map_location="cpu", weights_only=False)
        torch.save(_clean_checkpoint(ckpt, str(work)), out)

        t0 = time.perf_counter()
        test = YOLO(str(out)).val(
            data=str(test_yaml),
            split="val",
            imgsz=args.imgsz,
            batch=args.batch,
            device=args.device,
            workers=args.workers,
            plots=False,
            project=str(work / "runs"),
            name="test",
            exist_ok=True,
        )
        test_s = time.perf_counter() - t0
        test_metrics = _metrics(test)

        history: list[dict[str, Any]] = []
        results_csv = Path(trainer.save_dir) / "results.csv"
        if results_csv.exists():
            lines = results_csv.read_text().splitlines()
            header = [h.strip() for h in lines[0].split(",")]
            for line in lines[1:]:
                row = dict(zip(header, (float(v) for v in line.split(",")), strict=True))
                history.append(
                    {
                        "epoch": int(row["epoch"]),
                        "mAP50": round(row.get("metrics/mAP50(B)", float("nan")), 4),
                        "mAP50-95": round(row.get("metrics/mAP50-95(B)", float("nan")), 4),
                    }
                )

    report = {
        "model_file": out.name,
        "sha256": _sha256(out),
        "size_bytes": out.stat().st_size,
        "classes": list(CLASSES),
        "architecture": args.model,
        "command": " ".join(
            [
                "python",
                "resources/train_demo_model.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "recipe": {
            "epochs": args.epochs,
            "imgsz": args.imgsz,
            "batch": args.batch,
            "seed": args.seed,
            "deterministic": True,
            "pretrained": False,
            "close_mosaic": args.close_mosaic,
            "optimizer": str(ckpt["train_args"].get("optimizer", "auto")),
            "device": args.device,
            "threads": args.threads,
            "workers": args.workers,
        },
        "dataset": {
            "generator": "labeldesk.core.demo.synth.write_yolo_dataset",
            "image_size": list(DEFAULTS["image_size"]),
            "train_images": args.n_train,
            "val_images": args.n_val,
            "train_val_seed": args.seed,
            "test_images": args.n_test,
            "test_seed": args.seed + 1,
        },
        "metrics": {
            "val": val_metrics,
            "test_fresh_scenes": test_metrics,
            "history": history,
        },
        "timing_s": {
            "dataset": round(dataset_s, 1),
            "train": round(train_s, 1),
            "test": round(test_s, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "versions": {
            "python": platform.python_version(),
            "ultralytics": ultralytics.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
        },
        "platform": platform.platform(),
        "licence": "AGPL-3.0 (Ultralytics YOLO architecture and training code)",
    }
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"out": str(out), **report["metrics"]["test_fresh_scenes"]}, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
