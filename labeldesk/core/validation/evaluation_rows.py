"""Stored evaluations, read back: the ``evaluation`` table as :class:`Evaluation` rows.

Kept apart from :mod:`.evaluation` (which computes them with numpy) so that reading the history
— ``labeldesk log``'s watched-model column, the report, the window's tables — does not import
the metric engine.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any, NamedTuple

from ..store.db import named
from ..store.project import Project


class Evaluation(NamedTuple):
    """One stored row of ``evaluation`` (docs/database.md).

    A NamedTuple, not a dataclass, so that ``labeldesk log`` (which shows watched figures)
    starts without importing ``dataclasses`` (see core/errors.py)."""

    id: int
    run: str
    role: str  # candidate / baseline
    version: str
    subset: str
    n_images: int
    source_kind: str
    source_hash: str
    source_name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    metric: str
    value: float
    baseline: int | None
    baseline_value: float | None
    metric_drop: float | None
    max_drop: float | None
    passed: bool | None
    created: str
    author: str

    @property
    def summary(self) -> dict[str, float]:
        return self.metrics["summary"]

    @property
    def subset_label(self) -> str:
        """The subset for people: ``changed-since=<64 hex>`` stored (the lineage), shown short."""
        return _FULL_ID.sub(lambda m: m.group(0)[:12], self.subset)

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


_FULL_ID = re.compile(r"\b[0-9a-f]{64}\b")


_EVAL_COLUMNS = (
    "id, run, role, version, subset, n_images, source_kind, source_hash, source_name, params, "
    "metrics, metric, value, baseline, baseline_value, metric_drop, max_drop, passed, created, "
    "author"
)


def _row(r: sqlite3.Row) -> Evaluation:
    """A ``SELECT {_EVAL_COLUMNS}`` row read with :func:`~.db.named`."""
    values = dict(zip(r.keys(), r, strict=True))
    values["params"], values["metrics"] = json.loads(r["params"]), json.loads(r["metrics"])
    values["passed"] = None if r["passed"] is None else bool(r["passed"])
    return Evaluation(**values)


def list_evaluations(
    project: Project,
    *,
    version: str | None = None,
    source_hash: str | None = None,
    run: str | None = None,
    role: str | None = None,
    subset: str | None = None,
    trigger: str | None = None,
    limit: int | None = None,
) -> list[Evaluation]:
    """Stored evaluations, oldest first (optionally of one version, source, run, role, subset
    or ``params.trigger``).

    The filters run in SQL so that only the rows asked for have their metrics JSON parsed: on a
    long history that parsing, not the query, is what costs.
    """
    sql, args = f"SELECT {_EVAL_COLUMNS} FROM evaluation WHERE 1", []
    filters = (
        ("version", version),
        ("source_hash", source_hash),
        ("run", run),
        ("role", role),
        ("subset", subset),
        ("json_extract(params, '$.trigger')", trigger),
    )
    for col, value in filters:
        if value is not None:
            sql += f" AND {col} = ?"
            args.append(value)
    sql += " ORDER BY id"
    rows = [_row(r) for r in named(project.db, sql, args)]
    return rows[-limit:] if limit else rows
