"""``labeldesk report``: one self-contained HTML file for people who do not run the app.

Why one file with everything inlined (CSS, plots as base64 PNG): it can be attached to a
ticket, archived as a CI artefact or opened offline, and it never breaks because a link moved.
It references nothing outside itself. Every text that comes from users (messages, names, notes,
tags, class names, file names) goes through :func:`html.escape`.

Matplotlib is imported inside the plotting function, with the Agg canvas and no pyplot, so the
rest of LabelDesk never pays for it and no global backend state is touched.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.project import Project, now_iso
from ..store.versions import Version, all_versions, head
from ..timestamps import format_time
from .agreement import TREND_LABELS, AgreementReport, agreement
from .drift import DriftReport, drift
from .evaluation import Evaluation, list_evaluations

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#202124}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.approved{color:#188038}.rejected{color:#c5221f}.fail{color:#c5221f;font-weight:bold}
.muted{color:#777}img{max-width:100%}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if v == -1:
        return "n/a"
    return f"{v:.{digits}f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int]) -> str:
    head_html = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head_html}</tr>{''.join(body)}</table>"


# --- plots ---------------------------------------------------------------------------------


def _png(
    xlabels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    bars: bool = False,
    hline: float | None = None,
    unit_range: bool = False,
) -> str:
    """A small chart as an ``<img>`` holding a base64 PNG: one value per x label per series
    (None: no value there), lines with markers, or bars for a single series."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(xlabels)))
    for label, values in series.items():
        ys = [float("nan") if v is None else float(v) for v in values]
        if bars:
            ax.bar(xs, ys, label=label, color="#4285f4")
        else:
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xticks(xs, [str(x) for x in xlabels], rotation=30, ha="right")
    if hline is not None:
        ax.axhline(hline, color="#c5221f", linestyle="--", linewidth=1, label=f"limit {hline:g}")
    if unit_range:
        ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1 or hline is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(title)}" src="data:image/png;base64,{data}">'


def _time(iso: str | None) -> str:
    """``2026-11-26 23:34 UTC``, the full timestamp on hover: minutes are what people read."""
    if not iso:
        return ""
    return f'<span title="{esc(iso)}">{esc(format_time(iso))}</span>'


def _version_label(v: Version) -> str:
    """A version on a chart axis: its first tag, else its number and short id."""
    return v.tags[0] if v.tags else f"#{v.seq} {v.short[:7]}"


# --- sections ------------------------------------------------------------------------------


def _versions_section(project: Project, versions: list[Version]) -> str:
    from .watch_status import status_text, watch_status

    watched = watch_status(project)
    rows = []
    for v in reversed(versions):
        status = f'<span class="{esc(v.status)}">{esc(v.status)}</span>'
        if v.status_by:
            status += f"<br><span class='muted'>{esc(v.status_by)} {_time(v.status_at)}</span>"
        rows.append(
            [
                f"<code>{esc(v.short)}</code>",
                v.seq,
                _time(v.created),
                esc(v.author),
                esc(v.kind),
                status,
                esc(", ".join(v.tags)),
                esc(v.message),
                v.n_images,
                v.n_boxes,
                _watch_cell(status_text(watched.get(v.id, []))),
            ]
        )
    out = "<h2>Versions</h2>" + _table(
        [
            "version",
            "#",
            "created",
            "author",
            "kind",
            "status",
            "tags",
            "message",
            "images",
            "boxes",
            "watched models",
        ],
        rows,
        {1, 8, 9},
    )
    decisions = project.db.execute(
        "SELECT version, decision, by, at, note FROM decision ORDER BY id DESC"
    ).fetchall()
    if decisions:
        out += "<h3>Approvals and rejections</h3>" + _table(
            ["version", "decision", "by", "at", "note"],
            (
                [
                    f"<code>{esc(v[:12])}</code>",
                    f'<span class="{esc(d)}">{esc(d)}</span>',
                    esc(b),
                    _time(a),
                    esc(n),
                ]
                for v, d, b, a, n in decisions
            ),
            set(),
        )
    return out


def _watch_cell(text: str) -> str:
    """A version's watched-model figures, regressions in the failure colour."""
    return "<br>".join(
        f"<span class='fail'>{esc(t)}</span>" if "REGRESSION" in t else esc(t)
        for t in text.split("; ")
        if t
    )


def _source_label(e: Evaluation) -> str:
    label = f"{e.source_kind} {Path(e.source_name).name} ({e.source_hash[:8]})"
    predict = e.params.get("source", {}).get("predict")
    if e.source_kind == "model" and isinstance(predict, dict):  # one model, several sizes
        label += f" @{predict.get('imgsz')}"
    return label


def _evaluations_section(versions: list[Version], evals: list[Evaluation]) -> str:
    out = "<h2>Evaluations</h2>"
    if not evals:
        return out + "<p class='muted'>No evaluations stored yet: see labeldesk validate.</p>"
    by_id = {v.id: v for v in versions}
    latest: dict[tuple[str, str], float] = {}  # (source, version) -> newest figure
    for e in evals:
        if e.subset == "all" and e.version in by_id:
            latest[(_source_label(e), e.version)] = e.summary.get("map50_95", -1.0)
    shown = sorted({v for _, v in latest}, key=lambda v: by_id[v].seq)
    series = {
        label: [latest.get((label, v)) for v in shown] for label in sorted({s for s, _ in latest})
    }
    if series:
        xlabels = [_version_label(by_id[v]) for v in shown]
        out += _png(
            xlabels,
            {k: [None if y is None or y < 0 else y for y in ys] for k, ys in series.items()},
            title="mAP@[.50:.95] per version (subset all)",
            ylabel="mAP50-95",
            unit_range=True,
        )
    recent = evals[-30:]
    out += "<h3>Recent evaluations</h3>" + _table(
        [
            *("id", "created", "version", "subset", "source", "images", "mAP50-95", "mAP50"),
            *("P", "R", "baseline", "drop", "gate"),
        ],
        (
            [
                e.id,
                _time(e.created),
                f"<code>{esc(e.version[:12])}</code>",
                esc(e.subset_label),
                esc(_source_label(e))
                + (" <span class='muted'>(baseline)</span>" if e.role == "baseline" else ""),
                e.n_images,
                _num(e.summary.get("map50_95")),
                _num(e.summary.get("map50")),
                _num(e.metrics.get("precision")),
                _num(e.metrics.get("recall")),
                e.baseline or "",
                _num(e.metric_drop, 4) if e.baseline else "",
                ""
                if e.passed is None
                else ("pass" if e.passed else "<span class='fail'>FAIL</span>"),
            ]
            for e in reversed(recent)
        ),
        {0, 5, 6, 7, 8, 9, 10, 11},
    )
    last = next((e for e in reversed(evals) if e.role == "candidate"), evals[-1])
    out += (
        f"<h3>Per class: evaluation {last.id} ({esc(last.subset_label)}, "
        f"<code>{esc(last.version[:12])}</code>, {esc(_source_label(last))})</h3>"
    )
    out += _table(
        ["class", "labels", "detections", "AP", "AP50", "P", "R", "TP", "FP", "FN"],
        (
            [
                esc(c.get("name", c["category_id"])),
                c["labels"],
                c["detections"],
                _num(c["ap"]),
                _num(c["ap50"]),
                _num(c["precision"]),
                _num(c["recall"]),
                c["tp"],
                c["fp"],
                c["fn"],
            ]
            for c in last.metrics["per_class"]
        ),
        set(range(1, 10)),
    )
    return out


def _training_section(project: Project, versions: list[Version]) -> str:
    """Every training run: which version it learned from, how, and what it produced."""
    from ..training.promote import release_model
    from ..training.runs import all_runs

    runs = all_runs(project.db)
    out = "<h2>Training</h2>"
    if not runs:
        return out + "<p class='muted'>No model has been trained in this project.</p>"
    labels = {v.id: _version_label(v) for v in versions}
    names = dict(project.db.execute("SELECT id, name FROM model").fetchall())
    release = release_model(project)
    rows = []
    for r in reversed(runs):
        last = r.epochs[-1]["metrics"] if r.epochs else {}
        model = names.get(r.model or "", "")
        if r.model and r.model == release:
            model += " (release)"
        base = r.base if r.base_kind == "config" else names.get(r.base, r.base[:12])
        rows.append(
            (
                esc(r.id),
                esc(r.status),
                esc(model),
                esc(labels.get(r.version, r.version[:12])),
                esc(base),
                esc(r.epochs_done),
                _num(last.get("metrics/mAP50(B)")),
                _num(last.get("metrics/mAP50-95(B)")),
                esc(r.params.get("imgsz")),
                esc(r.seed),
                esc(", ".join(f"{k} {v}" for k, v in sorted(r.libs.items()))),
                _time(r.started),
                esc(r.author),
            )
        )
    return out + _table(
        (
            "run",
            "status",
            "model",
            "trained on",
            "base",
            "epochs",
            "val mAP50",
            "val mAP50-95",
            "imgsz",
            "seed",
            "libraries",
            "started",
            "by",
        ),
        rows,
        {5, 6, 7, 8, 9},
    )


def _agreement_section(report: AgreementReport) -> str:
    out = "<h2>Review agreement</h2>"
    if not report.sessions:
        return out + "<p class='muted'>No committed review session had model pre-labels.</p>"
    trend = report.trend()
    series = {
        label: [t[key] for t in trend]
        for key, label in TREND_LABELS.items()
        if any(t[key] is not None for t in trend)
    }
    out += _png(
        [f"s{t['session']}" for t in trend],
        series,
        title="Pre-label agreement per session (commit order)",
        ylabel="rate",
        unit_range=True,
    )
    out += _table(
        [
            *("session", "version", "model", "accepted", "edited", "mean IoU", "rejected"),
            *("pending", "added (missed)", "acceptance"),
        ],
        (
            [
                s.session,
                f"<code>{esc(s.version[:12])}</code>",
                esc(s.model_name or s.model),
                s.totals.accepted,
                s.totals.edited,
                _num(s.totals.mean_iou),
                s.totals.rejected,
                s.totals.pending,
                s.totals.added,
                _num(s.totals.acceptance_rate),
            ]
            for s in report.sessions
        ),
        {0, 3, 4, 5, 6, 7, 8, 9},
    )
    return out


def drift_reference(project: Project, versions: list[Version]) -> Version | None:
    """What main is compared with: the newest approved version other than main, else main's
    first parent; None when main has neither."""
    main_id = head(project.db)
    if main_id is None:
        return None
    approved = [v for v in versions if v.status == "approved" and v.id != main_id]
    if approved:
        return approved[-1]
    main = next(v for v in versions if v.id == main_id)
    return next((v for v in versions if main.parents and v.id == main.parents[0]), None)


def _drift_section(report: DriftReport | None) -> str:
    out = "<h2>Drift</h2>"
    if report is None:
        return out + "<p class='muted'>main has no parent or approved version to compare.</p>"
    out += (
        f"<p>main <code>{esc(report.b.short)}</code> against <code>{esc(report.a.short)}</code> "
        f"({esc(report.a.message)}): <b>{esc(report.verdict())}</b></p>"
    )
    names = [f.name for f in report.features if f.score is not None]
    scores = [f.score for f in report.features if f.score is not None]
    if names:
        out += _png(
            names,
            {"PSI": scores},
            title="Population stability index per feature",
            ylabel="PSI",
            bars=True,
            hline=report.threshold,
        )
    out += _table(
        ["feature", "PSI", "verdict"],
        (
            [
                esc(f.name),
                _num(f.score),
                "<span class='fail'>drift</span>" if f.drifted(report.threshold) else "ok",
            ]
            for f in report.features
        ),
        {1},
    )
    return out


# --- the file ------------------------------------------------------------------------------


def render(
    project: Project, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None
) -> str:
    """The report as HTML text."""
    versions = all_versions(project.db)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>LabelDesk report: {esc(project.root.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>LabelDesk report: {esc(project.root.name)}</h1>",
        f"<p class='muted'>Generated {_time(now_iso())} by {esc(project.user)}.</p>",
    ]
    if not versions:
        parts.append("<p>This project has no versions yet.</p></body></html>")
        return "".join(parts)
    parts.append(_versions_section(project, versions))
    check_cancel(cancel)
    parts.append(_evaluations_section(versions, list_evaluations(project)))
    check_cancel(cancel)
    parts.append(_training_section(project, versions))
    parts.append(_agreement_section(agreement(project)))
    ref = drift_reference(project, versions)
    main_id = head(project.db)
    d = None
    if ref is not None and main_id is not None:
        d = drift(project, ref.id, main_id, progress=progress, cancel=cancel)
    parts.append(_drift_section(d))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    project: Project,
    out: Path | str,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Write the report to ``out`` (a temp file renamed into place: never half a file)."""
    out = Path(out).absolute()
    text = render(project, progress=progress, cancel=cancel)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
