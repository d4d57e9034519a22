"""What the watched models measured on each version, for the version list (`labeldesk log`, the
window's versions table).

Only reading stored rows: a module apart from :mod:`.watch` (which evaluates, and builds its
settings and results as dataclasses) so that listing versions imports nothing more than the
evaluation rows.
"""

from __future__ import annotations

from ..store.project import Project
from .evaluation_rows import Evaluation, list_evaluations

#: ``params.trigger`` of the evaluations a watched model's commit hook stores.
TRIGGER = "watch"


def fmt_value(v: float) -> str:
    return "n/a" if v == -1 else f"{v:.4f}"


def signed(v: float) -> str:
    return f"{v:+.4f}"


def watch_rows(
    project: Project, *, version: str | None = None, source_hash: str | None = None
) -> list[Evaluation]:
    """Stored watched evaluations (of the model on all images), oldest first."""
    return list_evaluations(
        project,
        version=version,
        source_hash=source_hash,
        role="candidate",
        subset="all",
        trigger=TRIGGER,
    )


def watch_status(project: Project) -> dict[str, list[Evaluation]]:
    """version id -> the newest watched evaluation of each model on it (model name order)."""
    newest: dict[tuple[str, str], Evaluation] = {}
    for e in watch_rows(project):
        newest[(e.version, e.source_hash)] = e  # oldest first: the last one wins
    out: dict[str, list[Evaluation]] = {}
    for (vid, _), e in sorted(newest.items(), key=lambda kv: kv[1].source_name):
        out.setdefault(vid, []).append(e)
    return out


def status_text(rows: list[Evaluation]) -> str:
    """A version's watched figures in a few words: ``shapes 0.412 ▼0.031`` per model."""
    parts = []
    for e in rows:
        text = f"{e.source_name} {e.metric} {fmt_value(e.value)}"
        if e.passed is False and e.metric_drop is not None:
            text += f" ▼{e.metric_drop:.4f} REGRESSION"
        elif e.metric_drop is not None:
            text += f" {signed(-e.metric_drop)}"
        parts.append(text)
    return "; ".join(parts)
