"""The frozen program's entry point: ``LabelDesk [command ...]`` is ``labeldesk [command ...]``.

A frozen app has no Python to run ``python -m MODULE`` with, yet LabelDesk starts its
background jobs that way (``sys.executable -m labeldesk ...`` for watched-model evaluation,
``-m labeldesk.core.training.child`` for training). In the bundle ``sys.executable`` is this
program, so ``LabelDesk -m MODULE ARGS`` runs MODULE as ``__main__`` with ARGS, as Python would.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys


def _run() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    from labeldesk.cli.main import main

    return main()


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(_run())
