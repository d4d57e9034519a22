"""Benchmark: push and clone through a local SeaweedFS, against s5cmd on the same files.

    python bench/remote.py [--images 10000] [--review 0.01] [--rounds 3]

One run starts ``weed mini`` on loopback (tests/s3server.py), imports N small generated PNGs,
labels each one (one box, so one annotation set per image, as in a real project),
and measures, each in a fresh child process (so peak memory is that operation's own), in
``--rounds`` rounds that alternate with s5cmd (each round to a fresh prefix; medians are
reported, since on a shared machine one round of either can be slowed by a neighbour):
  * first push of the project (all objects and rows, main moved);
  * full clone (every record verified, every image re-hashed);
  * incremental push after reviewing ``--review`` of the images: what it sent, and its time;
  * s5cmd (the fastest S3 copy tool) uploading and downloading the same image files: the floor;
  * once more, untimed, a push and a clone under tracemalloc: the Python heap's peak, which
    (unlike the process's peak RSS, mostly the interpreter, SQLite and the S3 client's
    runtime) is what would grow with N.
Goals (issue 15): push and clone at least 0.8x s5cmd's throughput (medians); the incremental
push sends only the changed rows, in under 2 s; peak memory independent of N (compare two N).
The last line is one JSON object with every figure.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from s3server import SeaweedS3  # noqa: E402

CHILD = """
import json, os, sys, time, tracemalloc
op, root, url, remote, heap = sys.argv[1:6]
sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "bench"))
from memory import peak_rss_mib
import obstore.store
from labeldesk.core.store.project import Project
from labeldesk.core.remote.sync import clone
from labeldesk.core.remote.sync import push
project = Project.open(root) if op == "push" else None  # opened before the clock starts
if heap == "1":
    # what Project.init imports (sqlite_utils): not the clone's data
    import labeldesk.core.store.schema
    tracemalloc.start()
t = time.perf_counter()  # the operation, not the interpreter's start
if project is not None:
    sent = push(project, remote).sent
    project.close()
else:
    c, r = clone(url, root)
    sent = {"versions": len(r.versions), "objects": r.objects}
    c.close()
wall = time.perf_counter() - t
rss = peak_rss_mib()  # this process's own peak (ru_maxrss would be the parent's: bench/memory.py)
threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
heap_mb = tracemalloc.get_traced_memory()[1] / 1e6 if heap == "1" else None
print(json.dumps({"wall_s": wall, "peak_mb": rss, "heap_mb": heap_mb, "sent": sent,
                  "threads": threads}))
"""


def child(
    op: str, root: Path, url: str, env: dict[str, str], remote: str = "", heap: bool = False
) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, op, str(root), url, remote, "1" if heap else "0"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(r.stdout.strip().splitlines()[-1])


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def s5cmd(args: list[str], env: dict[str, str], endpoint: str) -> float:
    exe = shutil.which("s5cmd") or str(Path(sys.executable).parent / "s5cmd")
    t = time.perf_counter()
    subprocess.run(
        [exe, "--endpoint-url", endpoint, *args], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--review", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from helpers import write_image

    from labeldesk.core.boxes import Box
    from labeldesk.core.remote.config import add_remote
    from labeldesk.core.store.importer import add_images
    from labeldesk.core.store.project import Project
    from labeldesk.core.store.sessions import ReviewSession

    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    srv = SeaweedS3(tmp / "s3").start()
    env = {**os.environ, **srv.env(), "AWS_ENDPOINT_URL": srv.endpoint, "PYTHONPATH": str(ROOT)}
    os.environ.update({**srv.env(), "AWS_ENDPOINT_URL": srv.endpoint})
    out: dict = {"images": args.images}
    try:
        src = tmp / "src"
        for i in range(args.images):
            write_image(src / f"{i // 1000:03d}" / f"img{i:06d}.png", seed=i, size=(64, 48))
        total_bytes = sum(f.stat().st_size for f in src.rglob("*.png"))
        out["bytes"] = total_bytes
        root = tmp / "proj"
        names = [f"r{i}" for i in range(args.rounds)] + ["heap"]
        with Project.init(root, user="bench") as p:
            add_images(p, [src])
            # Every image labelled, each differently (one annotation set per image, as in a
            # real project), committed as a second version: records that grow with N.
            s = ReviewSession.start(p)
            cid = s.add_class("object")
            shas = [r[0] for r in p.db.execute("SELECT sha256 FROM image ORDER BY sha256")]
            for i, sha in enumerate(shas):
                s.set_boxes(sha, [Box(cid, 1 + i % 400 / 10, 1 + i // 400 % 300 / 10, 12.0, 9.0)])
            s.commit("labels")
            for name in names:
                add_remote(p, name, f"s3://labeldesk-test/bench-{name}")

        rounds = []
        for i, name in enumerate(names[:-1]):
            url = f"s3://labeldesk-test/bench-{name}"
            r: dict = {}
            r["s5cmd_upload_s"] = s5cmd(
                ["cp", f"{src}/*", f"s3://labeldesk-test/s5cmd{i}/"], env, srv.endpoint
            )
            r["push"] = child("push", root, "", env, name)
            r["s5cmd_download_s"] = s5cmd(
                ["cp", f"s3://labeldesk-test/s5cmd{i}/*", f"{tmp / f'down{i}'}/"],
                env, srv.endpoint,
            )  # fmt: skip
            r["clone"] = child("clone", tmp / f"clone{i}", url, env)
            shutil.rmtree(tmp / f"clone{i}")
            shutil.rmtree(tmp / f"down{i}")
            rounds.append(r)
        out["rounds"] = rounds
        med = {
            "push_s": median([r["push"]["wall_s"] for r in rounds]),
            "clone_s": median([r["clone"]["wall_s"] for r in rounds]),
            "s5cmd_upload_s": median([r["s5cmd_upload_s"] for r in rounds]),
            "s5cmd_download_s": median([r["s5cmd_download_s"] for r in rounds]),
            "push_peak_mb": max(r["push"]["peak_mb"] for r in rounds),
            "clone_peak_mb": max(r["clone"]["peak_mb"] for r in rounds),
        }
        out["median"] = med
        out["push_vs_s5cmd"] = med["s5cmd_upload_s"] / med["push_s"]
        out["clone_vs_s5cmd"] = med["s5cmd_download_s"] / med["clone_s"]
        heap_push = child("push", root, "", env, "heap", heap=True)
        heap_clone = child("clone", tmp / "clone-heap", "s3://labeldesk-test/bench-heap", env,
                           heap=True)  # fmt: skip
        out["heap_mb"] = {"push": heap_push["heap_mb"], "clone": heap_clone["heap_mb"]}

        with Project.open(root, user="bench") as p:
            s = ReviewSession.start(p)
            cid = s.add_class("cat")
            shas = [r[0] for r in p.db.execute("SELECT sha256 FROM image ORDER BY sha256")]
            n = max(1, int(len(shas) * args.review))
            for sha in shas[:n]:
                s.set_boxes(sha, [Box(cid, 2.0, 2.0, 10.0, 10.0)])  # relabelled: another class
            s.commit("1% review")
        out["reviewed"] = n
        out["incremental_push"] = child("push", root, "", env, "r0")
        print(
            f"{args.images} images, {total_bytes / 1e6:.1f} MB, median of {args.rounds} rounds\n"
            f"  push        {med['push_s']:.2f} s  peak {med['push_peak_mb']:.0f} MB"
            f"  ({out['push_vs_s5cmd']:.2f}x s5cmd's {med['s5cmd_upload_s']:.2f} s)\n"
            f"  clone       {med['clone_s']:.2f} s  peak {med['clone_peak_mb']:.0f} MB"
            f"  ({out['clone_vs_s5cmd']:.2f}x s5cmd's {med['s5cmd_download_s']:.2f} s)\n"
            f"  Python heap peak: push {out['heap_mb']['push']:.1f} MB, "
            f"clone {out['heap_mb']['clone']:.1f} MB\n"
            f"  incremental {out['incremental_push']['wall_s']:.2f} s after reviewing {n}: "
            f"sent {out['incremental_push']['sent']}"
        )
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
