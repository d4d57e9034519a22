"""`labeldesk gui --screenshot`: the real window in a process of its own, shot once the session
has loaded, or at once when the project has no version yet (the session is opened on the
writer thread, so the window cannot know that when it is built)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from labeldesk.core.store.project import Project

ROOT = Path(__file__).resolve().parents[2]


def shoot(project: Path, png: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    env["HOME"] = env["XDG_CONFIG_HOME"] = str(home)  # not the user's last project
    cmd = [sys.executable, "-m", "labeldesk", "gui", str(project), "--screenshot", str(png)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_screenshots_of_a_project_and_of_an_empty_one(review_project, tmp_path) -> None:
    root, _ = review_project
    empty = tmp_path / "empty"
    Project.init(empty, user="lead-user").close()
    for project in (root, empty):
        png = tmp_path / f"{project.name}.png"
        done = shoot(project, png, tmp_path / "home")
        assert done.returncode == 0, done.stderr
        with Image.open(png) as im:
            assert im.size[0] >= 800 and len(im.convert("L").getcolors(256) or []) > 16  # drawn
