"""Repository-wide rules: lint, format and type check clean, and the layers import one way only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every module of core, in every subpackage (the training child runs as a process of its own).
CORE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "labeldesk" / "core").rglob("*.py")
    if p.stem != "__init__" and p.stem != "child"
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
        ("core/store/manifest.py", "def _f():\n    import torch\n", "torch, ultralytics and cv2"),
        # the store is core's bottom layer: it may not reach up into validation
        ("core/store/versions.py", "from ..validation import metrics as _m", "store at the bottom"),
        # the window calling core directly instead of an app operation, even lazily
        (
            "gui/help.py",
            "def _f():\n    from labeldesk.core.store import versions\n",
            "gui reaches core only",
        ),
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


# --- the type check ------------------------------------------------------------------------

# Cold, mypy takes 20-40 s on two busy cores (third-party stubs included); its incremental cache
# (.mypy_cache in the checkout, mypy's default) brings a rerun under a second. The limit is for
# a cold run on a loaded machine: it catches a hang, it times nothing.
_MYPY_TIMEOUT = 600


def _mypy(cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    """mypy with the project's [tool.mypy] (its ``files``: core, app and cli), run from ``cwd``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(cache),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def mypy_run() -> subprocess.CompletedProcess:
    return _mypy(ROOT, ROOT / ".mypy_cache")


@pytest.mark.timeout(_MYPY_TIMEOUT)
def test_core_app_and_cli_type_check(mypy_run: subprocess.CompletedProcess) -> None:
    assert mypy_run.returncode == 0, mypy_run.stdout + mypy_run.stderr
    # Every module of core, app and cli was checked: the config's files cannot silently shrink.
    n = sum(1 for d in ("core", "app", "cli") for _ in (ROOT / "labeldesk" / d).rglob("*.py"))
    assert f"no issues found in {n} source files" in mypy_run.stdout, mypy_run.stdout


@pytest.mark.timeout(_MYPY_TIMEOUT)
@pytest.mark.parametrize(
    ("module", "code", "error"),
    [
        pytest.param(
            "core/canonical.py",
            "def _bad() -> int:\n    return 'one'\n",
            "[return-value]",
            id="core",
        ),
        # Optional handling: a value that may be None used as if it were not
        pytest.param(
            "app/rules.py",
            "def _bad(x: str | None) -> int:\n    return len(x)\n",
            "[arg-type]",
            id="app-optional",
        ),
    ],
)
def test_a_type_error_fails_the_type_check(
    tmp_path: Path,
    mypy_run: subprocess.CompletedProcess,
    module: str,
    code: str,
    error: str,
) -> None:
    # The check must bite: the same run on a copy of the package with one bad function. The
    # cache that ``mypy_run`` warmed is copied so only the changed module (and its dependents)
    # is checked again.
    shutil.copytree(
        ROOT / "labeldesk", tmp_path / "labeldesk", ignore=shutil.ignore_patterns("__pycache__")
    )
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", tmp_path / "cache")
    target = tmp_path / "labeldesk" / module
    target.write_text(target.read_text() + "\n\n" + code)
    r = _mypy(tmp_path, tmp_path / "cache")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"labeldesk/{module}:" in r.stdout and error in r.stdout, r.stdout
