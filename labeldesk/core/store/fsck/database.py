"""Checks of the database file itself: its pages, its foreign keys, its schema and triggers."""

from __future__ import annotations

import re
import sqlite3

from ..schema import expected_schema
from .base import Context


def check_database_pages(ctx: Context) -> None:
    """The database file is sound: ``PRAGMA integrity_check`` says ``ok``.

    A malformed page makes SQLite raise instead of answering; that is reported with what it
    said, like any other finding.
    """
    try:
        rows = ctx.db.execute("PRAGMA integrity_check(100)").fetchall()
        lines = [line for r in rows for line in str(r[0]).splitlines() if line.strip()]
    except sqlite3.DatabaseError as e:
        lines = [f"{e} (integrity_check itself could not finish)"]
    if lines != ["ok"]:
        shown = "; ".join(lines[:10])
        more = f" (and {len(lines) - 10} more)" if len(lines) > 10 else ""
        ctx.error(f"database integrity_check failed: {shown}{more}")


def check_foreign_keys(ctx: Context) -> None:
    """Every reference between rows leads to a row: ``PRAGMA foreign_key_check`` is empty.

    LabelDesk writes with foreign keys on; a shell (where they are off by default) can delete
    a version that decisions, refs or sessions still name.
    """
    for table, rowid, parent, _fk in ctx.db.execute("PRAGMA foreign_key_check"):
        ctx.error(f"table {table} row {rowid}: refers to a missing row of {parent}")


def _normal(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def check_schema_and_triggers(ctx: Context) -> None:
    """Every table, index and trigger LabelDesk created is present, with its original SQL.

    Triggers are what refuses changes to history; ``DROP TRIGGER`` or a table rebuilt by
    ``sqlite-utils transform`` (which drops them silently) leaves the history unprotected, so
    their absence is damage even before anything else was changed.
    """
    expected = expected_schema()
    found = {
        (t, n): sql
        for t, n, sql in ctx.db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND type IN ('table', 'index', 'trigger') AND tbl_name != '_sqlite_migrations'"
        )
    }
    for (kind, name), sql in sorted(expected.items()):
        have = found.get((kind, name))
        if have is None:
            why = " (history is no longer protected against it)" if kind == "trigger" else ""
            ctx.error(f"{kind} {name} is missing{why}")
        elif _normal(have) != _normal(sql):
            hint = " (rebuilt outside LabelDesk, e.g. by `sqlite-utils transform`?)"
            ctx.error(f"{kind} {name} differs from the one LabelDesk created{hint}")
    for kind, name in sorted(found.keys() - expected.keys()):
        if kind == "trigger":
            ctx.note(f"trigger {name} was not created by LabelDesk")
