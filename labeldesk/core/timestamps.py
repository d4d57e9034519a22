"""The one way LabelDesk shows a time to a person.

Times are stored as ISO 8601 UTC with microseconds (``2026-11-26T15:03:13.326784Z``, see
:func:`.project.now_iso`). Shown, they are cut to the minute and always name their zone:
``2026-11-26 15:03 UTC``. UTC is the rule everywhere (the CLI's tables, the window, the HTML
report): a project is shared between machines and a report is read in other time zones, so
the same row must read the same for everyone, and a time without its zone is ambiguous.
``zone="local"`` gives the local time with its offset (``2026-11-26 16:03 +01:00``) for a
caller that asks for it explicitly.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

Zone = Literal["utc", "local"]


def format_time(ts: str | None, *, zone: Zone = "utc") -> str:
    """A stored timestamp to the minute with its zone; ``""`` for no timestamp.

    ``ts`` is ISO 8601; one without an offset is taken as UTC (what LabelDesk stores).
    Minutes are cut, not rounded, so a time never reads as later than it was.
    """
    if not ts:
        return ""
    if zone == "utc" and len(ts) >= 17 and ts[10] == "T" and ts.endswith("Z"):
        # The stored form: no parsing needed (tables show thousands of these).
        return f"{ts[:10]} {ts[11:16]} UTC"
    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    if zone == "utc":
        return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") + " UTC"
    if zone == "local":
        local = t.astimezone()
        offset = local.strftime("%z")  # +0100
        return f"{local.strftime('%Y-%m-%d %H:%M')} {offset[:3]}:{offset[3:]}"
    raise ValueError(f"zone must be 'utc' or 'local', got {zone!r}")
