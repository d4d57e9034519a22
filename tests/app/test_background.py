"""Detached processes for watched evaluations: started without waiting, collected later."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from labeldesk.app import background


def state(pid: int) -> str | None:
    """The process state letter from /proc (``Z`` for a zombie); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(not hasattr(os, "posix_spawn") or not Path("/proc").is_dir(), reason="Linux")
def test_finished_children_are_reaped_not_left_as_zombies(tmp_path) -> None:
    log = tmp_path / "out.log"
    with open(log, "ab") as out:
        background._spawn_detached(
            [sys.executable, "-c", "print('done')"], out.fileno(), dict(os.environ)
        )
    pid = background._SPAWNED[-1]
    deadline = time.monotonic() + 30
    while state(pid) not in ("Z", None):  # it runs on its own; this process did not wait
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state(pid) == "Z"  # finished, and nobody has collected it yet
    background.reap()
    assert state(pid) is None and pid not in background._SPAWNED
    assert log.read_text() == "done\n"
