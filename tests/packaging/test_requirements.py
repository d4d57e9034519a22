"""The review install list: pyproject's dependencies minus Ultralytics, plus onnxruntime."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _names(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.match(r"[A-Za-z0-9_.\-]+", line)
            assert name, line
            out[name.group(0).lower().replace("_", "-")] = line.replace(" ", "")
    return out


def test_review_requirements_are_the_dependencies_without_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    full = _names(project["dependencies"])
    review = _names((ROOT / "packaging" / "requirements-review.txt").read_text().splitlines())
    onnx = _names(project["optional-dependencies"]["onnx"])
    expected = {k: v for k, v in full.items() if k != "ultralytics"} | onnx
    assert review == expected  # same pins; a new dependency must be added to both lists
    assert not {"torch", "torchvision", "ultralytics", "opencv-python"} & review.keys()
    assert "pyinstaller" in _names(project["optional-dependencies"]["bundle"])
