"""Benchmark: the project store at dataset scale.

    python bench/store_scale.py --images 100000

Generates N small images (about 10 boxes each), then measures in the same run:
  * import throughput (images/s) of a labelled import through LabelDesk's staging step, against
    a plain "sha256 + copy file" loop over the same files (the floor any importer pays);
  * a review session that changes 1% of the images: time to record the edits and to commit;
  * bytes the new version adds to the database, as a fraction of the database after the first
    version (goal <= 5%);
  * diff time between the two versions (goal < 1 s), in core and through the CLI;
  * log time; peak RSS (goal < 1 GiB).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from labeldesk.core.boxes import Box
from labeldesk.core.importer import Staging
from labeldesk.core.manifest import Entry
from labeldesk.core.project import Project
from labeldesk.core.sessions import ReviewSession
from labeldesk.core.versions import diff, log

CLASSES = [{"id": i + 1, "name": f"class{i}"} for i in range(10)]


def generate(folder: Path, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        p = sub / f"img{i:06d}.png"
        Image.fromarray(arr).save(p, compress_level=1)
        paths.append(p)
    return paths


def boxes_for(rng: random.Random, k: int = 10) -> list[Box]:
    return [
        Box(
            rng.randint(1, 10),
            rng.uniform(0, 20),
            rng.uniform(0, 14),
            rng.uniform(1, 12),
            rng.uniform(1, 10),
            state="imported",
        )
        for _ in range(k)
    ]


def plain_copy(paths: list[Path], dest: Path) -> float:
    t0 = time.perf_counter()
    for p in paths:
        data = p.read_bytes()
        h = hashlib.sha256(data).hexdigest()
        d = dest / h[:2]
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, d / h[2:])
    return time.perf_counter() - t0


def db_bytes(project: Project) -> int:
    project.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = project.db.execute("PRAGMA page_size").fetchone()[0]
    pages = project.db.execute("PRAGMA page_count").fetchone()[0]
    free = project.db.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size


CONTENT_TABLES = {
    "annotation_set": "length(hash) + length(boxes) + 8",
    "manifest_bucket": "length(hash) + length(entries) + 16",
    "manifest_tree": "length(hash) + length(buckets) + 16",
    "version": "length(id) + length(parents) + length(classes) + length(provenance) + "
    "length(message) + length(tree) + 64",
}


def max_rowids(project: Project) -> dict[str, int]:
    return {
        t: project.db.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {t}").fetchone()[0]
        for t in CONTENT_TABLES
    }


def payload_since(project: Project, before: dict[str, int]) -> int:
    """Bytes of the rows written since ``before``: a version's annotation sets, buckets, tree
    and version row (row payload, without SQLite's page and index overhead)."""
    return sum(
        project.db.execute(
            f"SELECT COALESCE(SUM({expr}), 0) FROM {t} WHERE rowid > ?", [before[t]]
        ).fetchone()[0]
        for t, expr in CONTENT_TABLES.items()
    )


def cli(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "labeldesk.cli.main", *args], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--changed", type=float, default=0.01, help="fraction changed in review")
    ap.add_argument("--workdir", type=Path, help="where to build (default: a temp folder)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="labeldesk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.images
    rng = random.Random(args.seed)
    figures: dict[str, float | int] = {"images": n}

    t0 = time.perf_counter()
    paths = generate(work / "src", n, args.seed)
    print(f"generated {n} images in {time.perf_counter() - t0:.1f}s", flush=True)

    plain_s = plain_copy(paths, work / "plain-copy")
    figures["plain_copy_images_per_s"] = round(n / plain_s, 1)
    print(f"plain sha256+copy: {plain_s:.1f}s ({n / plain_s:.0f} images/s)", flush=True)

    project = Project.init(work / "project", user="bench")
    t0 = time.perf_counter()
    with Staging(project) as staging:
        staged = staging.stage_files(paths)
        entries, annsets = {}, {}
        for _path, sha, _info in staged:
            assert sha is not None
            entries[sha] = Entry("", "train")
            annsets[sha] = boxes_for(rng)
        first = staging.commit(
            entries=entries,
            annsets=annsets,
            classes=CLASSES,
            message="bench import",
            provenance={"format": "bench"},
        )
    import_s = time.perf_counter() - t0
    assert first is not None
    figures["import_images_per_s"] = round(n / import_s, 1)
    figures["import_vs_plain_copy"] = round(plain_s / import_s, 3)
    print(
        f"labelled import: {import_s:.1f}s ({n / import_s:.0f} images/s, {first.n_boxes} boxes)",
        flush=True,
    )
    size_first = db_bytes(project)
    figures["db_bytes_after_first_version"] = size_first

    images = sorted(entries)
    changed = rng.sample(images, max(1, int(n * args.changed)))
    session = ReviewSession.start(project)
    t0 = time.perf_counter()
    for sha in changed:
        boxes = session.boxes(sha)
        b = boxes[0]
        session.set_boxes(sha, [b.with_(x=b.x + 1.5, state="edited"), *boxes[1:]])
    figures["review_edits_s"] = round(time.perf_counter() - t0, 3)
    rows_before = max_rowids(project)
    t0 = time.perf_counter()
    second = session.commit("bench review")
    figures["review_commit_s"] = round(time.perf_counter() - t0, 3)
    print(
        f"review of {len(changed)} images: edits {figures['review_edits_s']}s, "
        f"commit {figures['review_commit_s']}s",
        flush=True,
    )

    version_payload = payload_since(project, rows_before)
    size_second = db_bytes(project)
    grown = size_second - size_first
    figures["version_bytes"] = version_payload
    figures["version_bytes_fraction"] = round(version_payload / size_first, 4)
    figures["db_file_growth_bytes"] = grown
    figures["db_file_growth_fraction"] = round(grown / size_first, 4)
    print(
        f"database: {size_first / 1e6:.1f} MB after the first version; the review version "
        f"adds {version_payload / 1e6:.2f} MB of rows ({100 * version_payload / size_first:.2f}%)"
        f"; the file grew {grown / 1e6:.2f} MB ({100 * grown / size_first:.2f}%, including "
        "the session's own edit record and page overhead)",
        flush=True,
    )

    t0 = time.perf_counter()
    d = diff(project, first.id, second.id)
    figures["diff_core_s"] = round(time.perf_counter() - t0, 3)
    assert d.counts()["images_changed"] == len(changed)
    figures["diff_cli_s"] = round(
        cli("-p", str(project.root), "diff", "main~1", "main", "--json"), 3
    )
    t0 = time.perf_counter()
    list(log(project.db))
    figures["log_core_s"] = round(time.perf_counter() - t0, 4)
    figures["log_cli_s"] = round(cli("-p", str(project.root), "log"), 3)
    print(
        f"diff: core {figures['diff_core_s']}s, CLI {figures['diff_cli_s']}s; "
        f"log: core {figures['log_core_s']}s, CLI {figures['log_cli_s']}s",
        flush=True,
    )
    project.close()

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    figures["peak_rss_mib"] = round(rss / 2**20, 1)
    figures["peak_rss_cli_mib"] = round(rss_children / 2**20, 1)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    os.environ.setdefault("YOLO_OFFLINE", "1")
    main()
