"""Export at scale: LabelDesk's COCO and YOLO exports against supervision's writers.

Builds a project with one version of ``--images`` images (default 100,000) and about ten boxes
per image (so ~1,000,000 boxes), then, each in a fresh process so that peak memory is its own:

- ``labeldesk_coco`` / ``labeldesk_yolo``: ``export_coco`` / ``export_yolo`` of that version
  (reading everything from the project database, copying the images, writing the files), with
  every row and image checked against its hash, as a user's export does;
- ``labeldesk_coco_unverified`` / ``labeldesk_yolo_unverified``: the same with
  ``verify=False``, so ``verify_cost_{coco,yolo}`` (verified time / unverified time, same run)
  and ``verify_cpu_cost_{coco,yolo}`` (the same for CPU seconds of all threads, less noisy on a
  shared machine) say what checking the hashes costs;
- ``copy_plain`` / ``copy_verified``: every object copied on one thread with ``sendfile``, or
  read, hashed and written as a verified export does (``verify_cost_copy``): the per-file cost
  of the check without the exporter around it;
- ``supervision_coco`` / ``supervision_yolo``: the same images and boxes given to
  ``supervision.DetectionDataset`` and written with ``as_coco`` / ``as_yolo``, the tool a user
  would otherwise pick. Only the writer call is timed; loading the boxes into supervision's
  in-memory ``Detections`` is reported separately as ``load_seconds``.

Images are small JPEGs (64x48) so that the benchmark measures the converters rather than the
disk; bigger images make copying dominate both sides equally.

Usage::

    python bench/export_scale.py                      # 100,000 images
    python bench/export_scale.py --images 10000 --repeat 3

With ``--repeat N`` the four exports run round robin N times (so both sides of a comparison
see the same load on a shared machine) and the fastest run of each is reported. Everything is
built in a fresh temporary folder (or ``--workdir``, which must be new or empty) and removed
at the end unless ``--keep``; the script never deletes a folder it did not create.

supervision is a benchmark-only dependency (``pip install supervision``); without it the
LabelDesk side still runs and the script says what is missing. The last line of output is one
JSON object with seconds and peak RSS (MiB) for each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memory import peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (64, 48)
N_CLASSES = 10
SPLITS = ("train", "val", "test")


def _boxes(i: int) -> list[tuple[int, float, float, float, float]]:
    """5..15 boxes for image i, deterministic, inside the image, 4-decimal coordinates."""
    import numpy as np

    rng = np.random.default_rng([7, i])
    n = int(rng.integers(5, 16))
    w = rng.uniform(2, SIZE[0] / 2, n)
    h = rng.uniform(2, SIZE[1] / 2, n)
    x = rng.uniform(0, 1, n) * (SIZE[0] - w)
    y = rng.uniform(0, 1, n) * (SIZE[1] - h)
    c = rng.integers(1, N_CLASSES + 1, n)
    return [
        (int(c[k]), round(x[k], 4), round(y[k], 4), round(w[k], 4), round(h[k], 4))
        for k in range(n)
    ]


def _write_jpeg(i: int, path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([11, i])
    arr = rng.integers(0, 256, size=(SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8)
    Image.fromarray(arr).resize(SIZE).save(path, "JPEG", quality=85)


def build(work: Path, n: int) -> dict:
    """Source images on disk, then one LabelDesk version holding them with their boxes."""
    from concurrent.futures import ThreadPoolExecutor

    from labeldesk.core.boxes import Box
    from labeldesk.core.store.importer import Staging
    from labeldesk.core.store.manifest import Entry
    from labeldesk.core.store.project import Project

    src = work / "src"
    src.mkdir(parents=True)
    paths = [src / f"{i // 1000:03d}" / f"img_{i:06d}.jpg" for i in range(n)]
    for d in {p.parent for p in paths}:
        d.mkdir(exist_ok=True)
    t = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda ip: _write_jpeg(*ip), enumerate(paths), chunksize=256))
    made = time.perf_counter() - t
    t = time.perf_counter()
    project = Project.init(work / "project", user="bench")
    with Staging(project) as staging:
        staged = staging.stage_files(paths)
        entries, annsets = {}, {}
        for i, (_, sha, _) in enumerate(staged):
            assert sha is not None
            entries[sha] = Entry("", SPLITS[0 if i % 10 < 8 else (1 if i % 10 == 8 else 2)])
            annsets[sha] = [Box(*b, origin="human", state="imported") for b in _boxes(i)]
        version = staging.commit(
            entries=entries,
            annsets=annsets,
            classes=[{"id": k, "name": f"class{k}"} for k in range(1, N_CLASSES + 1)],
            message="bench",
            provenance={},
        )
    project.close()
    return {
        "images": version.n_images,
        "boxes": version.n_boxes,
        "make_images_seconds": round(made, 1),
        "import_seconds": round(time.perf_counter() - t, 1),
    }


def _settle(out: Path) -> None:
    """Remove an old output and flush the disk, so the last phase's writes (and this removal)
    are not billed to the next phase: file creation dominates both sides and is noisy."""
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    time.sleep(1)


def run_labeldesk(work: Path, fmt: str, verify: bool = True) -> dict:
    from labeldesk.core.formats import export_coco, export_yolo
    from labeldesk.core.store.project import Project

    out = work / f"out_labeldesk_{fmt}{'' if verify else '_unverified'}"
    _settle(out)
    base = peak_rss_mib()
    with Project.open(work / "project") as project:
        t, cpu = time.perf_counter(), os.times()
        export = export_coco if fmt == "coco" else export_yolo
        report = export(project, out, verify=verify)
        seconds = time.perf_counter() - t
        end = os.times()
    return {
        "seconds": round(seconds, 2),
        # CPU of all threads, user + system: what hashing adds, less noisy than wall time on a
        # shared machine
        "cpu_seconds": round(end.user - cpu.user + end.system - cpu.system, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_mib": round(base, 1),
        "images": report.n_images,
        "boxes": report.n_boxes,
    }


def run_supervision(work: Path, fmt: str) -> dict:
    import numpy as np
    import supervision as sv

    from labeldesk.core.formats.plan import BoxReader, load_plan
    from labeldesk.core.store.project import Project

    out = work / f"out_supervision_{fmt}"
    _settle(out)
    base = peak_rss_mib()
    t = time.perf_counter()
    with Project.open(work / "project") as project:
        plan = load_plan(project, "main")
        sources = dict(project.db.execute("SELECT sha256, path FROM image_source").fetchall())
        reader = BoxReader(project)
        class_ids = plan.class_ids
        index = {c: k for k, c in enumerate(class_ids)}
        paths: list[str] = []
        annotations: dict[str, sv.Detections] = {}
        for i in range(0, len(plan.images), 2000):
            chunk = plan.images[i : i + 2000]
            reader.prefetch(im.entry.annset for im in chunk)
            for im in chunk:
                boxes = reader.boxes(im.entry.annset)
                xyxy = np.array(
                    [[b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]] for b in boxes],
                    dtype=np.float32,
                ).reshape(-1, 4)
                cls = np.array([index[b["class"]] for b in boxes], dtype=int)
                path = sources[im.sha]
                paths.append(path)
                annotations[path] = sv.Detections(xyxy=xyxy, class_id=cls)
        names = [c["name"] for c in sorted(plan.version.classes, key=lambda c: c["id"])]
    dataset = sv.DetectionDataset(classes=names, images=paths, annotations=annotations)
    load = time.perf_counter() - t
    t = time.perf_counter()
    if fmt == "coco":
        dataset.as_coco(
            images_directory_path=str(out / "images"),
            annotations_path=str(out / "annotations.json"),
        )
    else:
        dataset.as_yolo(
            images_directory_path=str(out / "images"),
            annotations_directory_path=str(out / "labels"),
            data_yaml_path=str(out / "data.yaml"),
        )
    seconds = time.perf_counter() - t
    return {
        "seconds": round(seconds, 2),
        "load_seconds": round(load, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_mib": round(base, 1),
        "images": len(paths),
        "boxes": int(sum(len(d) for d in annotations.values())),
    }


def run_copy(work: Path, verify: bool) -> dict:
    """Every object copied on one thread, plain (``sendfile``) or hashed on the way: the
    per-file cost of verification alone, without the exporter around it."""
    from labeldesk.core.formats.files import copy_file
    from labeldesk.core.store.project import Project

    out = work / f"out_copy_{'verified' if verify else 'plain'}"
    _settle(out)
    out.mkdir()
    with Project.open(work / "project") as project:
        objects = list(project.objects.iter_objects())
    t, cpu = time.perf_counter(), os.times()
    for i, (sha, path) in enumerate(objects):
        copy_file(str(path), f"{out}/{i}", sha if verify else None)
    seconds = time.perf_counter() - t
    end = os.times()
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(end.user - cpu.user + end.system - cpu.system, 3),
        "objects": len(objects),
        "bytes": sum(p.stat().st_size for _, p in objects),
    }


PHASES = {
    "labeldesk_coco": lambda w: run_labeldesk(w, "coco"),
    "labeldesk_coco_unverified": lambda w: run_labeldesk(w, "coco", verify=False),
    "labeldesk_yolo": lambda w: run_labeldesk(w, "yolo"),
    "labeldesk_yolo_unverified": lambda w: run_labeldesk(w, "yolo", verify=False),
    "copy_plain": lambda w: run_copy(w, verify=False),
    "copy_verified": lambda w: run_copy(w, verify=True),
    "supervision_coco": lambda w: run_supervision(w, "coco"),
    "supervision_yolo": lambda w: run_supervision(w, "yolo"),
}


def _child(phase: str, work: Path) -> dict:
    """Run one phase in a fresh interpreter so its peak RSS is its own."""
    r = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--workdir", str(work)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip().splitlines()[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


MARKER = ".labeldesk-export-scale"


def _claim_workdir(wanted: Path | None) -> Path:
    """A work folder this run owns: fresh, or one the user named that is new or empty.

    A folder with anything in it is refused, never cleared: it may hold someone else's data.
    """
    if wanted is None:
        work = Path(tempfile.mkdtemp(prefix="labeldesk-export-scale-"))
    else:
        work = wanted.absolute()
        if work.exists() and any(work.iterdir()):
            sys.exit(f"{work} is not empty; name a new or empty folder (nothing was deleted)")
        work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("made by bench/export_scale.py; safe to delete\n")
    return work


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000, help="images in the version")
    ap.add_argument(
        "--workdir",
        type=Path,
        help="a new or empty folder to build in (default: a fresh temporary folder)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each export N times and report the fastest (the disk is shared and noisy)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        work = args.workdir.absolute()
        os.environ.setdefault("TQDM_DISABLE", "1")
        print(json.dumps(PHASES[args.phase](work)))
        return 0

    try:
        import supervision

        have_sv = f"supervision {supervision.__version__}"
    except ImportError:
        have_sv = None
        print(
            "supervision is not installed: `pip install supervision` to compare against it; "
            "running the LabelDesk side only",
            file=sys.stderr,
        )
    work = _claim_workdir(args.workdir)
    print(f"building {args.images} images in {work} …", flush=True)
    result: dict = {"images": args.images, "compared_with": have_sv}
    result["build"] = build(work, args.images)
    print(f"  {result['build']}", flush=True)
    # Round robin (ours, theirs, ours, theirs…) so that both sides of a comparison see the same
    # load on a shared machine; the fastest run of each counts.
    runs: dict[str, list[dict]] = {p: [] for p in PHASES}
    for rep in range(max(1, args.repeat)):
        for phase in PHASES:
            if phase.startswith("supervision") and not have_sv:
                runs[phase] = [{"error": "supervision not installed"}]
                continue
            runs[phase].append(_child(phase, work))
            print(f"{phase} run {rep + 1}: {runs[phase][-1]}", flush=True)
    for phase, got in runs.items():
        good = [r for r in got if "seconds" in r]
        result[phase] = dict(min(good, key=lambda r: r["seconds"]) if good else got[0])
        if len(got) > 1:
            result[phase]["all_seconds"] = [r.get("seconds") for r in got]
    for fmt in ("coco", "yolo"):
        ours, theirs = result[f"labeldesk_{fmt}"], result[f"supervision_{fmt}"]
        if "seconds" in ours and "seconds" in theirs and theirs["seconds"]:
            result[f"time_ratio_{fmt}"] = round(ours["seconds"] / theirs["seconds"], 3)
        raw = result[f"labeldesk_{fmt}_unverified"]
        if "seconds" in ours and "seconds" in raw and raw["seconds"]:
            result[f"verify_cost_{fmt}"] = round(ours["seconds"] / raw["seconds"], 3)
            runs_cpu = [
                min(r["cpu_seconds"] for r in runs[p] if "cpu_seconds" in r)
                for p in (f"labeldesk_{fmt}", f"labeldesk_{fmt}_unverified")
            ]
            result[f"verify_cpu_cost_{fmt}"] = round(runs_cpu[0] / runs_cpu[1], 3)
    plain, checked = result["copy_plain"], result["copy_verified"]
    if "seconds" in plain and "seconds" in checked and plain["seconds"]:
        result["verify_cost_copy"] = round(checked["seconds"] / plain["seconds"], 3)
    if not args.keep and (work / MARKER).is_file():  # only ever delete what we made
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
