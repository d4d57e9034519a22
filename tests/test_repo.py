"""Repository-wide rules: lint and format clean, and the layers import one way only."""

from __future__ import annotations

import os
import shutil
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


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the contracts in pyproject.toml on the package under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )


def test_import_contracts_are_kept() -> None:
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # a relative import from a lower layer into a higher one (text matching missed this)
        (
            "core/canonical.py",
            "from ..gui import launcher as _gui_launcher",
            "gui and cli sit on app",
        ),
        ("app/review.py", "import PySide6.QtCore as _qt", "core and app know nothing of Qt"),
        # the window calling core directly instead of an app operation, even lazily
        (
            "gui/help.py",
            "def _f():\n    from labeldesk.core import versions\n",
            "gui reaches core only",
        ),
        ("core/manifest.py", "def _f():\n    import torch\n", "torch, ultralytics and cv2"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    # The contracts must bite: the same check on a copy of the package with one bad import.
    shutil.copytree(
        ROOT / "labeldesk", tmp_path / "labeldesk", ignore=shutil.ignore_patterns("__pycache__")
    )
    target = tmp_path / "labeldesk" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0, r.stdout
    assert contract in r.stdout and "BROKEN" in r.stdout, r.stdout
