"""Benchmark: how fast read commands start, against a bare Python that imports sqlite3.

    python bench/startup.py [--runs 15]

Times (median of N fresh processes, same machine, same run): ``python -c "import sqlite3"``
(the peer), ``labeldesk --help``, ``labeldesk log`` and ``labeldesk show`` on a small project.
Goal: read commands within 2x the peer. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The children's environment: bytecode written and read, as an installed package has it (pip
#: compiles it at install). With PYTHONDONTWRITEBYTECODE set (some shells and CI images set it)
#: every run would compile LabelDesk's modules from source while the peer's stdlib has its .pyc.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], runs: int, cwd: Path) -> float:
    subprocess.run(cmd, cwd=cwd, capture_output=True, env=ENV)  # warm the page cache and .pyc
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, capture_output=True, env=ENV)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    ld = [sys.executable, "-m", "labeldesk.cli.main"]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        from labeldesk.core.demo.synth import write_images
        from labeldesk.core.store.importer import add_images
        from labeldesk.core.store.project import Project

        write_images(root / "src", 4, seed=1)
        with Project.init(root / "p", user="bench") as p:
            add_images(p, [root / "src"])
        peer = timed([sys.executable, "-c", "import sqlite3"], args.runs, root)
        figures = {"peer_import_sqlite3_s": round(peer, 4)}
        for name, extra in (("help", ["--help"]), ("log", ["log"]), ("show", ["show"])):
            t = timed([*ld, "-p", str(root / "p"), *extra], args.runs, root)
            figures[f"{name}_s"] = round(t, 4)
            figures[f"{name}_ratio"] = round(t / peer, 2)
            print(f"labeldesk {' '.join(extra):<7} {t * 1000:6.1f} ms  {t / peer:4.1f}x the peer")
        print(f"python -c 'import sqlite3' {peer * 1000:6.1f} ms (peer)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
