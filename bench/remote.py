"""Benchmark: push and clone through a local SeaweedFS, against s5cmd on the same files.

    python bench/remote.py [--images 10000] [--review 0.01]

One run starts ``weed mini`` on loopback (tests/s3server.py), imports N small generated PNGs,
and measures, each in a fresh child process (so peak memory is that operation's own):
  * first push of the project (all objects and rows, main moved);
  * full clone (every record verified, every image re-hashed);
  * incremental push after reviewing ``--review`` of the images: what it sent, and its time;
  * s5cmd (the fastest S3 copy tool) uploading and downloading the same image files: the floor.
Goals (issue 15): push and clone at least 0.8x s5cmd's throughput; the incremental push sends
only the changed rows, in under 2 s; peak memory independent of N (compare two N).
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
import json, resource, sys, time
from pathlib import Path
op, root, url = sys.argv[1], sys.argv[2], sys.argv[3]
import obstore.store
from labeldesk.core.store.project import Project
from labeldesk.core.remote.sync import clone, push
t = time.perf_counter()  # the operation, not the interpreter's start
if op == "push":
    with Project.open(root) as p:
        sent = push(p).sent
elif op == "clone":
    p, r = clone(url, root)
    sent = {"versions": len(r.versions), "objects": r.objects}
    p.close()
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "peak_mb": rss, "sent": sent}))
"""


def child(op: str, root: Path, url: str, env: dict[str, str]) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, op, str(root), url],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(r.stdout.strip().splitlines()[-1])


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
        with Project.init(root, user="bench") as p:
            add_images(p, [src])
            add_remote(p, "origin", "s3://labeldesk-test/bench")

        out["push"] = child("push", root, "", env)
        out["clone"] = child("clone", tmp / "clone", "s3://labeldesk-test/bench", env)

        with Project.open(root, user="bench") as p:
            s = ReviewSession.start(p)
            cid = s.add_class("cat")
            shas = [r[0] for r in p.db.execute("SELECT sha256 FROM image ORDER BY sha256")]
            n = max(1, int(len(shas) * args.review))
            for sha in shas[:n]:
                s.set_boxes(sha, [Box(cid, 2.0, 2.0, 10.0, 10.0)])
            s.commit("1% review")
        out["reviewed"] = n
        out["incremental_push"] = child("push", root, "", env)

        out["s5cmd_upload_s"] = s5cmd(
            ["cp", f"{src}/*", "s3://labeldesk-test/s5cmd/"], env, srv.endpoint
        )
        out["s5cmd_download_s"] = s5cmd(
            ["cp", "s3://labeldesk-test/s5cmd/*", f"{tmp / 'down'}/"], env, srv.endpoint
        )
        out["push_vs_s5cmd"] = out["s5cmd_upload_s"] / out["push"]["wall_s"]
        out["clone_vs_s5cmd"] = out["s5cmd_download_s"] / out["clone"]["wall_s"]
        print(
            f"{args.images} images, {total_bytes / 1e6:.1f} MB\n"
            f"  push        {out['push']['wall_s']:.2f} s  peak {out['push']['peak_mb']:.0f} MB"
            f"  ({out['push_vs_s5cmd']:.2f}x s5cmd's {out['s5cmd_upload_s']:.2f} s)\n"
            f"  clone       {out['clone']['wall_s']:.2f} s  peak {out['clone']['peak_mb']:.0f} MB"
            f"  ({out['clone_vs_s5cmd']:.2f}x s5cmd's {out['s5cmd_download_s']:.2f} s)\n"
            f"  incremental {out['incremental_push']['wall_s']:.2f} s after reviewing {n}: "
            f"sent {out['incremental_push']['sent']}"
        )
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
