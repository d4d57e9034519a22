"""Evaluate watched models on a committed version in a process of its own, in the background.

A commit must not wait minutes for model inference, and a script that adds images should not
have to know which models are watched. So after a CLI commit, when any model is watched, a
detached ``labeldesk validate --watched --version ID`` process is started: it outlives the
command, writes its output to ``watch.log`` in the project folder, and stores its results
like any evaluation (``labeldesk log`` shows them). It is idempotent, so a run that was killed
is simply repeated by ``labeldesk validate --watched``. ``LABELDESK_WATCH=off`` turns it off
(for scripts that run ``validate --watched`` themselves, in the foreground).

The review window evaluates in a thread of its own while it is open, and hands what it has not
finished to this when it closes, so closing the window right after a commit loses nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys

from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import Version

LOG_NAME = "watch.log"


def evaluate_watched_later(project: Project, version: Version | None) -> str | None:
    """Start the background evaluation of the watched models on ``version``; what to print."""
    if version is None or os.environ.get("LABELDESK_WATCH", "").lower() in ("off", "0", "no"):
        return None
    from labeldesk.core.validation.watch import watched

    names = [m.name for m, _ in watched(project.db)]
    if not names:
        return None
    log = project.root / LOG_NAME
    cmd = [sys.executable, "-m", "labeldesk", "-p", str(project.root), "validate"]
    cmd += ["--watched", "--version", version.id]
    env = dict(os.environ, LABELDESK_USER=project.user)
    with open(log, "ab") as out:
        out.write(f"\n$ labeldesk validate --watched --version {version.id}\n".encode())
        out.flush()
        _spawn_detached(cmd, out.fileno(), env)
    return (
        f"evaluating watched model(s) {', '.join(names)} on {version.short} in the background "
        f"(output in {log}); `labeldesk log` shows the result"
    )


def _spawn_detached(cmd: list[str], out_fd: int, env: dict[str, str]) -> None:
    """Start ``cmd`` in its own session (Ctrl-C in the terminal does not reach it), output to
    ``out_fd``, and do not wait for it: the command that committed returns at once."""
    if hasattr(os, "posix_spawn"):
        # posix_spawn rather than Popen: a Popen object dropped while its child still runs
        # warns (ResourceWarning) in the parent, and this parent never waits.
        reap()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            pid = os.posix_spawn(
                cmd[0],
                cmd,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, out_fd, 1),
                    (os.POSIX_SPAWN_DUP2, out_fd, 2),
                ],
                setsid=True,
            )
            _SPAWNED.append(pid)
        finally:
            os.close(null)
        return
    flags = getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(
        subprocess, "CREATE_NEW_PROCESS_GROUP", 0
    )
    _RUNNING.append(
        subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=subprocess.STDOUT,
            env=env,
            creationflags=flags,
        )
    )


#: Children started without posix_spawn, kept referenced so they are not reaped with a warning.
_RUNNING: list[subprocess.Popen] = []

#: Children started with posix_spawn and not yet reaped.
_SPAWNED: list[int] = []


def reap() -> None:
    """Collect the exit status of finished children, so that a long-lived process (the review
    window hands evaluations over on every project close) does not collect zombies."""
    for pid in list(_SPAWNED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid  # already collected elsewhere
        if done:
            _SPAWNED.remove(pid)
