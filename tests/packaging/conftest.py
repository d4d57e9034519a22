"""Bundle tests build the desktop app with PyInstaller (about a minute): opt-in only.

They run with ``-m bundle`` (``python -m pytest -m bundle tests/packaging``) or with
``LABELDESK_BUNDLE_TESTS=1``; otherwise they are skipped, so the default run stays fast.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expr = config.getoption("markexpr") or ""
    wanted = ("bundle" in expr and "not bundle" not in expr) or os.environ.get(
        "LABELDESK_BUNDLE_TESTS"
    ) == "1"
    if wanted:
        return
    skip = pytest.mark.skip(reason="builds the desktop bundle: run with -m bundle")
    for item in items:
        if "bundle" in item.keywords:
            item.add_marker(skip)
