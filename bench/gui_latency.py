"""Benchmark: how fast the review window shows the next photo with its boxes.

    python bench/gui_latency.py [--images 200] [--size 4000x3000]

Drives the real main window (offscreen) through N JPEG photos and measures, from the key press
to the frame that shows the image with its boxes:
  * stepping in order (the reviewer spends --dwell seconds on each image, as people do, while
    the next ones are prefetched), p50 and p95;
  * random jumps (no prefetch can help), p50 and p95;
and, in the same run, a plain synchronous full decode of the same files (Pillow, EXIF applied):
the floor a naive viewer pays for every image. It also measures the time from starting the app
to the first painted window, in a fresh process. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PIL import Image, ImageDraw, ImageOps


def make_photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h:8, 0:w:8]
    paths = []
    for i in range(n):
        base = (np.sin(xx / (50 + i)) * 60 + np.cos(yy / (70 + i)) * 60 + 128).astype(np.uint8)
        small = np.stack([base, np.roll(base, i, 0), np.roll(base, 2 * i, 1)], axis=-1)
        im = Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(im)
        for _ in range(6):
            x, y = int(rng.integers(0, w - 400)), int(rng.integers(0, h - 400))
            draw.rectangle(
                (x, y, x + 300, y + 250), fill=tuple(int(c) for c in rng.integers(0, 255, 3))
            )
        p = folder / f"photo_{i:04d}.jpg"
        im.save(p, quality=88)
        paths.append(p)
    return paths


def naive_decode_ms(paths: list[Path]) -> list[float]:
    out = []
    for p in paths:
        t0 = time.perf_counter()
        with Image.open(p) as im:
            im.load()
            ImageOps.exif_transpose(im)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def first_window_s(project: Path) -> float:
    code = (
        "import sys, time\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from PySide6.QtCore import QTimer\n"
        "from labeldesk.gui.main_window import MainWindow\n"
        "app = QApplication([])\n"
        f"w = MainWindow(__import__('pathlib').Path({str(project)!r}))\n"
        "w.show()\n"
        "w.repaint()\n"
        "print('PAINTED', flush=True)\n"
        "import os; os._exit(0)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert "PAINTED" in out.stdout, out.stderr
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--dwell", type=float, default=0.3, help="seconds spent on each image")
    ap.add_argument("--jumps", type=int, default=50)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="labeldesk-gui-bench-"))

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from labeldesk.core.boxes import Box
    from labeldesk.core.store.importer import add_images
    from labeldesk.core.store.project import Project
    from labeldesk.core.store.sessions import ReviewSession

    t0 = time.perf_counter()
    photos = make_photos(work / "photos", args.images, size)
    print(
        f"made {len(photos)} photos of {args.size} in {time.perf_counter() - t0:.0f}s", flush=True
    )
    with Project.init(work / "project", user="bench") as p:
        shas = [a.sha256 for a in add_images(p, photos).added]
        s = ReviewSession.start(p)
        c = s.add_class("thing")
        rng = random.Random(1)
        for sha in shas:
            s.set_boxes(
                sha,
                [
                    Box(c, rng.uniform(0, size[0] - 500), rng.uniform(0, size[1] - 500), 300, 250)
                    for _ in range(6)
                ],
            )
        s.commit("boxes")

    naive = naive_decode_ms(photos)
    print(f"naive full decode: p50 {pct(naive, 50)} ms, p95 {pct(naive, 95)} ms", flush=True)

    app = QApplication.instance() or QApplication([])
    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(work / "project", user="bench")
    w.resize(1600, 1000)
    w.show()
    QTest.qWaitForWindowActive(w, 5000)
    while w.ws is None or w.current is None:
        app.processEvents()

    def wait_shown(sha: str) -> None:
        """Until the canvas shows ``sha``'s decoded pixels and its boxes, then paint."""
        while not (
            w.current == sha
            and not w.canvas.pixmap_item.pixmap().isNull()
            and w.loader.cached(sha) is not None
        ):
            app.processEvents()
            time.sleep(0.0005)
        w.canvas.viewport().repaint()

    def dwell(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    rows = w.ws.rows
    sequential = []
    for i in range(1, len(rows)):
        dwell(args.dwell)
        t = time.perf_counter()
        QTest.keyClick(w.canvas, Qt.Key.Key_Right)
        wait_shown(rows[i].sha)
        sequential.append((time.perf_counter() - t) * 1000)
        assert len(w.canvas.items_) == 6
    print(f"sequential: p50 {pct(sequential, 50)} ms, p95 {pct(sequential, 95)} ms", flush=True)

    w.loader.cache.clear()
    jumps = []
    rng = random.Random(7)
    for _ in range(args.jumps):
        dwell(0.05)
        j = rng.randrange(len(rows))
        w.loader.cache.clear()  # a jump lands where nothing was prefetched
        t = time.perf_counter()
        w.show_row(j)
        wait_shown(rows[j].sha)
        jumps.append((time.perf_counter() - t) * 1000)
    print(f"random jumps: p50 {pct(jumps, 50)} ms, p95 {pct(jumps, 95)} ms", flush=True)
    w.close()

    first = first_window_s(work / "project")
    print(f"first painted window: {first:.2f} s", flush=True)
    print(
        json.dumps(
            {
                "images": len(rows),
                "size": args.size,
                "dwell_s": args.dwell,
                "sequential_p50_ms": pct(sequential, 50),
                "sequential_p95_ms": pct(sequential, 95),
                "jump_p50_ms": pct(jumps, 50),
                "jump_p95_ms": pct(jumps, 95),
                "naive_decode_p50_ms": pct(naive, 50),
                "naive_decode_p95_ms": pct(naive, 95),
                "first_window_s": round(first, 2),
            }
        ),
        flush=True,
    )
    os._exit(0)  # skip interpreter teardown: Qt objects still owned by worker threads


if __name__ == "__main__":
    main()
