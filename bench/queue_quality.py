"""Benchmark: does the review queue put the wrong labels first, and how fast does it rank?

    python bench/queue_quality.py [--images 120] [--error-rate 0.3] [--predictions model|noisy]
                                  [--timing 100000] [--no-cleanlab]

Quality. Generates the project's own synthetic scenes (labeldesk.core.demo.synth), labels them with
the generator's truth, and injects errors into a share of the images, one per image: a missing
box, a swapped class or a shifted box (moved by half its width: IoU about 1/3). Predictions come
from the shipped demo model (``--predictions model``, run by
labeldesk.core.inference.prelabel at conf 0.1) or, where that is too slow, are derived from the
truth (``noisy``: 90% of objects found, jittered, scores 0.5..1, plus low-scored false
positives; they never see the injected errors).
Both rankers read the same stored labels and predictions:

  * ``rule``: labeldesk.core.review.queue.rank (the queue the window and ``labeldesk queue`` show);
  * ``cleanlab``: cleanlab.object_detection.rank.get_label_quality_scores (lowest first).

Reported: precision of the top k (k = the number of images with an injected error, and 10, 20)
against the injected errors, per ranker.

Timing. ``--timing N`` builds an N-image version in a database without image files (ranking
reads rows only): 1..8 labels per image, one stored run where 80% of labels are found, 10%
get another class and 20% of images one extra box; then times ``rank`` (wall and CPU seconds:
the machine may be shared) cold (nothing kept in memory, as in a new window: every label and
prediction read from its packed copy), warm (the arrays kept, another IoU threshold) and after
an edit (the reasons kept, one edited image re-ranked), and, on at most 10,000 images, the
exact per-image path (JSON, Box objects) for comparison.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeldesk.core.boxes import Box
from labeldesk.core.demo.synth import CLASSES, write_images
from labeldesk.core.inference import predictions
from labeldesk.core.inference.predictions import Prediction
from labeldesk.core.review import queue
from labeldesk.core.store.annotation_sets import put_annotation_set
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import Entry, ManifestStore
from labeldesk.core.store.project import Project, now_iso
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import resolve, write_version

KINDS = ("missing", "swap", "shift")


# -- quality ------------------------------------------------------------------------------------
def inject(
    rng: random.Random, boxes: list, width: int, height: int
) -> tuple[list[tuple], str | None]:
    """The truth as (cls, x, y, w, h), with at most one error; returns (boxes, kind)."""
    out = [(b.cls, b.x, b.y, b.w, b.h) for b in boxes]
    big = [i for i, b in enumerate(out) if min(b[3], b[4]) >= 16]
    if not big:
        return out, None
    i = rng.choice(big)
    kind = rng.choice(KINDS)
    c, x, y, w, h = out[i]
    if kind == "missing":
        del out[i]
    elif kind == "swap":
        out[i] = (rng.choice([k for k in range(len(CLASSES)) if k != c]), x, y, w, h)
    else:
        dx = w / 2 if x + w * 1.5 <= width else -w / 2
        out[i] = (c, x + dx, y, w, h)
    return out, kind


def noisy_predictions(rng: random.Random, truth: list, width: int, height: int) -> list:
    preds = []
    for b in truth:
        if rng.random() < 0.9:
            j = 0.03
            preds.append(
                Prediction(
                    CLASSES[b.cls],
                    max(0.0, b.x + rng.uniform(-j, j) * b.w),
                    max(0.0, b.y + rng.uniform(-j, j) * b.h),
                    b.w * (1 + rng.uniform(-j, j)),
                    b.h * (1 + rng.uniform(-j, j)),
                    round(rng.uniform(0.5, 1.0), 6),
                )
            )
    for _ in range(rng.choice([0, 0, 1, 2])):
        w, h = rng.uniform(10, 80), rng.uniform(10, 80)
        preds.append(
            Prediction(
                rng.choice(CLASSES),
                rng.uniform(0, width - w),
                rng.uniform(0, height - h),
                w,
                h,
                round(rng.uniform(0.1, 0.45), 6),
            )
        )
    return preds


def precision_at(order: list[str], errors: set[str], k: int) -> float:
    return sum(1 for sha in order[:k] if sha in errors) / k if k else 0.0


def cleanlab_order(project: Project, run: predictions.Run) -> list[str]:
    import numpy as np
    from cleanlab.object_detection.rank import get_label_quality_scores

    db = project.db
    v = resolve(db, "main")
    ids = {name: i for i, name in enumerate(CLASSES)}
    cls_of = {c["id"]: ids[c["name"]] for c in v.classes}
    store = ManifestStore(db)
    shas, labels, preds = [], [], []
    for sha, entry in store.entries(store.tree(v.tree)):
        boxes = [Box.from_dict(d) for d in json.loads(_annset(db, entry.annset))]
        shas.append(sha)
        labels.append(
            {
                "bboxes": np.array([b.xyxy for b in boxes], dtype=float).reshape(-1, 4),
                "labels": np.array([cls_of[b.cls] for b in boxes], dtype=int),
            }
        )
        per_class: list[list] = [[] for _ in CLASSES]
        for p in predictions.load(db, run.model, run.params, sha):
            per_class[ids[p.name]].append([p.x, p.y, p.x + p.w, p.y + p.h, p.score])
        preds.append(
            np.array([np.array(c, dtype=float).reshape(-1, 5) for c in per_class], dtype=object)
        )
    scores = get_label_quality_scores(labels, preds, verbose=False)
    return [shas[i] for i in np.argsort(scores, kind="stable")]


def _annset(db, h: str) -> str:
    return db.execute("SELECT boxes FROM annotation_set WHERE hash = ?", [h]).fetchone()[0]


def quality(args: argparse.Namespace, work: Path) -> dict:
    rng = random.Random(args.seed)
    size = (640, 480)
    t0 = time.perf_counter()
    truth = write_images(work / "src", args.images, seed=args.seed, size=size)
    project = Project.init(work / "project", user="bench")
    report = add_images(project, [work / "src"])
    by_name = {Path(a.path).name: a.sha256 for a in report.added}
    session = ReviewSession.start(project)
    ids = [session.add_class(name) for name in CLASSES]
    errors: dict[str, str] = {}
    for path, boxes in truth:
        sha = by_name[path.name]
        kind = None
        rows = [(b.cls, b.x, b.y, b.w, b.h) for b in boxes]
        if rng.random() < args.error_rate:
            rows, kind = inject(rng, boxes, *size)
        if kind:
            errors[sha] = kind
        session.set_boxes(
            sha, [Box(ids[c], x, y, w, h, state="imported") for c, x, y, w, h in rows]
        )
    session.commit("labels with injected errors")
    if args.predictions == "model":
        from labeldesk.core.demo.build import demo_model_path
        from labeldesk.core.inference.prelabel import prelabel
        from labeldesk.core.inference.registry import add_model

        info = add_model(project, demo_model_path(), "demo").model
        prelabel(project, info, conf=0.1, imgsz=320)
    else:
        with project.transaction():
            project.db.execute(
                "INSERT INTO model (id, name, path, format, task, class_names, added_at, "
                "added_by) VALUES ('noisy', 'noisy-truth', '-', 'pt', 'detect', ?, ?, 'bench')",
                [json.dumps(list(CLASSES)), now_iso()],
            )
        predictions.store(
            project,
            "noisy",
            {"conf": 0.1},
            [(by_name[p.name], noisy_predictions(rng, b, *size)) for p, b in truth],
        )
    setup = time.perf_counter() - t0
    v = resolve(project.db, "main")
    run = queue.source_run(project, v.id)
    assert run is not None
    everything = [
        sha for sha, _ in ManifestStore(project.db).entries(ManifestStore(project.db).tree(v.tree))
    ]
    ranked = [q.image for q in queue.rank(project)]
    rule_order = ranked + sorted(set(everything) - set(ranked))
    out: dict = {
        "images": args.images,
        "with_error": len(errors),
        "errors_by_kind": {k: sum(1 for e in errors.values() if e == k) for k in KINDS},
        "predictions": args.predictions,
        "setup_s": round(setup, 1),
        "flagged_by_rule": len(ranked),
    }
    ks = sorted({len(errors), 10, 20})
    orders = {"rule": rule_order}
    if not args.no_cleanlab:
        t = time.perf_counter()
        orders["cleanlab"] = cleanlab_order(project, run)
        out["cleanlab_s"] = round(time.perf_counter() - t, 2)
    for name, order in orders.items():
        out[name] = {f"p@{k}": round(precision_at(order, set(errors), k), 3) for k in ks}
        top = order[: len(errors)]
        out[name]["found_by_kind"] = {
            k: sum(1 for sha in top if errors.get(sha) == k) for k in KINDS
        }
    project.close()
    return out


# -- timing -------------------------------------------------------------------------------------
def build_scale(root: Path, n: int, seed: int = 0) -> Project:
    rng = random.Random(seed)
    project = Project.init(root, user="bench")
    now = now_iso()
    entries: dict[str, Entry] = {}
    results = []
    with project.transaction():
        db = project.db
        # real-looking hashes: the manifest spreads images over buckets by their first digits
        shas = [hashlib.sha256(f"{seed}-{i}".encode()).hexdigest() for i in range(n)]
        db.conn.executemany(
            "INSERT INTO image VALUES (?, 'JPEG', 640, 480, 1, 640, 480, 'RGB', 1000, ?)",
            [(sha, now) for sha in shas],
        )
        db.conn.executemany(
            "INSERT INTO image_source (sha256, path, imported_at) VALUES (?, ?, ?)",
            [(sha, f"/data/{i // 1000:03d}/img_{i:06d}.jpg", now) for i, sha in enumerate(shas)],
        )
        for sha in shas:
            labels, preds = [], []
            for _ in range(rng.randint(1, 8)):
                c = rng.randint(1, 4)
                x, y = rng.uniform(0, 500), rng.uniform(0, 380)
                w, h = rng.uniform(10, 120), rng.uniform(10, 90)
                labels.append(Box(c, x, y, w, h, state="imported"))
                u = rng.random()
                if u < 0.8:
                    dx = rng.uniform(-3, 3)
                    preds.append(Prediction(f"class{c}", x + dx, y, w, h, rng.uniform(0.3, 1)))
                elif u < 0.9:
                    preds.append(Prediction(f"class{c % 4 + 1}", x, y, w, h, rng.uniform(0.3, 1)))
            if rng.random() < 0.2:
                x, y = rng.uniform(0, 500), rng.uniform(0, 380)
                preds.append(Prediction("class1", x, y, 40, 40, rng.uniform(0.25, 1)))
            entries[sha] = Entry(put_annotation_set(db, labels))
            results.append((sha, preds))
        tree = ManifestStore(db).apply(None, entries)
        write_version(
            project,
            tree=tree,
            classes=[{"id": i, "name": f"class{i}"} for i in range(1, 5)],
            parents=[],
            kind="import",
            message="scale",
            provenance={},
            move_main_from=None,
        )
        db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, added_at, added_by) "
            "VALUES ('m1', 'bench', '-', 'pt', 'detect', '[]', ?, 'bench')",
            [now],
        )
    predictions.store(project, "m1", {"conf": 0.25}, results)
    return project


def timed(fn) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - w, time.process_time() - c, value


def timing(n: int, work: Path) -> dict:
    t = time.perf_counter()
    project = build_scale(work / f"scale-{n}", n)
    out: dict = {"timing_images": n, "build_s": round(time.perf_counter() - t, 1)}
    runs, warm, edited = [], [], []
    for _ in range(3):
        queue.clear_caches()  # cold: read every label and prediction, as a new window does
        wall, cpu, items = timed(lambda: queue.rank(project))
        runs.append((wall, cpu))
        # warm: the arrays are kept; another threshold only reruns the matching stages
        w2, c2, _ = timed(lambda: queue.rank(project, params=queue.Params(iou=0.4)))
        warm.append((w2, c2))
        # after an edit: the kept reasons, and the edited image through the exact rule
        edit = {items[0].image: []}  # type: ignore[index]
        w3, c3, _ = timed(lambda e=edit: queue.rank(project, params=queue.Params(iou=0.4), edits=e))
        edited.append((w3, c3))
    out["rank_wall_s"] = round(min(r[0] for r in runs), 3)
    out["rank_cpu_s"] = round(min(r[1] for r in runs), 3)
    out["rank_warm_wall_s"] = round(min(r[0] for r in warm), 3)
    out["rank_warm_cpu_s"] = round(min(r[1] for r in warm), 3)
    out["rank_after_edit_wall_s"] = round(min(r[0] for r in edited), 3)
    out["rank_after_edit_cpu_s"] = round(min(r[1] for r in edited), 3)
    out["ranked_images"] = len(items)  # type: ignore[arg-type]
    if n <= 10_000:
        wall, cpu, _ = timed(lambda: queue.rank(project, vectorised=False))
        out["exact_wall_s"], out["exact_cpu_s"] = round(wall, 3), round(cpu, 3)
    project.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--error-rate", type=float, default=0.3)
    ap.add_argument("--predictions", choices=("model", "noisy"), default="model")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timing", type=int, default=0, help="also time ranking N images")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--no-cleanlab", action="store_true")
    args = ap.parse_args()
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.no_quality:
            result["quality"] = quality(args, work)
            print(json.dumps(result["quality"], indent=2), file=sys.stderr)
        if args.timing:
            result["timing"] = timing(args.timing, work)
            print(json.dumps(result["timing"], indent=2), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
