"""Shared fixtures: real projects in temporary folders and real image files made on the spot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from helpers import write_image

# A real S3 server (SeaweedFS from its wheel) for the remote tests, started on first use.
from s3server import remote_url, s3_env, s3_server  # noqa: F401 - fixtures

from labeldesk.core.store.project import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = Project.init(tmp_path / "project", user="lead-user")
    yield p
    p.close()


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Ten distinct PNG files in a source folder."""
    return [write_image(tmp_path / "src" / f"img{i:02d}.png", seed=i) for i in range(10)]


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(name, size)`` mounts a fresh tmpfs of ``size`` bytes: a real device that fills up.

    Needs root and a kernel that lets it mount (CI runs as root); skipped elsewhere, where
    ``test_file_size_limit_fails_cleanly`` still exercises the same path with a real kernel
    limit.
    """
    mounted: list[Path] = []

    def mount(name: str, size: int = 4 << 20) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / name
        target.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"this machine does not let root mount a tmpfs: {r.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)
