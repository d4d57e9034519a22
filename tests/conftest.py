"""Shared fixtures: real projects in temporary folders and real image files made on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from helpers import write_image

# A real S3 server (SeaweedFS from its wheel) for the remote tests, started on first use.
from s3server import remote_url, s3_env, s3_server  # noqa: F401 - fixtures

from labeldesk.core.project import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = Project.init(tmp_path / "project", user="lead-user")
    yield p
    p.close()


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Ten distinct PNG files in a source folder."""
    return [write_image(tmp_path / "src" / f"img{i:02d}.png", seed=i) for i in range(10)]
