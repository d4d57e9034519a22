"""Evaluate detections on a version, keep the result with its lineage, and gate on a baseline.

Why it is built this way:

* The ground truth of a version is exactly what ``labeldesk export coco`` writes for it (same
  image ids, same file names, boxes clipped to the image the same way, the same ``area`` and
  ``iscrowd``), so results a tool produced on an export are judged against the labels that tool
  saw, and pycocotools run on that export gives the same figures (:mod:`.metrics` does the
  counting, to pycocotools' rules).
* Detections come from a :class:`Source`: a predictions file in the COCO results format today;
  a registered model later (its adapter only has to produce COCO-style results for the images
  of an :class:`ImageIndex` and call :func:`detections_from_results`). Everything downstream
  works on image hashes, so one source can be judged on several versions.
* Every evaluation is a row in ``evaluation`` (docs/database.md): version, subset, source kind
  and hash, parameters, all figures, time, author, and how it compared with its baseline. Rows
  are never changed afterwards, so the table is a history a CI gate can be audited from.
* Bad input (malformed JSON, missing keys, unknown images or classes, bad boxes) is reported as
  one itemised :class:`InputError` before anything is stored.

The parts along its seams: :mod:`.evaluation_index` (the images of a version and their ground
truth), :mod:`.evaluation_sources` (results files and sources), :mod:`.evaluation_rows` (stored
rows, read without numpy); this module subsets, evaluates, gates and stores. Their names are
re-exported here.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..defaults import DEFAULT_CONF, DEFAULT_MAX_DROP, DEFAULT_METRIC
from ..errors import InputError, LabelDeskError, Problem, capped
from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.db import named
from ..store.project import Project, now_iso
from ..store.version_diff import diff
from ..store.versions import MAIN, Version, resolve
from . import metrics
from .evaluation_index import GroundTruthArrays
from .evaluation_index import (
    ImageIndex as ImageIndex,  # re-exported: their old home
)
from .evaluation_index import ground_truth as ground_truth
from .evaluation_rows import _EVAL_COLUMNS, Evaluation, _row
from .evaluation_rows import list_evaluations as list_evaluations
from .evaluation_sources import Detections as Detections
from .evaluation_sources import FlatDetections, PredictionsFile
from .evaluation_sources import Source as Source
from .evaluation_sources import (
    detections_from_results as detections_from_results,
)
from .evaluation_sources import predictions_source as predictions_source
from .evaluation_sources import read_results_file as read_results_file

SOURCE_KINDS = ("model", "predictions")
#: one image's labels in :func:`ground_truth`: boxes xywh, classes, areas, iscrowd
GroundTruth = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: A drop within this of the limit counts as at the limit: figures are means of float sums, and
#: a regression of "exactly 0.02" must not fail on the 17th digit.
_DROP_SLACK = 1e-9


# --- subsets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subset:
    """Images evaluated together; ``name`` is stored with the evaluation (``all``,
    ``split=val``, ``tag=night``, ``changed-since=<id>``, or conditions joined by commas)."""

    name: str
    images: tuple[str, ...]


def changed_images(project: Project, since: str, version: Version) -> set[str]:
    """Images of ``version`` whose labels differ from those in ``since`` (or that it lacks)."""
    d = diff(project, since, version.id)
    return {
        i.image
        for i in d.images
        if i.kind == "added" or (i.kind == "changed" and i.old_annset != i.new_annset)
    }


def subsets(
    index: ImageIndex,
    *,
    changed: tuple[str, set[str]] | None = None,
    by_split: bool = False,
    by_tag: bool = False,
) -> list[Subset]:
    """The main subset (all images, or those in ``changed`` = (name, hashes)), then its slices
    by split (``split=none`` for images without one) and by tag, each in name order."""
    base = [s for s in index.shas if changed is None or s in changed[1]]
    prefix = changed[0] if changed else ""
    out = [Subset(prefix or "all", tuple(base))]

    def name(cond: str) -> str:
        return f"{prefix},{cond}" if prefix else cond

    if by_split:
        splits: dict[str, list[str]] = {}
        for s in base:
            splits.setdefault(index.entries[s].split or "none", []).append(s)
        order = ("train", "val", "test", "none")
        for split in sorted(splits, key=order.index):
            out.append(Subset(name(f"split={split}"), tuple(splits[split])))
    if by_tag:
        tags: dict[str, list[str]] = {}
        for s in base:
            for t in index.entries[s].tags:
                tags.setdefault(t, []).append(s)
        for t in sorted(tags):
            out.append(Subset(name(f"tag={t}"), tuple(tags[t])))
    return out


# --- evaluating ----------------------------------------------------------------------------


def evaluation_params(conf: float, index: ImageIndex, source: Source) -> dict[str, Any]:
    """Everything that decides the figures besides labels and detections, for the record."""
    from labeldesk import __version__

    return {
        "conf": conf,
        "iou_thresholds": [round(float(t), 2) for t in metrics.IOU_THRESHOLDS],
        "recall_points": len(metrics.RECALL_THRESHOLDS),
        "max_dets": list(metrics.MAX_DETS),
        "area_ranges": dict(zip(metrics.AREA_LABELS, metrics.AREA_RANGES, strict=True)),
        "categories": sorted(int(c["id"]) for c in index.version.classes),
        "image_ids": "labeldesk export coco",
        "engine": "labeldesk.core.validation.metrics",
        "labeldesk": __version__,
        "source": dict(source.params),
    }


@dataclass(frozen=True)
class SubsetResult:
    subset: Subset
    result: metrics.EvalResult


def evaluate_subsets(
    project: Project,
    index: ImageIndex,
    source: Source,
    parts: Sequence[Subset],
    *,
    conf: float = DEFAULT_CONF,
    gt: Mapping[str, GroundTruth] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> list[SubsetResult]:
    """Evaluate ``source`` on each subset of ``index``'s version (nothing is stored).

    ``gt`` is :func:`ground_truth` of ``index`` when the caller already has it.
    """
    if gt is None:
        gt = ground_truth(project, index, cancel)
    dets = source.detections(index)
    ids = index.coco_ids
    cats = [int(c["id"]) for c in index.version.classes]
    out = []
    for k, part in enumerate(parts):
        check_cancel(cancel)
        result = metrics.evaluate_columns(
            [ids[s] for s in part.images],
            _label_columns(gt, part.images),
            _detection_columns(dets, part.images),
            category_ids=cats,
            conf=conf,
            cancel=cancel,
        )
        out.append(SubsetResult(part, result))
        if progress is not None:
            progress(k + 1, len(parts), f"evaluating {part.name}")
    return out


def _label_columns(gt: Mapping[str, GroundTruth], images: Sequence[str]) -> metrics.Labels:
    """The labels of ``images`` as the engine's columns (no per-image objects: one
    ``validate`` would otherwise build and check 5,000 of them per subset)."""
    if isinstance(gt, GroundTruthArrays) and images == gt.images:
        n, box, cls, area, crowd = gt.flat  # every image, in the index's order: as they are
        return metrics.Labels(np.repeat(np.arange(len(n)), n), box, cls, crowd, area)
    per = [gt[s] for s in images]
    counts = [len(g[1]) for g in per]
    return metrics.Labels(
        np.repeat(np.arange(len(per)), counts),
        np.concatenate([g[0] for g in per] or [np.zeros((0, 4))]),
        np.concatenate([g[1] for g in per] or [np.zeros(0, np.int64)]),
        np.concatenate([g[3] for g in per] or [np.zeros(0, bool)]),
        np.concatenate([g[2] for g in per] or [np.zeros(0)]),
    )


def _detection_columns(dets: Detections, images: Sequence[str]) -> metrics.Found:
    """The detections of ``images`` (those that have any) as the engine's columns."""
    if isinstance(dets, FlatDetections):
        shas, counts, box, cls, score = dets.flat
        at = [k for k, s in enumerate(images) if s in dets]
        if len(at) == len(shas) and all(images[k] == s for k, s in zip(at, shas, strict=True)):
            return metrics.Found(np.repeat(np.array(at, np.intp), counts), box, cls, score)
    have = [(k, dets[s]) for k, s in enumerate(images) if s in dets]
    return metrics.Found(
        np.repeat([k for k, _ in have], [len(d[1]) for _, d in have]).astype(np.intp),
        np.concatenate([d[0] for _, d in have] or [np.zeros((0, 4))]),
        np.concatenate([d[1] for _, d in have] or [np.zeros(0, np.int64)]),
        np.concatenate([d[2] for _, d in have] or [np.zeros(0)]),
    )


def _metrics_json(result: metrics.EvalResult, version: Version) -> dict[str, Any]:
    d = result.to_dict()
    names = version.class_names
    for row in d["per_class"]:
        row["name"] = names.get(row["category_id"], str(row["category_id"]))
    return d


# --- records -------------------------------------------------------------------------------


# --- validating: evaluate, compare, store --------------------------------------------------


def _drop_text(drop: float) -> str:
    """A drop with enough digits to be seen: a drop too small for four decimals is not 0."""
    return f"{drop:.4f}" if drop >= 5e-5 else f"{drop:.1e}"


@dataclass(frozen=True)
class ValidationReport:
    """What ``labeldesk validate`` did: the rows stored and the verdict of the gate."""

    run: str
    version: Version
    source: Source
    baseline_version: Version | None
    baseline_source: Source | None
    metric: str
    max_drop: float
    rows: list[Evaluation]
    baseline_rows: list[Evaluation]

    @property
    def compared(self) -> bool:
        return any(r.baseline is not None for r in self.rows)

    @property
    def failures(self) -> list[Evaluation]:
        """Rows whose metric dropped more than ``max_drop`` below their baseline's."""
        return [r for r in self.rows if r.passed is False]

    @property
    def passed(self) -> bool:
        return not self.failures

    def verdict(self) -> str:
        """One line per failing subset, or why the gate passed."""
        if not self.compared:
            return "no baseline: nothing to compare, the gate passes"
        if self.failures:
            return "\n".join(
                f"FAIL {r.metric} on {r.subset}: {r.value:.4f} vs baseline "
                f"{r.baseline_value:.4f}, a drop of {r.metric_drop:.4f} > {r.max_drop:.4f}"
                for r in self.failures
            )
        worst = max(
            (r for r in self.rows if r.metric_drop is not None),
            key=lambda r: r.metric_drop or 0.0,
            default=None,
        )
        if worst is None:
            return f"PASS: {self.metric} is undefined (no labels) where compared"
        drop = worst.metric_drop or 0.0
        if drop <= 0:
            return f"PASS: {self.metric} did not drop on any subset (limit {self.max_drop:.4f})"
        # Say the drop itself, where and from what: "dropped at most 0.0000" read as no drop.
        return (
            f"PASS: {self.metric} on {worst.subset} dropped by {_drop_text(drop)} "
            f"({worst.value:.4f} vs baseline {worst.baseline_value:.4f}), within the limit of "
            f"{self.max_drop:.4f}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "version": self.version.id,
            "source": self.source.to_json(),
            "baseline_version": self.baseline_version.id if self.baseline_version else None,
            "baseline_source": self.baseline_source.to_json() if self.baseline_source else None,
            "metric": self.metric,
            "max_drop": self.max_drop,
            "passed": self.passed,
            "verdict": self.verdict(),
            "evaluations": [r.to_json() for r in self.rows],
            "baseline_evaluations": [r.to_json() for r in self.baseline_rows],
        }


def check_options(metric: str, max_drop: float, conf: float) -> None:
    """Refuse impossible options with one itemised error."""
    problems = []
    if metric not in metrics.STAT_KEYS:
        problems.append(
            Problem("--metric", f"{metric!r} is not one of {', '.join(metrics.STAT_KEYS)}")
        )
    if not (math.isfinite(max_drop) and max_drop >= 0):
        problems.append(Problem("--max-drop", f"must be a number >= 0, got {max_drop}"))
    if not (math.isfinite(conf) and 0 <= conf <= 1):
        problems.append(Problem("--conf", f"must be between 0 and 1, got {conf}"))
    if problems:
        raise InputError("invalid options", problems)


def validate(
    project: Project,
    source: Source | Callable[[ImageIndex], Source],
    *,
    ref: str = MAIN,
    baseline_ref: str | None = None,
    baseline_source: Source | Callable[[ImageIndex], Source] | None = None,
    metric: str = DEFAULT_METRIC,
    max_drop: float = DEFAULT_MAX_DROP,
    conf: float = DEFAULT_CONF,
    changed_since: str | None = None,
    by_split: bool = False,
    by_tag: bool = False,
    only: tuple[str, set[str]] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ValidationReport:
    """Evaluate ``source`` on version ``ref`` (one row per subset), compare, store.

    The baseline is either the same source on version ``baseline_ref`` or ``baseline_source``
    on the same version; each of its subsets is evaluated and stored too (role ``baseline``),
    and a candidate row whose metric is more than ``max_drop`` below its baseline row's fails.
    A source may be given as a function of the version's :class:`ImageIndex` (a predictions
    file is read against the numbering of the version it is judged on). ``only`` = (name,
    image hashes) evaluates that subset instead of all images. Nothing is stored unless every
    input is valid.
    """
    check_options(metric, max_drop, conf)
    if baseline_ref is not None and baseline_source is not None:
        raise LabelDeskError("give one baseline: an earlier version, or other predictions")
    db = project.db
    since = resolve(db, changed_since) if changed_since is not None else None
    if baseline_ref is not None:
        resolve(db, baseline_ref)  # a bad REF fails before any work is done
    index = ImageIndex.build(project, ref, cancel)
    version = index.version
    for s in (source, baseline_source):
        if isinstance(s, PredictionsFile):
            s.prefetch()  # read while the labels are: bound to the index after them
    gt = ground_truth(project, index, cancel)
    src, base_src = _bind_sources(index, source, baseline_source)
    changed = None
    if since is not None:
        changed = (f"changed-since={since.id}", changed_images(project, since.id, version))
    elif only is not None:
        # A named subset chosen by the caller (``promote`` judges on images a model never saw).
        changed = only
    parts = subsets(index, changed=changed, by_split=by_split, by_tag=by_tag)
    params = evaluation_params(conf, index, src)
    if since is not None and changed is not None:
        params["changed_since"] = changed[0].split("=", 1)[1]

    results = evaluate_subsets(
        project, index, src, parts, conf=conf, gt=gt, progress=progress, cancel=cancel
    )
    baseline: list[SubsetResult] = []
    b_version: Version | None = None
    b_params: dict[str, Any] = {}
    if baseline_ref is not None:
        b_index = ImageIndex.build(project, baseline_ref, cancel)
        b_version = b_index.version
        b_parts = subsets(b_index, changed=changed, by_split=by_split, by_tag=by_tag)
        baseline = evaluate_subsets(
            project, b_index, src, b_parts, conf=conf, progress=progress, cancel=cancel
        )
        b_params = evaluation_params(conf, b_index, src) | {"image_ids_of": version.id}
    elif base_src is not None:
        b_version = version
        baseline = evaluate_subsets(
            project, index, base_src, parts, conf=conf, gt=gt, progress=progress, cancel=cancel
        )
        b_params = evaluation_params(conf, index, base_src)
    if since is not None and baseline:
        b_params["changed_since"] = params["changed_since"]
    if progress is not None:
        progress(1, 1, "storing evaluations")

    run = uuid.uuid4().hex
    b_src = src if baseline_ref is not None else base_src
    with project.transaction():
        b_rows = [
            insert_evaluation(project, run, "baseline", b_version, r, b_src, b_params, metric)
            for r in baseline
            if b_version is not None and b_src is not None
        ]
        by_subset = {r.subset: r for r in b_rows}
        rows = [
            insert_evaluation(
                project,
                run,
                "candidate",
                version,
                r,
                src,
                params,
                metric,
                baseline=by_subset.get(r.subset.name),
                max_drop=max_drop,
            )
            for r in results
        ]
    return ValidationReport(
        run,
        version,
        src,
        b_version,
        base_src if baseline_ref is None else None,
        metric,
        max_drop,
        rows,
        b_rows,
    )


def _bind_sources(
    index: ImageIndex,
    source: Source | Callable[[ImageIndex], Source],
    baseline: Source | Callable[[ImageIndex], Source] | None,
) -> tuple[Source, Source | None]:
    """Read both sources against the version, reporting the problems of both at once."""
    out: list[Source | None] = []
    problems: list[Problem] = []
    summaries: list[str] = []
    for s in (source, baseline):
        try:
            out.append(s if s is None or isinstance(s, Source) else s(index))
        except InputError as e:
            out.append(None)
            problems.extend(e.problems)
            summaries.append(e.summary)
    if problems:
        raise InputError("; ".join(summaries), capped(problems))
    assert out[0] is not None
    return out[0], out[1]


def insert_evaluation(
    project: Project,
    run: str,
    role: str,
    version: Version,
    r: SubsetResult,
    source: Source,
    params: Mapping[str, Any],
    metric: str,
    *,
    baseline: Evaluation | None = None,
    max_drop: float | None = None,
) -> Evaluation:
    """Store one subset's result (inside the caller's transaction), compared with ``baseline``.

    The comparison uses the baseline row's figure for ``metric``, whatever metric that row was
    gated on when it was stored.
    """
    value = r.result.summary[metric]
    b_value = drop = passed = None
    if baseline is not None:
        b_value = baseline.summary[metric]
        if value >= 0 and b_value >= 0:  # -1: undefined (no labels), not comparable
            drop = b_value - value
            passed = drop <= (max_drop or 0.0) + _DROP_SLACK
    values = [
        run,
        role,
        version.id,
        r.subset.name,
        len(r.subset.images),
        source.kind,
        source.hash,
        source.name,
        json.dumps(params, sort_keys=True),
        json.dumps(_metrics_json(r.result, version), sort_keys=True),
        metric,
        value,
        baseline.id if baseline else None,
        b_value,
        drop,
        max_drop if baseline else None,
        None if passed is None else int(passed),
        now_iso(),
        project.user,
    ]
    cur = project.db.execute(
        f"INSERT INTO evaluation ({_EVAL_COLUMNS}) VALUES (NULL{', ?' * len(values)})", values
    )
    row = named(
        project.db, f"SELECT {_EVAL_COLUMNS} FROM evaluation WHERE id = ?", [cur.lastrowid]
    ).fetchone()
    return _row(row)
