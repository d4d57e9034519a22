"""Terminal output for the CLI: tables, JSON, a progress bar and error messages.

Kept free of any core import so ``labeldesk --help`` stays fast.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO


def emit_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(value, out, indent=2, ensure_ascii=False, sort_keys=False)
    out.write("\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


class ProgressBar:
    """A one-line bar on stderr, redrawn at most 10 times a second; silent when not a terminal."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - 50))
        frac = done / total if total else 1.0
        filled = int(frac * width)
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        self.stream.write(
            f"\r{what[:20]:<20} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done}/{total} {rate:6.1f}/s eta {eta:4.0f}s"
        )
        self.stream.flush()
        self.drawn = True

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # end the bar's line even when the work failed or was cancelled

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def number(text: str) -> float:
    """argparse ``type`` of every numeric option: :func:`labeldesk.core.validators.number`
    (finite numbers only), imported when an option is parsed so ``--help`` loads no core.

    Its name is what argparse says: "invalid number value: 'nan'", exit status 2.
    """
    from labeldesk.core.validators import number as finite

    return finite(text)
