"""What the validation panel shows, computed without Qt.

:func:`labeldesk.app.validation.panel_data` reads everything the panel needs in one go on
the reader lane; the functions here turn those records into chart series and table rows.
Keeping them free of widgets keeps the panel a thin view, and lets tests check the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labeldesk.app.words import minute_text, trend_labels

from .charts import Series

if TYPE_CHECKING:  # imported when first used: the window opens without the evaluation stack
    from labeldesk.core.store.versions import Version
    from labeldesk.core.validation.agreement import AgreementReport, Counts
    from labeldesk.core.validation.evaluation import Evaluation

#: Labels of the metric keys (``labeldesk.core.validation.metrics.STAT_KEYS``) as people write them.
METRIC_LABELS = {
    "map50_95": "mAP50-95",
    "map50": "mAP50",
    "map75": "mAP75",
    "map_small": "mAP small",
    "map_medium": "mAP medium",
    "map_large": "mAP large",
    "mar1": "mAR@1",
    "mar10": "mAR@10",
    "mar100": "mAR@100",
    "mar_small": "mAR small",
    "mar_medium": "mAR medium",
    "mar_large": "mAR large",
}
#: The agreement figures drawn per session, with their legend labels.
TREND_FIGURES = trend_labels()


# --- labels --------------------------------------------------------------------------------


def version_label(v: Version) -> str:
    """A version as the chart's x axis names it: its first tag, else its short id."""
    return v.tags[0] if v.tags else v.short


def version_choice(v: Version, head_id: str | None = None) -> str:
    """A version as a combo box lists it: short id, tags, main, and its message."""
    marks = [*v.tags, *(["main"] if v.id == head_id else [])]
    text = v.short + (f" ({', '.join(marks)})" if marks else "")
    message = v.message.splitlines()[0] if v.message else ""
    return f"{text} — {message[:48]}" if message else text


def _predict(e: Evaluation) -> dict[str, Any] | None:
    predict = e.params.get("source", {}).get("predict")
    return predict if isinstance(predict, dict) else None


def source_key(e: Evaluation) -> tuple[str, str]:
    """What makes one line: the source's hash, and for a model its inference size (the same
    weights at another size are another series; a predictions file is one series)."""
    predict = _predict(e)
    size = str(predict.get("imgsz")) if e.source_kind == "model" and predict else ""
    return e.source_hash, size


def source_label(e: Evaluation) -> str:
    name = Path(e.source_name).name if e.source_kind == "predictions" else e.source_name
    _, size = source_key(e)
    return f"{name} @{size}" if size else name


def usual_imgsz(evaluations: Sequence[Evaluation], watched: Sequence[tuple[Any, Any]]) -> dict:
    """model id -> the inference size to offer for it: its watch setting, else the size of its
    newest evaluation. A model trained small scores far worse at another size, so the size
    people already judge it at is the one to compare with."""
    sizes: dict[str, int] = {}
    for e in evaluations:  # oldest first: the newest wins
        predict = _predict(e)
        if e.source_kind == "model" and predict and isinstance(predict.get("imgsz"), int):
            sizes[e.source_hash] = predict["imgsz"]
    for model, settings in watched:
        sizes[model.id] = settings.imgsz
    return sizes


def metric_value(e: Evaluation, metric: str) -> float | None:
    """The figure, or None where it is undefined (COCO's -1: no labels)."""
    v = e.summary.get(metric)
    return None if v is None or v < 0 else float(v)


# --- models tab ----------------------------------------------------------------------------


def model_series(
    versions: Sequence[Version], evaluations: Sequence[Evaluation], metric: str
) -> tuple[list[str], list[Series]]:
    """One series per source over the versions it was evaluated on, in commit order.

    Only candidate rows on all images count (a baseline row repeats an older figure, a subset
    is another population); of several runs on one version the newest wins. A point whose gate
    failed (``passed is False``) is marked; each point's key is its evaluation id. The x axis
    holds only versions with at least one point, so a long history without evaluations does
    not squash the chart.
    """
    order = {v.id: i for i, v in enumerate(versions)}
    newest: dict[tuple[tuple[str, str], str], Evaluation] = {}
    labels: dict[tuple[str, str], str] = {}
    for e in evaluations:  # oldest first: the last one wins
        if e.role != "candidate" or e.subset != "all" or e.version not in order:
            continue
        key = source_key(e)
        newest[(key, e.version)] = e
        labels[key] = source_label(e)
    shown = sorted({vid for _, vid in newest}, key=order.__getitem__)
    pos = {vid: i for i, vid in enumerate(shown)}
    by_id = {v.id: v for v in versions}
    taken: dict[str, int] = {}
    for label in labels.values():
        taken[label] = taken.get(label, 0) + 1
    series = []
    for key in sorted(labels, key=lambda k: (labels[k], k)):
        label = labels[key] if taken[labels[key]] == 1 else f"{labels[key]} ({key[0][:8]})"
        s = Series(label)
        for vid in shown:
            e = newest.get((key, vid))
            if e is None:
                continue
            value = metric_value(e, metric)
            if e.passed is False:
                s.failed.append(len(s.xs))
            s.xs.append(pos[vid])
            s.ys.append(float("nan") if value is None else value)
            s.keys.append(e.id)
        series.append(s)
    return [version_label(by_id[v]) for v in shown], series


# --- agreement tab -------------------------------------------------------------------------


def trend_series(report: AgreementReport) -> tuple[list[str], list[Series]]:
    """One series per agreement figure over the sessions, in commit order."""
    trend = report.trend()
    xlabels = [f"#{t['session']} {t['version'][:7]}" for t in trend]
    out = []
    for key, label in TREND_FIGURES.items():
        s = Series(label)
        for i, t in enumerate(trend):
            if t[key] is not None:
                s.xs.append(i)
                s.ys.append(float(t[key]))
                s.keys.append(t["session"])
        if s.xs:
            out.append(s)
    return xlabels, out


@dataclass(frozen=True)
class AgreementRow:
    """One row of the agreement table: a class of a session, or the session's total."""

    session: int
    version: str
    model: str
    name: str
    counts: Counts
    total: bool = False


def agreement_rows(report: AgreementReport) -> list[AgreementRow]:
    """Per session (newest first) its classes by name, then ``(all)``, as the CLI prints."""
    rows = []
    for s in reversed(report.sessions):
        model = s.model_name or s.model or ""
        for name, c in sorted(s.classes.items()):
            rows.append(AgreementRow(s.session, s.version, model, name, c))
        rows.append(AgreementRow(s.session, s.version, model, "(all)", s.totals, total=True))
    return rows


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure for a table cell: blank when there is none, n/a when undefined (-1)."""
    if value is None:
        return ""
    return "n/a" if value < 0 else f"{value:.{digits}f}"


# --- the evaluations table's words ----------------------------------------------------


def signed(drop: float | None) -> str:
    """A drop below the baseline (negative: an improvement)."""
    return "" if drop is None else f"{drop:+.4f}"


def gate(e: Any) -> str:
    if e.passed is None:
        return ""
    return "pass" if e.passed else "FAIL"


def eval_tooltip(e: Any) -> str:
    lines = [
        f"evaluation {e.id} (run {e.run[:8]}), {e.role}, by {e.author} at {minute_text(e.created)}",
        f"source: {e.source_kind} {e.source_name} ({e.source_hash[:12]})",
        f"version {e.version[:12]}, subset {e.subset_label}, {e.n_images} images",
    ]
    if e.baseline is not None:
        lines.append(
            f"gated on {e.metric}: {fmt(e.value, 4)} vs baseline #{e.baseline} "
            f"{fmt(e.baseline_value, 4)}, drop {signed(e.metric_drop) or 'n/a'} "
            f"(limit {fmt(e.max_drop, 4)})"
        )
    predict = e.params.get("source", {}).get("predict")
    if predict:
        lines.append("inference: " + ", ".join(f"{k} {v}" for k, v in sorted(predict.items())))
    return "\n".join(lines)
