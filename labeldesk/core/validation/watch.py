"""Watched models: evaluated on every new version, with a regression recorded when one occurs.

Why it is built this way:

* Watching is a property of a registered model (``model.watched`` and its ``watch`` settings,
  docs/database.md): the metric and the drop that counts as a regression, the inference size,
  and whether its ``.pt`` may be fully unpickled. The settings are the user's decision, taken
  once, so a commit made hours later in the GUI or by a script evaluates the same way.
* A watched evaluation is an ordinary ``evaluation`` row (subset ``all``, ``params.trigger`` =
  ``watch``), compared with *that model's previous evaluation*: the newest row of the same
  model, the same inference parameters and the same operating point, on an earlier version.
  Comparing with the stored row instead of re-evaluating the old version costs nothing and
  keeps the figure that was actually seen at the time.
* It is idempotent: a model already evaluated on a version under its settings is skipped, the
  check is repeated inside the storing transaction, so a commit hook, a catch-up run and a
  second process cannot store the same evaluation twice.
* One watched model that cannot run (its file changed, safe loading refuses it) does not keep
  the others from being evaluated; its error is reported with its result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

# The metric engine (numpy) and the model registry are imported where they are used, not
# here: `labeldesk log` reads watched figures through this module and must start fast.
from ..defaults import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU, DEFAULT_MAX_DROP, DEFAULT_METRIC
from ..errors import CancelledError, InputError, LabelDeskError, Problem
from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.db import ProjectDatabase as Database
from ..store.project import Project, now_iso
from ..store.versions import MAIN, Version, resolve
from .evaluation_rows import Evaluation, list_evaluations
from .watch_status import TRIGGER, fmt_value, signed, watch_rows

if TYPE_CHECKING:
    from ..inference.registry import ModelInfo
    from .evaluation import GroundTruth


@dataclass(frozen=True)
class WatchSettings:
    """How a watched model is evaluated on each new version."""

    metric: str = DEFAULT_METRIC
    max_drop: float = DEFAULT_MAX_DROP
    imgsz: int = DEFAULT_IMGSZ
    iou: float = DEFAULT_IOU
    conf: float = DEFAULT_CONF  # operating point for precision and recall
    trust: bool = False
    since: str = ""
    by: str = ""

    def check(self) -> None:
        """Refuse impossible settings with one itemised error."""
        from ..inference.predictions import prelabel_params

        problems: list[Problem] = []
        try:
            from .evaluation import check_options

            check_options(self.metric, self.max_drop, self.conf)
        except InputError as e:
            problems.extend(e.problems)
        try:
            prelabel_params(0.5, self.iou, self.imgsz)
        except InputError as e:
            problems.extend(Problem(f"--{p.where}", p.reason) for p in e.problems)
        if problems:
            raise InputError("invalid watch settings", problems)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WatchResult:
    """What happened to one watched model on one version."""

    model: ModelInfo
    settings: WatchSettings
    version: str
    evaluation: Evaluation | None = None  # the stored (or, when skipped, existing) row
    skipped: bool = False  # already evaluated on this version under these settings
    error: str | None = None
    baseline_version: str | None = field(default=None)

    @property
    def regression(self) -> bool:
        """The metric dropped more than the allowed drop below the previous evaluation."""
        return self.evaluation is not None and self.evaluation.passed is False

    def line(self) -> str:
        """One line a person reads: the figure, and how it compares."""
        if self.error is not None:
            return f"{self.model.name}: not evaluated: {self.error}"
        e = self.evaluation
        assert e is not None
        figure = f"{e.metric} {fmt_value(e.value)}"
        again = " (already evaluated)" if self.skipped else ""
        if e.baseline_value is None:
            return f"{self.model.name}: {figure}, no earlier evaluation to compare with{again}"
        if e.metric_drop is None:
            return f"{self.model.name}: {figure}, not comparable (no labels){again}"
        verdict = "REGRESSION" if self.regression else "ok"
        prev = (self.baseline_version or "")[:12]
        return (
            f"{self.model.name}: {figure} vs {fmt_value(e.baseline_value)} on {prev}, "
            f"{signed(-e.metric_drop)} (limit -{e.max_drop:.4f}): {verdict}{again}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "model_id": self.model.id,
            "version": self.version,
            "settings": self.settings.to_json(),
            "skipped": self.skipped,
            "error": self.error,
            "regression": self.regression,
            "baseline_version": self.baseline_version,
            "evaluation": self.evaluation.to_json() if self.evaluation else None,
        }


# --- settings ------------------------------------------------------------------------------


def watch(project: Project, name_or_id: str, settings: WatchSettings | None = None) -> ModelInfo:
    """Mark a registered model as watched with ``settings`` (replacing earlier ones)."""
    from ..inference.registry import find_model

    settings = settings or WatchSettings()
    settings.check()
    info = find_model(project.db, name_or_id)
    stamped = WatchSettings(
        **(settings.to_json() | {"since": now_iso(), "by": project.user}),
    )
    with project.transaction():
        project.db.execute(
            "UPDATE model SET watched = 1, watch = ? WHERE id = ?",
            [json.dumps(stamped.to_json(), sort_keys=True), info.id],
        )
    return info


def unwatch(project: Project, name_or_id: str) -> ModelInfo:
    """Stop evaluating a model on new versions; its past evaluations stay."""
    from ..inference.registry import find_model

    info = find_model(project.db, name_or_id)
    with project.transaction():
        project.db.execute("UPDATE model SET watched = 0, watch = NULL WHERE id = ?", [info.id])
    return info


def watched(db: Database) -> list[tuple[ModelInfo, WatchSettings]]:
    """The watched models with their settings, in registration order."""
    from ..inference.registry import list_models

    settings = dict(db.execute("SELECT id, watch FROM model WHERE watched = 1").fetchall())
    return [
        (m, WatchSettings(**json.loads(settings[m.id] or "{}")))
        for m in list_models(db)
        if m.id in settings
    ]


# --- evaluating ----------------------------------------------------------------------------


def _same_setup(e: Evaluation, predict: dict[str, Any], conf: float) -> bool:
    return e.params.get("source", {}).get("predict") == predict and e.params.get("conf") == conf


def _existing(
    project: Project, model: str, version: str, predict: dict[str, Any], conf: float
) -> Evaluation | None:
    """The watched evaluation of ``model`` on ``version`` under this setup, if stored."""
    rows = watch_rows(project, version=version, source_hash=model)
    mine = (e for e in reversed(rows) if _same_setup(e, predict, conf))
    return next(mine, None)


def previous_evaluation(
    project: Project, model: str, version: Version, predict: dict[str, Any], conf: float
) -> Evaluation | None:
    """The model's newest evaluation (all images, same setup) on a version before ``version``."""
    seqs = dict(project.db.execute("SELECT id, seq FROM version").fetchall())
    best: tuple[int, int] | None = None
    found = None
    for e in list_evaluations(project, source_hash=model, role="candidate", subset="all"):
        seq = seqs.get(e.version)
        if seq is None or seq >= version.seq:
            continue
        if _same_setup(e, predict, conf) and (best is None or (seq, e.id) > best):
            best, found = (seq, e.id), e
    return found


def _run_id() -> str:
    """A fresh evaluation run id. uuid is imported here: `labeldesk log` imports this module
    to read watched figures, and must not pay for it."""
    import uuid

    return uuid.uuid4().hex


def evaluate_watched(
    project: Project,
    ref: str = MAIN,
    *,
    models: Iterable[str] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> list[WatchResult]:
    """Evaluate every watched model (or those named in ``models``) on version ``ref``.

    Each result is stored with its previous evaluation as baseline; see the module docstring.
    Raises :class:`CancelledError` when cancelled (models finished before are kept).
    """
    from ..inference.registry import find_model
    from .model_eval import model_source  # runs the model: keep torch out of plain imports

    version = resolve(project.db, ref)
    chosen = watched(project.db)
    if models is not None:
        wanted = {find_model(project.db, m).id for m in models}
        chosen = [(m, s) for m, s in chosen if m.id in wanted]
    results: list[WatchResult] = []
    if not chosen:
        return results
    from .evaluation import (
        ImageIndex,
        Subset,
        evaluate_subsets,
        evaluation_params,
        ground_truth,
        insert_evaluation,
    )

    index = ImageIndex.build(project, version.id, cancel)
    gt: Mapping[str, GroundTruth] | None = None
    for info, settings in chosen:
        check_cancel(cancel)
        result = WatchResult(info, settings, version.id)
        results.append(result)
        try:
            source = model_source(
                project,
                info.id,
                imgsz=settings.imgsz,
                iou=settings.iou,
                trust=settings.trust,
                progress=progress,
                cancel=cancel,
            )
            predict = source.params["predict"]
            found = _existing(project, info.id, version.id, predict, settings.conf)
            if found is not None:
                result.evaluation, result.skipped = found, True
                result.baseline_version = _version_of(project, found.baseline)
                continue
            if gt is None:
                gt = ground_truth(project, index, cancel)
            (sub,) = evaluate_subsets(
                project,
                index,
                source,
                [Subset("all", tuple(index.shas))],
                conf=settings.conf,
                gt=gt,
                progress=progress,
                cancel=cancel,
            )
            params = evaluation_params(settings.conf, index, source) | {
                "trigger": TRIGGER,
                "watch": settings.to_json(),
            }
            previous = previous_evaluation(project, info.id, version, predict, settings.conf)
            with project.transaction():
                found = _existing(project, info.id, version.id, predict, settings.conf)
                if found is not None:  # another process got there first
                    result.evaluation, result.skipped = found, True
                else:
                    result.evaluation = insert_evaluation(
                        project,
                        _run_id(),
                        "candidate",
                        index.version,
                        sub,
                        source,
                        params,
                        settings.metric,
                        baseline=previous,
                        max_drop=settings.max_drop,
                    )
            if result.evaluation is not None:
                result.baseline_version = _version_of(project, result.evaluation.baseline)
        except CancelledError:
            raise
        except LabelDeskError as e:
            result.error = str(e)
    return results


def _version_of(project: Project, evaluation_id: int | None) -> str | None:
    if evaluation_id is None:
        return None
    row = project.db.execute(
        "SELECT version FROM evaluation WHERE id = ?", [evaluation_id]
    ).fetchone()
    return row[0] if row else None
