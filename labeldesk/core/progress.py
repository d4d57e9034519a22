"""Progress and cancel callbacks shared by every long operation.

Core functions take ``progress(done, total, what)`` and ``cancel() -> bool``; the CLI turns them
into a terminal bar and the GUI into a progress dialog. Neither needs to know the other exists.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import CancelledError

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]


def no_progress(done: int, total: int, what: str) -> None:
    return None


def never_cancel() -> bool:
    return False


def check_cancel(cancel: CancelFn | None) -> None:
    if cancel is not None and cancel():
        raise CancelledError()
