"""Training operations: train a model on a version, promote it, the models and their runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labeldesk.core.store.project import Project

from .changes import Changed


def version_choices(project: Project) -> list[tuple[str, str]]:
    """(label, version id) for every version on main's history, newest first."""
    from labeldesk.core.store.versions import log

    out = []
    for v in log(project.db):
        tags = f" [{', '.join(v.tags)}]" if v.tags else ""
        first = v.message.splitlines()[0] if v.message else ""
        out.append((f"{v.short}{tags} {v.status}: {first}", v.id))
    return out


def model_names(project: Project) -> list[tuple[str, str]]:
    """(id, name) of every registered model (the bases a training run can start from)."""
    from labeldesk.core.inference.registry import list_models

    return [(m.id, m.name) for m in list_models(project.db)]


def train(
    project: Project,
    *,
    ref: str,
    base: str | None,
    config: str | None,
    name: str | None,
    epochs: int,
    imgsz: int,
    batch: int,
    device: str,
    progress: Callable[[Any], None],
    cancel: Callable[[], bool],
) -> Changed:
    """Train in a child process; ``progress(event)`` gets each of its events. A cancelled run
    raises ``training_cancelled()``'s class with the recorded run."""
    from labeldesk.core.training.train import TrainOptions
    from labeldesk.core.training.train import train as run

    opts = TrainOptions(epochs=epochs, imgsz=imgsz, batch=batch, device=device)
    result = run(
        project,
        ref=ref,
        base=base,
        config=config,
        name=name,
        options=opts,
        progress=progress,
        cancel=cancel,
    )
    return Changed(models=True, versions=True, report=result)


def training_cancelled() -> type[BaseException]:
    """The error a cancelled training run ends with (it carries the run)."""
    from labeldesk.core.training.train import TrainingCancelled

    return TrainingCancelled


@dataclass(frozen=True)
class ModelRow:
    info: Any  # core.models.ModelInfo
    run: Any  # its training run, or None
    release: bool
    base: str  # what it was trained from


def models_table(project: Project) -> list[ModelRow]:
    """Every registered model with its training run and whether it is the release model."""
    from labeldesk.core.inference.registry import list_models
    from labeldesk.core.training.promote import release_model
    from labeldesk.core.training.runs import run_of_model

    release = release_model(project)
    models = list_models(project.db)
    names = {m.id: m.name for m in models}
    rows = []
    for m in models:
        run = run_of_model(project.db, m.id)
        base = ""
        if run is not None:
            base = run.base if run.base_kind == "config" else names.get(run.base, run.base[:12])
        rows.append(ModelRow(m, run, m.id == release, base))
    return rows


def promote(project: Project, model_id: str) -> Changed:
    """The champion/challenger gate: evaluate both, promote the model if it is no worse."""
    from labeldesk.core.training.promote import promote as run

    return Changed(models=True, evaluations=True, report=run(project, model_id))


def trainable_models(project: Project) -> list[Any]:
    """The registered models a run can start from (PyTorch weights only)."""
    from labeldesk.core.inference.registry import list_models

    return [m for m in list_models(project.db) if m.format == "pt"]
