"""The documentation keeps up with the code: every table and column of the schema is described
in docs/database.md, and every command of the CLI appears in the README."""

from __future__ import annotations

import re
from pathlib import Path

from labeldesk.core.store.project import Project

ROOT = Path(__file__).resolve().parents[1]


def _sections(text: str) -> dict[str, str]:
    """Table name -> the text of its ``### `name` …`` section (up to the next heading)."""
    out: dict[str, str] = {}
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        for name in re.findall(r"`([a-z_]+)`", heading):
            out.setdefault(name, body)
    return out


def test_every_table_and_column_is_documented(tmp_path) -> None:
    text = (ROOT / "docs" / "database.md").read_text(encoding="utf-8")
    sections = _sections(text)
    with Project.init(tmp_path / "p", user="lead") as p:
        tables = [
            r[0]
            for r in p.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name != '_sqlite_migrations'"
            )
        ]
        columns = {t: [r[1] for r in p.db.execute(f"PRAGMA table_info([{t}])")] for t in tables}
    missing_tables = [t for t in tables if t not in sections]
    assert not missing_tables, f"tables without a section in docs/database.md: {missing_tables}"
    missing = {
        t: [c for c in cols if f"`{c}`" not in sections[t] and f"`model.{c}`" not in text]
        for t, cols in columns.items()
    }
    missing = {t: cols for t, cols in missing.items() if cols}
    assert not missing, f"columns not described in their table's section: {missing}"


def test_every_cli_command_is_in_the_readme() -> None:
    from labeldesk.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    absent = [
        name
        for name in sub.choices
        if not re.search(rf"labeldesk[^\n`]* {name}\b|^  {name}\b", readme, re.M)
    ]
    assert not absent, f"commands the README never mentions: {absent}"
