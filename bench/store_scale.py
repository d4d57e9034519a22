"""Benchmark: the project store at dataset scale.

    python bench/store_scale.py --images 100000
    python bench/store_scale.py --images 4000 --rounds 3

Generates N small images (about 10 boxes each), then measures in the same run:
  * import throughput (images/s) of a labelled import through LabelDesk's staging step (full
    decode check, hash, store, rows, version), and of a plain ``add`` of the same files, each
    against a plain "sha256 + copy file" loop over the same files (the floor any importer
    pays). The disk is flushed before each timed step and the plain loop runs before and after
    the two imports (its mean is the peer), so writeback left by one step is not billed to the
    next and a change in the machine's load shows in both. ``--rounds`` repeats this in fresh
    folders and reports the median ratio (on a shared machine one round can be far off);
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from labeldesk.core.boxes import imported_set
from labeldesk.core.store.importer import Staging, add_images
from labeldesk.core.store.manifest import Entry
from labeldesk.core.store.packed import pack_imported
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.version_diff import diff
from labeldesk.core.store.versions import Version, log

CLASSES = [{"id": i + 1, "name": f"class{i}"} for i in range(10)]
#: User CPU seconds of the last plain loop and labelled import (reported beside CPU seconds).
USER: dict[str, float] = {}


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


def cpu_s() -> float:
    """CPU seconds of this process so far, user + system, all threads: less moved than wall
    time by other work on a shared machine (file creation is mostly system time, and that
    grows when other jobs create and delete files on the same disk)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def user_s() -> float:
    """User CPU seconds of this process so far (all threads): the Python and C work itself,
    without the kernel's, which other jobs on the machine move most."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def labels_for(rng: random.Random, k: int = 10) -> list[tuple[int, float, float, float, float]]:
    """Raw label rows for one image, as an annotation file would hold them (not yet boxes)."""
    return [
        (
            rng.randint(1, 10),
            rng.uniform(0, 20),
            rng.uniform(0, 14),
            rng.uniform(1, 12),
            rng.uniform(1, 10),
        )
        for _ in range(k)
    ]


def plain_copy(paths: list[Path], dest: Path) -> tuple[float, float]:
    """The peer: read, sha256, copy to ``dest/ab/cdef…``; (wall seconds, CPU seconds)."""
    os.sync()
    t0, c0, u0 = time.perf_counter(), cpu_s(), user_s()
    for p in paths:
        data = p.read_bytes()
        h = hashlib.sha256(data).hexdigest()
        d = dest / h[:2]
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, d / h[2:])
    USER["plain"] = user_s() - u0
    return time.perf_counter() - t0, cpu_s() - c0


def labelled_import(
    root: Path, paths: list[Path], labels: list[list[tuple]]
) -> tuple[Project, Version | None, dict[str, Entry], float, float]:
    """Import ``paths`` with their labels as one version; returns (project, version, entries,
    wall seconds, CPU seconds). Each image's annotation set is made from its raw rows inside
    the timed step, the way the COCO and YOLO importers make it from their files
    (:func:`imported_set`, which writes what Boxes of those rows would canonicalise to)."""
    project = Project.init(root, user="bench")
    os.sync()
    t0, c0, u0 = time.perf_counter(), cpu_s(), user_s()
    with Staging(project) as staging:
        staged = staging.stage_files(paths)
        entries, annsets = {}, {}
        for (_path, sha, _info), rows in zip(staged, labels, strict=True):
            assert sha is not None
            entries[sha] = Entry("", "train")
            annsets[sha] = imported_set(
                [(c, x, y, w, h, False, None) for c, x, y, w, h in rows], pack=pack_imported
            )
        version = staging.commit(
            entries=entries,
            annsets=annsets,
            classes=CLASSES,
            message="bench import",
            provenance={"format": "bench"},
        )
    USER["import"] = user_s() - u0
    return project, version, entries, time.perf_counter() - t0, cpu_s() - c0


def plain_add(root: Path, folder: Path, n: int) -> tuple[float, float]:
    """``labeldesk add FOLDER`` in core, into a fresh project; (wall seconds, CPU seconds)."""
    project = Project.init(root, user="bench")
    os.sync()
    t0, c0 = time.perf_counter(), cpu_s()
    report = add_images(project, [folder])
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - c0
    assert len(report.added) == n
    project.close()
    return elapsed, cpu


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
    ap.add_argument("--rounds", type=int, default=1, help="import measurements to take")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="labeldesk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.images
    rng = random.Random(args.seed)
    figures: dict[str, Any] = {"images": n}

    t0 = time.perf_counter()
    paths = generate(work / "src", n, args.seed)
    print(f"generated {n} images in {time.perf_counter() - t0:.1f}s", flush=True)

    labels = [labels_for(rng) for _ in paths]
    rounds: list[dict[str, Any]] = []
    project: Project | None = None
    first: Version | None = None
    entries: dict[str, Entry] | None = None
    for r in range(args.rounds):
        plain_before, plain_cpu_a = plain_copy(paths, work / f"plain-copy-{r}a")
        plain_user = USER["plain"]
        proj, version, ents, import_s, import_cpu = labelled_import(
            work / f"project-{r}", paths, labels
        )
        import_user = USER["import"]
        add_s, add_cpu = plain_add(work / f"added-{r}", work / "src", n)
        plain_after, plain_cpu_b = plain_copy(paths, work / f"plain-copy-{r}b")
        plain_user = (plain_user + USER["plain"]) / 2
        plain_s = (plain_before + plain_after) / 2
        plain_cpu = (plain_cpu_a + plain_cpu_b) / 2
        rounds.append(
            {
                "plain_copy_s": [round(plain_before, 3), round(plain_after, 3)],
                "import_s": round(import_s, 3),
                "add_s": round(add_s, 3),
                "import_vs_plain_copy": round(plain_s / import_s, 3),
                "add_vs_plain_copy": round(plain_s / add_s, 3),
                "plain_copy_cpu_s": round(plain_cpu, 3),
                "import_cpu_s": round(import_cpu, 3),
                "add_cpu_s": round(add_cpu, 3),
                "import_vs_plain_copy_cpu": round(plain_cpu / import_cpu, 3),
                "add_vs_plain_copy_cpu": round(plain_cpu / add_cpu, 3),
                "plain_copy_user_s": round(plain_user, 3),
                "import_user_s": round(import_user, 3),
                "import_vs_plain_copy_user": round(plain_user / import_user, 3),
            }
        )
        print(
            f"round {r + 1}: plain sha256+copy {plain_before:.2f}s / {plain_after:.2f}s "
            f"({n / plain_s:.0f} images/s, {plain_cpu:.2f} CPU s); labelled import "
            f"{import_s:.2f}s ({n / import_s:.0f} images/s, {plain_s / import_s:.2f}x the plain "
            f"loop; {import_cpu:.2f} CPU s, {plain_cpu / import_cpu:.2f}x); plain add "
            f"{add_s:.2f}s ({plain_s / add_s:.2f}x; {add_cpu:.2f} CPU s, "
            f"{plain_cpu / add_cpu:.2f}x); user CPU: plain {plain_user:.2f} s, import "
            f"{import_user:.2f} s ({plain_user / import_user:.2f}x)",
            flush=True,
        )
        if project is None:
            project, first, entries = proj, version, ents
        else:
            proj.close()
    assert project is not None and first is not None and entries is not None
    figures["rounds"] = rounds
    for key in (
        "import_vs_plain_copy",
        "add_vs_plain_copy",
        "import_vs_plain_copy_cpu",
        "add_vs_plain_copy_cpu",
        "import_vs_plain_copy_user",
    ):
        figures[key] = round(statistics.median(r[key] for r in rounds), 3)
    figures["import_images_per_s"] = round(n / statistics.median(r["import_s"] for r in rounds), 1)
    figures["add_images_per_s"] = round(n / statistics.median(r["add_s"] for r in rounds), 1)
    print(
        f"labelled import: {figures['import_vs_plain_copy']}x the plain loop; plain add: "
        f"{figures['add_vs_plain_copy']}x (median of {args.rounds} round(s), "
        f"{first.n_boxes} boxes); in CPU time {figures['import_vs_plain_copy_cpu']}x and "
        f"{figures['add_vs_plain_copy_cpu']}x; the import in user CPU time "
        f"{figures['import_vs_plain_copy_user']}x",
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
