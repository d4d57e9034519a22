"""Training-run records and lineage: which models learned from a version, and from what.

A run row is written when training starts (status ``running``) and closed once (``completed``,
``cancelled`` or ``failed``); a completed run names the model it produced, and that model's
``trained_on`` names the version. Both directions are plain SQL over these two links.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store.db import ProjectDatabase as Database

STATUSES = ("running", "completed", "cancelled", "failed")

_COLUMNS = (
    "id, name, version, split_hash, base_kind, base, params, seed, libs, epochs, status, "
    "error, started, finished, wall_s, author, model, partial, run_dir"
)


@dataclass
class TrainingRun:
    id: int
    name: str
    version: str
    split_hash: str
    base_kind: str
    base: str
    params: dict[str, Any]
    seed: int
    libs: dict[str, str]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    error: str | None = None
    started: str = ""
    finished: str | None = None
    wall_s: float | None = None
    author: str = ""
    model: str | None = None
    partial: str | None = None
    run_dir: str | None = None

    @property
    def epochs_done(self) -> int:
        return len(self.epochs)

    def to_json(self) -> dict[str, Any]:
        """Every field but the local ``run_dir``, and how many epochs finished."""
        out = {k: v for k, v in asdict(self).items() if k != "run_dir"}
        out["epochs_done"] = self.epochs_done
        return out


#: Columns stored as JSON text; every other column maps to its field as it is.
_JSON_COLUMNS = {"params": "{}", "libs": "{}", "epochs": "[]"}


def _run(r: dict[str, Any]) -> TrainingRun:
    return TrainingRun(
        **{k: json.loads(v or _JSON_COLUMNS[k]) if k in _JSON_COLUMNS else v for k, v in r.items()}
    )


def _rows(db: Database, where: str, params: list[Any]) -> list[TrainingRun]:
    cur = db.execute(f"SELECT {_COLUMNS} FROM training_run WHERE {where} ORDER BY id", params)
    names = [d[0] for d in cur.description]
    return [_run(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


def get_run(db: Database, run_id: int) -> TrainingRun | None:
    rows = _rows(db, "id = ?", [run_id])
    return rows[0] if rows else None


def all_runs(db: Database) -> list[TrainingRun]:
    return _rows(db, "1", [])


def runs_of_version(db: Database, version: str) -> list[TrainingRun]:
    """Every training run on ``version``, oldest first (completed or not)."""
    return _rows(db, "version = ?", [version])


def run_of_model(db: Database, model: str) -> TrainingRun | None:
    rows = _rows(db, "model = ?", [model])
    return rows[-1] if rows else None
