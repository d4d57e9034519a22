"""Which flavour of LabelDesk is installed: *full* (torch, Ultralytics) or *review* (neither).

The review flavour (``packaging/requirements-review.txt``, the ``review`` desktop bundle) runs
``.onnx`` models through onnxruntime and numpy (:mod:`.onnx_decode`): pre-labelling,
suggestions, evaluation and export work; training, ``.pt`` models and ONNX export need the
full flavour. The check finds the packages without importing them (torch alone takes seconds),
so menus can ask it while they are built.
"""

from __future__ import annotations

import importlib.util

#: What to tell a user who asks the review flavour for something only the full one does.
FULL_ONLY = (
    "needs the full flavour of LabelDesk (torch and Ultralytics): `pip install labeldesk`, "
    "or the full desktop bundle"
)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_full() -> bool:
    """True when torch and Ultralytics can be imported here (training, ``.pt`` models)."""
    return _importable("torch") and _importable("ultralytics")
