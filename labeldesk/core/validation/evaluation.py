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
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..defaults import DEFAULT_CONF, DEFAULT_MAX_DROP, DEFAULT_METRIC
from ..errors import InputError, LabelDeskError, Problem
from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.manifest import Entry
from ..store.project import Project, now_iso
from ..store.versions import MAIN, Version, diff, resolve
from . import metrics
from .evaluation_rows import _EVAL_COLUMNS, Evaluation, _row
from .evaluation_rows import list_evaluations as list_evaluations  # re-exported: its old home

SOURCE_KINDS = ("model", "predictions")
#: A drop within this of the limit counts as at the limit: figures are means of float sums, and
#: a regression of "exactly 0.02" must not fail on the 17th digit.
_DROP_SLACK = 1e-9
_MAX_PROBLEMS = 50
_BATCH = 500

#: image hash -> (boxes (N, 4) xywh, classes (N,), scores (N,))
Detections = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


# --- the images of a version, named as the COCO export names them ----------------------------


@dataclass(frozen=True)
class ImageIndex:
    """The images of one version with the ids and file names ``labeldesk export coco`` gives.

    ``aliases`` are other names a results file may use for an image: the ``file_name`` it had in
    an imported dataset, the base name and the path of each file it was imported from. An alias
    shared by two images maps to ``None`` (ambiguous) and is refused when used.
    """

    version: Version
    shas: list[str]  # image-hash order
    entries: dict[str, Entry]
    sizes: dict[str, tuple[int, int]]  # upright width, height
    coco_ids: dict[str, int]
    names: dict[str, str]
    aliases: dict[str, str | None]
    plan: Any = field(repr=False)  # the formats ExportPlan the ids were derived from

    @classmethod
    def build(cls, project: Project, ref: str, cancel: CancelFn | None = None) -> ImageIndex:
        # The numbering must be the exporter's own, not a copy of it that could drift apart.
        from ..formats.coco import coco_image_ids
        from ..formats.plan import load_plan, unique_names

        plan = load_plan(project, ref, cancel)
        names, _ = unique_names(plan.images, key=str.casefold)
        ids, _ = coco_image_ids(plan.images, names)
        shas = [im.sha for im in plan.images]
        aliases: dict[str, str | None] = {}
        exported = set(names.values())

        def alias(name: str, sha: str) -> None:
            if name and name not in exported:
                aliases[name] = sha if aliases.get(name, sha) == sha else None

        for im in plan.images:
            meta_name = im.entry.meta_dict.get("file_name")
            if isinstance(meta_name, str):
                alias(meta_name, im.sha)
        for sha, path in _sources(project, shas):
            alias(path, sha)
            alias(Path(path).name, sha)
        return cls(
            version=plan.version,
            shas=shas,
            entries={im.sha: im.entry for im in plan.images},
            sizes={im.sha: (im.width, im.height) for im in plan.images},
            coco_ids=ids,
            names=names,
            aliases=aliases,
            plan=plan,
        )

    def _by_id(self) -> dict[int, str]:
        return {i: sha for sha, i in self.coco_ids.items()}

    def _by_name(self) -> tuple[dict[str, str], dict[str, str]]:
        exact = {n: sha for sha, n in self.names.items()}
        folded = {n.casefold(): sha for sha, n in self.names.items()}
        return exact, folded


def _sources(project: Project, shas: list[str]) -> Iterable[tuple[str, str]]:
    for i in range(0, len(shas), _BATCH):
        chunk = shas[i : i + _BATCH]
        marks = ",".join("?" * len(chunk))
        yield from project.db.execute(
            f"SELECT sha256, path FROM image_source WHERE sha256 IN ({marks}) ORDER BY id", chunk
        )


# --- ground truth --------------------------------------------------------------------------


def ground_truth(
    project: Project, index: ImageIndex, cancel: CancelFn | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """image hash -> (boxes xywh, classes, areas, iscrowd): the labels as the COCO export
    writes them.

    As the exporter: a box reaching outside its image is clipped to it, one entirely outside
    is left out, ``area`` is the one the dataset gave (a segmentation's, kept through import)
    or else w*h rounded to 4 decimals, and crowd regions are kept with ``iscrowd`` set, so
    the engine treats them as COCOeval does (detections on them are ignored, never missed).
    Classes missing from the version's class list are left out of the evaluation by the
    engine.
    """
    from ..boxes import default_area, is_crowd
    from ..canonical import round_coord
    from ..formats.common import check_pixel_box
    from ..formats.plan import BoxReader

    reader = BoxReader(project)
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for i in range(0, len(index.shas), _BATCH):
        check_cancel(cancel)
        chunk = index.shas[i : i + _BATCH]
        reader.prefetch(index.entries[s].annset for s in chunk)
        for sha in chunk:
            width, height = index.sizes[sha]
            boxes, classes, areas, crowd = [], [], [], []
            for d in reader.boxes(index.entries[sha].annset):
                x, y, w, h = d["x"], d["y"], d["w"], d["h"]
                if not (x >= 0 and y >= 0 and x + w <= width and y + h <= height):
                    box, _, _ = check_pixel_box(x, y, w, h, width, height, True)
                    if box is None:
                        continue
                    x, y, w, h = (round_coord(v) for v in box)
                boxes.append((x, y, w, h))
                classes.append(d["class"])
                areas.append(d["area"] if "area" in d else default_area(w, h))
                crowd.append(is_crowd(d))
            out[sha] = (
                np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                np.asarray(classes, dtype=np.int64),
                np.asarray(areas, dtype=np.float64),
                np.asarray(crowd, dtype=bool),
            )
    return out


# --- detections ----------------------------------------------------------------------------


def read_results_file(path: Path | str) -> tuple[list[Any], str]:
    """A COCO results file: its entries and the sha256 of its bytes (the source's identity)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(
            f"cannot read predictions file {path}", [Problem(str(path), e.strerror or str(e))]
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        results = json.loads(data)
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path} is not a COCO results file", [Problem(str(path), f"not UTF-8 text: {e}")]
        ) from None
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path} is not a COCO results file",
            [Problem(f"{path}:{e.lineno}:{e.colno}", f"malformed JSON: {e.msg}")],
        ) from None
    if not isinstance(results, list):
        raise InputError(
            f"{path} is not a COCO results file",
            [
                Problem(
                    str(path),
                    f"expected a JSON list of detections, found a {type(results).__name__}",
                )
            ],
        )
    return results, digest


# Exact type checks (bool is an int subclass, and is not a number here); cheap enough to run on
# every entry of a 100,000-detection file.
def _is_int(v: Any) -> bool:
    return type(v) is int or isinstance(v, np.integer)


def _is_number(v: Any) -> bool:
    t = type(v)
    if t is float or t is int:
        return math.isfinite(v)
    return isinstance(v, np.integer | np.floating) and bool(np.isfinite(v))


def detections_from_results(
    index: ImageIndex, results: Sequence[Any], where: str = "results"
) -> Detections:
    """Turn COCO results into detections per image hash, or list every bad entry.

    An entry names its image by ``image_id``: an integer is the id ``labeldesk export coco``
    gives the image in this version (a COCO-imported image keeps its original id); a string is
    a file name, as is a ``file_name`` key (the exported name, else an alias, see
    :class:`ImageIndex`). ``category_id`` is a class id of the version, ``bbox`` is
    ``[x, y, w, h]`` in pixels of the upright image, ``score`` a finite number.
    """
    by_id = index._by_id()
    exact, folded = index._by_name()
    classes = {int(c["id"]) for c in index.version.classes}
    problems: list[Problem] = []
    cols: dict[str, tuple[list, list, list]] = {}
    for n, e in enumerate(results):
        at = f"{where}[{n}]"
        if not isinstance(e, Mapping):
            problems.append(Problem(at, "not an object"))
            continue
        missing = [k for k in ("category_id", "bbox", "score") if k not in e]
        if "image_id" not in e and "file_name" not in e:
            missing.insert(0, "image_id")
        if missing:
            problems.append(Problem(at, f"missing {', '.join(missing)}"))
            continue
        sha, why = _image_of(e, by_id, exact, folded, index.aliases)
        bad = [why] if why else []
        cat = e["category_id"]
        if not _is_int(cat):
            bad.append(f"category_id must be an integer: {cat!r}")
        elif cat not in classes:
            bad.append(f"category_id {cat} is not a class of version {index.version.short}")
        bbox = e["bbox"]
        ok = isinstance(bbox, list | tuple) and len(bbox) == 4 and all(map(_is_number, bbox))
        if not ok or bbox[2] < 0 or bbox[3] < 0:
            bad.append(f"bbox must be [x, y, w, h]: 4 finite numbers, w, h >= 0: {bbox!r}")
        if not _is_number(e["score"]):
            bad.append(f"score must be a finite number: {e['score']!r}")
        if bad:
            problems.extend(Problem(at, b) for b in bad)
            continue
        assert sha is not None
        c = cols.setdefault(sha, ([], [], []))
        c[0].append([float(v) for v in bbox])
        c[1].append(cat)
        c[2].append(float(e["score"]))
    if problems:
        known = ", ".join(f"{c['id']} {c['name']}" for c in index.version.classes) or "none"
        raise InputError(
            f"{len({p.where for p in problems})} of {len(results)} detections in {where} are "
            f"not valid for version {index.version.short} (its class ids: {known})",
            _capped(problems),
        )
    return {
        sha: (
            np.asarray(b, dtype=np.float64).reshape(-1, 4),
            np.asarray(c, dtype=np.int64),
            np.asarray(s, dtype=np.float64),
        )
        for sha, (b, c, s) in cols.items()
    }


def _image_of(
    e: Mapping[str, Any],
    by_id: dict[int, str],
    exact: dict[str, str],
    folded: dict[str, str],
    aliases: dict[str, str | None],
) -> tuple[str | None, str | None]:
    """The image hash an entry names, or why it names none."""
    key = e.get("image_id", e.get("file_name"))
    if _is_int(key):
        sha = by_id.get(key)
        return (sha, None) if sha else (None, f"image_id {key} is not an image of this version")
    if isinstance(key, str):
        sha = exact.get(key) or folded.get(key.casefold())
        if sha:
            return sha, None
        if key in aliases:
            sha = aliases[key]
            return (sha, None) if sha else (None, f"file name {key!r} names several images")
        return None, f"no image of this version is named {key!r}"
    return None, f"image_id must be an integer id or a file name: {key!r}"


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= _MAX_PROBLEMS:
        return problems
    return [*problems[:_MAX_PROBLEMS], Problem("…", f"and {len(problems) - _MAX_PROBLEMS} more")]


@dataclass(frozen=True)
class Source:
    """Where detections come from, and its identity for the record.

    ``hash`` is the sha256 of a predictions file's bytes, or a model's id (the sha256 of its
    weights). ``detections(index)`` gives the detections for the images of ``index`` (any
    version): a model would predict (or read its cache) for them; a predictions file returns
    what it holds for those images.
    """

    kind: str
    hash: str
    name: str
    params: Mapping[str, Any]
    detections: Callable[[ImageIndex], Detections] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "hash": self.hash, "name": self.name, "params": self.params}


def predictions_source(path: Path | str, index: ImageIndex) -> Source:
    """A COCO results file made for the version of ``index``; checked now, in full.

    Its image ids and names are read as that version's export gives them; the detections are
    then tied to image hashes, so the same file can be judged on another version (a baseline)
    whose export may number the images differently.
    """
    results, digest = read_results_file(path)
    found = detections_from_results(index, results, where=str(path))

    def detections(other: ImageIndex) -> Detections:
        keep = set(other.shas)
        return {sha: d for sha, d in found.items() if sha in keep}

    return Source("predictions", digest, str(path), {"detections": len(results)}, detections)


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
    gt: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None,
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
        gts = [
            metrics.GroundTruth(ids[s], gt[s][0], gt[s][1], iscrowd=gt[s][3], areas=gt[s][2])
            for s in part.images
        ]
        dts = [metrics.Detection(ids[s], *dets[s]) for s in part.images if s in dets]
        result = metrics.evaluate(
            gts,
            dts,
            category_ids=cats,
            image_ids=[ids[s] for s in part.images],
            conf=conf,
            cancel=cancel,
        )
        out.append(SubsetResult(part, result))
        if progress is not None:
            progress(k + 1, len(parts), f"evaluating {part.name}")
    return out


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

    gt = ground_truth(project, index, cancel)
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
        raise InputError("; ".join(summaries), _capped(problems))
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
    row = project.db.execute(
        f"SELECT {_EVAL_COLUMNS} FROM evaluation WHERE id = ?", [cur.lastrowid]
    ).fetchone()
    return _row(row)
