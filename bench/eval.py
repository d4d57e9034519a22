"""Benchmark: COCO bbox evaluation, LabelDesk's engine against pycocotools on the same data.

    python bench/eval.py [--images 5000] [--seed 0]

Generates (seeded) 5,000 images of 640x480 with about 37,000 labelled boxes in 20 classes and
about 44,000 detections (jittered copies of most labels, some duplicates, some false positives,
scores with 4 decimals), then times in the same run:
  * pycocotools: COCO index, loadRes, evaluate, accumulate, summarize;
  * LabelDesk from the same COCO dicts (``evaluate_coco``, conversion included);
  * LabelDesk from per-image arrays (``evaluate``, what the app holds);
  * faster-coco-eval, only if it is importable (it is not a dependency; for the record).
Prints both sets of 12 figures. The last line is one JSON object with every figure.

    python bench/eval.py --validate [--images 5000] [--repeat 3]

Builds a project of the same generated labels (a version of 5,000 images without files, boxes
as imported), writes the detections as a COCO results file numbered as ``labeldesk export coco``
numbers that version, and runs ``labeldesk validate --predictions FILE --json`` in this process,
timing in the same run the whole command and the metric engine inside it
(``metrics.evaluate_columns``)
and, separately, its stages: the image index, the ground truth, reading and converting the
detections. The goal (issue 13): the command takes at most 2x the engine's time.

The command reads the results file on a thread of its own while it reads the version's labels
(``evaluation_sources.PredictionsFile``), so its wall time is below its CPU time: both ratios
are printed. The stages are timed one after another, each on the main thread.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labeldesk.core.validation.metrics import (
    STAT_LABELS,
    Detection,
    GroundTruth,
    evaluate,
    evaluate_coco,
)

N_CLASSES = 20


def generate(n_images: int, seed: int) -> tuple[dict, list[dict]]:
    """A COCO ground-truth dict and results list; about 7.4 labels and 8.8 detections/image."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(n_images):
        image_id = i + 1
        images.append({"id": image_id, "width": 640, "height": 480, "file_name": f"{i:05d}.jpg"})
        n = int(rng.poisson(7.4))
        w = np.exp(rng.uniform(np.log(6), np.log(320), n))
        h = np.clip(w * np.exp(rng.normal(0, 0.35, n)), 4, 470)
        x = rng.uniform(0, 640 - np.minimum(w, 639))
        y = rng.uniform(0, 480 - np.minimum(h, 479))
        cls = rng.integers(1, N_CLASSES + 1, n)
        gt = np.round(np.stack([x, y, w, h], 1), 2)
        for b, c in zip(gt.tolist(), cls.tolist(), strict=True):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": c,
                    "bbox": b,
                    "area": b[2] * b[3],
                    "iscrowd": 0,
                }
            )
        # Found labels (88%), a few twice; jitter so IoUs spread from ~1 to below .5.
        take = np.repeat(np.arange(n), rng.choice([0, 1, 2], n, p=[0.12, 0.78, 0.10]))
        s = rng.uniform(0, 0.25, len(take))[:, None]
        g = gt[take]
        jitter = rng.normal(0, 1, (len(take), 4)) * s
        det = np.column_stack(
            [
                g[:, 0] + jitter[:, 0] * g[:, 2],
                g[:, 1] + jitter[:, 1] * g[:, 3],
                g[:, 2] * np.exp(jitter[:, 2]),
                g[:, 3] * np.exp(jitter[:, 3]),
            ]
        )
        dcls = np.where(rng.random(len(take)) < 0.95, cls[take], rng.integers(1, 21, len(take)))
        score = np.clip(0.95 - s[:, 0] * 2 + rng.normal(0, 0.15, len(take)), 0.01, 1)
        n_fp = int(rng.poisson(1.55))
        fw = np.exp(rng.uniform(np.log(6), np.log(200), n_fp))
        fp = np.column_stack(
            [
                rng.uniform(0, 600, n_fp),
                rng.uniform(0, 440, n_fp),
                fw,
                fw * rng.uniform(0.5, 2, n_fp),
            ]
        )
        det = np.round(np.vstack([det, fp]), 2)
        dcls = np.concatenate([dcls, rng.integers(1, N_CLASSES + 1, n_fp)])
        score = np.round(np.concatenate([score, rng.uniform(0.01, 0.6, n_fp)]), 4)
        for b, c, sc in zip(det.tolist(), dcls.tolist(), score.tolist(), strict=True):
            results.append({"image_id": image_id, "category_id": c, "bbox": b, "score": sc})
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, N_CLASSES + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, results


def as_arrays(gt: dict, results: list[dict]) -> tuple[list[GroundTruth], list[Detection]]:
    by_gt: dict[int, list[dict]] = {img["id"]: [] for img in gt["images"]}
    by_dt: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        by_gt[a["image_id"]].append(a)
    for r in results:
        by_dt.setdefault(r["image_id"], []).append(r)
    gts = [
        GroundTruth(i, [a["bbox"] for a in v], [a["category_id"] for a in v])
        for i, v in by_gt.items()
    ]
    dts = [
        Detection(i, [r["bbox"] for r in v], [r["category_id"] for r in v], [r["score"] for r in v])
        for i, v in by_dt.items()
    ]
    return gts, dts


def run_pycocotools(gt: dict, results: list[dict]) -> tuple[float, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, results = copy.deepcopy(gt), copy.deepcopy(results)  # loadRes edits the dicts
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        e = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return time.perf_counter() - t0, np.asarray(e.stats)


def run_faster_coco_eval(gt: dict, results: list[dict]) -> tuple[float, np.ndarray] | None:
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        return None
    gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    t0 = time.perf_counter()
    coco_gt = COCO(gt)
    e = COCOeval_faster(coco_gt, coco_gt.loadRes(results), "bbox", print_function=lambda *a: None)
    e.evaluate()
    e.accumulate()
    e.summarize()
    return time.perf_counter() - t0, np.asarray(e.stats[:12])


def build_project(root: Path, gt: dict) -> tuple[object, dict[int, str]]:
    """A project whose main version holds ``gt``'s labels; generated image id -> image hash."""
    import hashlib

    from labeldesk.core.boxes import Box
    from labeldesk.core.store.annotation_sets import put_annotation_set
    from labeldesk.core.store.manifest import Entry, ManifestStore
    from labeldesk.core.store.project import Project, now_iso
    from labeldesk.core.store.versions import write_version

    project = Project.init(root, user="bench")
    now = now_iso()
    shas = {
        img["id"]: hashlib.sha256(f"eval-{img['id']}".encode()).hexdigest() for img in gt["images"]
    }
    labels: dict[int, list[Box]] = {i: [] for i in shas}
    for a in gt["annotations"]:
        labels[a["image_id"]].append(Box(a["category_id"], *a["bbox"], state="imported"))
    with project.transaction():
        db = project.db
        db.conn.executemany(
            "INSERT INTO image VALUES (?, 'JPEG', 640, 480, 1, 640, 480, 'RGB', 1000, ?)",
            [(sha, now) for sha in shas.values()],
        )
        db.conn.executemany(
            "INSERT INTO image_source (sha256, path, imported_at) VALUES (?, ?, ?)",
            [(shas[img["id"]], f"/data/{img['file_name']}", now) for img in gt["images"]],
        )
        entries = {sha: Entry(put_annotation_set(db, labels[i])) for i, sha in shas.items()}
        write_version(
            project,
            tree=ManifestStore(db).apply(None, entries),
            classes=[{"id": c["id"], "name": c["name"]} for c in gt["categories"]],
            parents=[],
            kind="import",
            message="bench",
            provenance={},
            move_main_from=None,
        )
    return project, shas


def validate_bench(args: argparse.Namespace) -> None:
    """Time ``labeldesk validate --predictions`` against the metric engine inside it.

    The project and the results file are made here; the command is timed in a fresh child
    process that holds nothing else, as the CLI's own process would (the generated data kept
    alive here made every garbage collection during the command slower).
    """
    import subprocess

    from labeldesk.core.validation import evaluation

    gt, results = generate(args.images, args.seed)
    work = Path(tempfile.mkdtemp(prefix="ld-eval-"))
    project, shas = build_project(work / "p", gt)
    index = evaluation.ImageIndex.build(project, "main")
    coco_id = {gid: index.coco_ids[sha] for gid, sha in shas.items()}
    preds = work / "preds.json"
    preds.write_text(
        json.dumps([r | {"image_id": coco_id[r["image_id"]]} for r in results]), "utf-8"
    )
    project.close()
    print(
        f"{len(gt['images'])} images, {len(gt['annotations'])} labels, "
        f"{len(results)} detections, {N_CLASSES} classes",
        flush=True,
    )
    try:
        child = subprocess.run(
            [sys.executable, __file__, "--time-command", str(work), "--repeat", str(args.repeat)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "images": len(gt["images"]),
        "labels": len(gt["annotations"]),
        "detections": len(results),
        **json.loads(child.stdout.splitlines()[-1]),
    }
    print(
        f"validate --predictions {figures['command_s']} s, engine {figures['engine_s']} s: "
        f"{figures['ratio']}x (CPU {figures['command_cpu_s']} s against "
        f"{figures['engine_cpu_s']} s: {figures['cpu_ratio']}x); CPU of the stages: index "
        f"{figures['index_s']} s, ground truth {figures['ground_truth_s']} s, detections "
        f"{figures['detections_s']} s",
        flush=True,
    )
    print(json.dumps(figures))


def time_command(work: Path, repeat: int) -> None:
    """(In the child) run the command ``repeat`` times; print the best run's figures."""
    from labeldesk.cli.main import main as cli
    from labeldesk.core.store.project import Project
    from labeldesk.core.validation import evaluation, metrics

    # The engine is metrics.evaluate_columns: COCOeval's matching and accumulation on columns
    # (metrics.evaluate from per-image arrays is it plus building the columns).
    # Before it existed (to measure the old code), the engine was metrics.evaluate.
    name = "evaluate_columns" if hasattr(metrics, "evaluate_columns") else "evaluate"
    engine = getattr(metrics, name)
    spent: list[tuple[float, float]] = []

    def timed_engine(*a, **k):  # type: ignore[no-untyped-def]
        t, c = time.perf_counter(), time.process_time()
        try:
            return engine(*a, **k)
        finally:
            spent.append((time.perf_counter() - t, time.process_time() - c))

    setattr(metrics, name, timed_engine)
    preds = work / "preds.json"
    argv = ["--project", str(work / "p"), "validate", "--predictions", str(preds), "--json"]
    runs = []
    for _ in range(repeat):
        spent.clear()
        out = io.StringIO()
        t0, c0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(out):
            code = cli(argv)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert code == 0, code
        runs.append((wall, sum(s[0] for s in spent), cpu, sum(s[1] for s in spent)))
    setattr(metrics, name, engine)
    # The stages around the engine, each on its own (same process, warm caches; CPU time).
    stages: dict[str, float] = {}
    with Project.open(work / "p") as project:
        t = time.process_time()
        index = evaluation.ImageIndex.build(project, "main")
        stages["index_s"] = time.process_time() - t
        t = time.process_time()
        evaluation.ground_truth(project, index)
        stages["ground_truth_s"] = time.process_time() - t
        t = time.process_time()
        evaluation.predictions_source(preds, index)
        stages["detections_s"] = time.process_time() - t
    wall, eng, cpu, cpu_eng = min(runs)
    figures = {
        "command_s": round(wall, 3),
        "engine_s": round(eng, 3),
        "ratio": round(wall / eng, 2),
        "command_cpu_s": round(cpu, 3),
        "engine_cpu_s": round(cpu_eng, 3),
        "cpu_ratio": round(cpu / cpu_eng, 2),
        **{k: round(v, 3) for k, v in stages.items()},
        "map50_95": json.loads(out.getvalue())["evaluations"][0]["value"],
    }
    print(json.dumps(figures))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="LabelDesk runs; the best is kept")
    ap.add_argument(
        "--validate", action="store_true", help="time `labeldesk validate --predictions`"
    )
    ap.add_argument("--time-command", type=Path, help=argparse.SUPPRESS)  # the child's part
    args = ap.parse_args()
    if args.time_command:
        time_command(args.time_command, args.repeat)
        return
    if args.validate:
        validate_bench(args)
        return

    gt, results = generate(args.images, args.seed)
    gts, dts = as_arrays(gt, results)
    print(
        f"{len(gt['images'])} images, {len(gt['annotations'])} labels, "
        f"{len(results)} detections, {N_CLASSES} classes",
        flush=True,
    )

    ours_coco_s, ours_arrays_s = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        from_dicts = evaluate_coco(gt, results)  # reads the dicts, never edits them
        ours_coco_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        from_arrays = evaluate(gts, dts)
        ours_arrays_s.append(time.perf_counter() - t0)
    ref_s, ref = run_pycocotools(gt, results)
    ours = np.asarray(from_dicts.stats)

    print(f"{'':6} {'LabelDesk':>10} {'pycocotools':>12}")
    for label, a, b in zip(STAT_LABELS, ours, ref, strict=True):
        print(f"{label:6} {a:10.6f} {b:12.6f}")
    figures = {
        "images": len(gt["images"]),
        "labels": len(gt["annotations"]),
        "detections": len(results),
        "classes": N_CLASSES,
        "labeldesk_s": round(min(ours_coco_s), 3),
        "labeldesk_arrays_s": round(min(ours_arrays_s), 3),
        "pycocotools_s": round(ref_s, 3),
        "speedup": round(ref_s / min(ours_coco_s), 1),
        "speedup_arrays": round(ref_s / min(ours_arrays_s), 1),
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "max_abs_diff_arrays": float(np.abs(np.asarray(from_arrays.stats) - ref).max()),
    }
    fast = run_faster_coco_eval(gt, results)
    if fast is not None:
        figures["faster_coco_eval_s"] = round(fast[0], 3)
        figures["faster_coco_eval_max_abs_diff"] = float(np.abs(fast[1] - ref).max())
    print(
        f"LabelDesk {figures['labeldesk_s']} s (from arrays {figures['labeldesk_arrays_s']} s), "
        f"pycocotools {figures['pycocotools_s']} s: {figures['speedup']}x; "
        f"largest difference {figures['max_abs_diff']:.2g}",
        flush=True,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
