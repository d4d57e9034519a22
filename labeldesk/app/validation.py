"""Validation operations: evaluate a model, the watched models, drift, the panel's figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labeldesk.core.progress import CancelFn, ProgressFn
from labeldesk.core.store.project import Project

from .changes import Changed

if TYPE_CHECKING:  # imported when first used: the window opens without the evaluation stack
    from labeldesk.core.inference.registry import ModelInfo
    from labeldesk.core.store.versions import Version
    from labeldesk.core.validation.agreement import AgreementReport
    from labeldesk.core.validation.evaluation import Evaluation


@dataclass(frozen=True)
class PanelData:
    versions: list[Version]  # commit order
    head: str | None  # the id main points at
    evaluations: list[Evaluation]  # oldest first
    agreement: AgreementReport


def panel_data(project: Project) -> PanelData:
    """Everything the validation panel shows (agreement scans the review record: off the GUI
    thread)."""
    from labeldesk.core.store.versions import all_versions, head
    from labeldesk.core.validation.agreement import agreement
    from labeldesk.core.validation.evaluation import list_evaluations

    return PanelData(
        versions=all_versions(project.db),
        head=head(project.db),
        evaluations=list_evaluations(project),
        agreement=agreement(project),
    )


@dataclass(frozen=True)
class EvaluateChoices:
    """What the evaluate dialog offers: the models, the versions, main, the watched models."""

    models: list[ModelInfo]
    versions: list[Version]
    head: str | None
    watched: list[Any]  # (model, settings) pairs of core.watch.watched


def evaluate_choices(project: Project) -> EvaluateChoices:
    from labeldesk.core.inference.registry import list_models
    from labeldesk.core.store.versions import all_versions, head
    from labeldesk.core.validation.watch import watched

    db = project.db
    return EvaluateChoices(list_models(db), all_versions(db), head(db), watched(db))


def evaluate(
    project: Project,
    model: str,
    ref: str,
    *,
    baseline_ref: str | None = None,
    baseline_model: str | None = None,
    imgsz: int,
    trust: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Changed:
    """``validate`` with a registered model's detections, optionally against a baseline (the
    same model on an earlier version, or another model on this one); stores its rows."""
    from labeldesk.core.validation.evaluation import validate
    from labeldesk.core.validation.model_eval import model_source

    opts: dict[str, Any] = {"imgsz": imgsz, "trust": trust}
    source = model_source(project, model, **opts, progress=progress, cancel=cancel)
    baseline = None
    if baseline_model is not None:
        baseline = model_source(project, baseline_model, **opts, progress=progress, cancel=cancel)
    report = validate(
        project,
        source,
        ref=ref,
        baseline_ref=baseline_ref,
        baseline_source=baseline,
        progress=progress,
        cancel=cancel,
    )
    return Changed(evaluations=True, versions=True, report=report)


def watched_names(project: Project) -> list[str]:
    """The names of the watched models (none: nothing to evaluate after a commit)."""
    from labeldesk.core.validation.watch import watched

    return [m.name for m, _ in watched(project.db)]


def evaluate_watched(
    project: Project, version_id: str, progress: ProgressFn, cancel: CancelFn
) -> Changed:
    """Evaluate every watched model on ``version_id``; the report is the list of results."""
    from labeldesk.core.validation.watch import evaluate_watched as run

    results = run(project, version_id, progress=progress, cancel=cancel)
    return Changed(evaluations=True, versions=True, report=results)


def hand_over_watched(project: Project, version_ids: list[str]) -> list[str]:
    """Give versions not yet evaluated to detached background processes; those handed over."""
    from labeldesk.core.store.versions import get_version

    from .background import evaluate_watched_later

    return [
        vid
        for vid in version_ids
        if evaluate_watched_later(project, get_version(project.db, vid)) is not None
    ]


def drift(
    project: Project, a: str, b: str, threshold: float, progress: ProgressFn, cancel: CancelFn
) -> Any:
    """Compare the image statistics of two versions (reads and decodes images)."""
    from labeldesk.core.validation.drift import drift as measure

    return measure(project, a, b, threshold=threshold, progress=progress, cancel=cancel)


def stat_keys() -> tuple[str, ...]:
    """The metric keys an evaluation stores, in the order the panel offers them."""
    from labeldesk.core.validation.metrics import STAT_KEYS

    return tuple(STAT_KEYS)
