"""Which models were trained on which version: the lineage as the version history shows it.

Apart from :mod:`.runs` (the training runs, dataclasses) so that listing versions
(`labeldesk log`, the window's versions table) reads the one column it needs and imports no more.
"""

from __future__ import annotations

from ..store.db import ProjectDatabase as Database


def trained_per_version(db: Database) -> dict[str, list[str]]:
    """Version id -> names of the models trained on it (for ``log`` and the versions table)."""
    out: dict[str, list[str]] = {}
    for version, name in db.execute(
        "SELECT trained_on, name FROM model WHERE trained_on IS NOT NULL ORDER BY added_at"
    ):
        out.setdefault(version, []).append(name)
    return out
