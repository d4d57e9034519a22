"""Repository-wide rules: lint and format clean, and the layers import one way only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE_MODULES = sorted(
    f"labeldesk.core.{p.stem}"
    for p in (ROOT / "labeldesk" / "core").glob("*.py")
    if p.stem != "__init__"
)


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_lint_is_clean() -> None:
    r = _ruff("check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_clean() -> None:
    r = _ruff("format", "--check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_core_never_imports_qt() -> None:
    assert len(CORE_MODULES) >= 10
    loaded = _loaded_after("\n".join(f"import {m}" for m in CORE_MODULES))
    assert not {m for m in loaded if m.startswith(("PySide6", "shiboken6"))}


def test_core_does_not_load_torch_or_ultralytics_on_import() -> None:
    loaded = _loaded_after("\n".join(f"import {m}" for m in CORE_MODULES))
    assert "torch" not in loaded
    assert "ultralytics" not in loaded


@pytest.mark.parametrize("layer", ["core", "app"])
def test_lower_layers_do_not_import_upper_ones(layer: str) -> None:
    forbidden = {
        "core": ("labeldesk.app", "labeldesk.gui", "labeldesk.cli", "PySide6"),
        "app": ("labeldesk.gui", "labeldesk.cli"),
    }[layer]
    for path in (ROOT / "labeldesk" / layer).rglob("*.py"):
        text = path.read_text()
        for name in forbidden:
            assert f"import {name}" not in text and f"from {name}" not in text, (path, name)
