"""``labeldesk promote``: the champion/challenger gate.

The challenger (a newly trained model) and the champion (the current release model) are
evaluated by the stored evaluation machinery on the same version and the same images, so the
two figures are comparable and both are kept with their lineage. The images are the ones the
challenger never trained on when such a held-out set exists (the version's images that were not
in the train split of the version it learned from); otherwise all images, and the result says
so. The release model changes only when the gate passes; every decision is recorded in the
``promotion`` table whether it passed or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, LabelDeskError, Problem
from ..progress import CancelFn, ProgressFn
from ..store.manifest import ManifestStore
from ..store.project import Project, now_iso
from ..store.versions import MAIN, Version, resolve

RELEASE_KEY = "release_model"


@dataclass
class PromoteResult:
    model: str  # name
    model_id: str
    over: str | None
    over_id: str | None
    version: Version
    subset: str
    metric: str
    value: float | None
    baseline_value: float | None
    min_gain: float
    passed: bool
    notes: list[str] = field(default_factory=list)

    @property
    def gain(self) -> float | None:
        if self.value is None or self.baseline_value is None:
            return None
        return self.value - self.baseline_value

    def verdict(self) -> str:
        if self.over is None:
            return f"{self.model} is the first release model ({self.metric} {_f(self.value)})"
        word = "PROMOTED" if self.passed else "NOT PROMOTED"
        subset = self.subset
        if subset.startswith("held-out-of="):
            subset = f"the images it did not train on ({subset.split('=', 1)[1][:12]})"
        return (
            f"{word}: {self.model} {self.metric} {_f(self.value)} vs {self.over} "
            f"{_f(self.baseline_value)} on {subset} of {self.version.short} "
            f"(gain {_f(self.gain, signed=True)}, needed at least {self.min_gain:+.4f})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_id": self.model_id,
            "over": self.over,
            "over_id": self.over_id,
            "version": self.version.id,
            "subset": self.subset,
            "metric": self.metric,
            "value": self.value,
            "baseline_value": self.baseline_value,
            "gain": self.gain,
            "min_gain": self.min_gain,
            "passed": self.passed,
            "verdict": self.verdict(),
            "notes": self.notes,
        }


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def release_model(project: Project) -> str | None:
    """The id of the current release model, or None before the first promotion."""
    row = project.db.execute(
        "SELECT value FROM project_meta WHERE key = ?", [RELEASE_KEY]
    ).fetchone()
    return row[0] if row else None


def held_out(project: Project, version: Version, trained_on: str | None) -> set[str] | None:
    """Images of ``version`` the model never trained on, or None when it is not known or empty.

    A model trained on version T saw T's train images (and those without a split); every
    other image of ``version`` is held out: T's val and test images and images added since.
    """
    if trained_on is None:
        return None
    store = ManifestStore(project.db)
    try:
        seen_tree = store.tree(resolve(project.db, trained_on).tree)
    except (LabelDeskError, KeyError):
        return None
    seen = {img for img, e in store.entries(seen_tree) if e.split in ("train", None)}
    out = {img for img, _ in store.entries(store.tree(version.tree)) if img not in seen}
    return out or None


def promote(
    project: Project,
    name: str,
    *,
    over: str | None = None,
    ref: str = MAIN,
    metric: str = "map50_95",
    min_gain: float = 0.0,
    imgsz: int | None = None,
    trust: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> PromoteResult:
    from ..inference.prelabel import DEFAULT_IMGSZ
    from ..inference.registry import get_model
    from ..validation.evaluation import validate
    from ..validation.model_eval import model_source
    from ..validation.watch import WatchSettings, watch

    project.require_lead("promote a model")
    if not math.isfinite(min_gain):
        raise InputError("invalid options", [Problem("--min-gain", "must be a number")])
    new = get_model(project, name)
    current_id = over or release_model(project)
    current = get_model(project, current_id) if current_id else None
    if current is not None and current.id == new.id:
        raise InputError("nothing to do", [Problem(name, "is already the release model")])
    version = resolve(project.db, ref)
    size = imgsz
    if size is None:
        from .runs import run_of_model

        run = run_of_model(project.db, new.id)
        size = int(run.params.get("imgsz", DEFAULT_IMGSZ)) if run else DEFAULT_IMGSZ
    notes: list[str] = []
    images = held_out(project, version, new.trained_on)
    only = None
    if images is not None:
        only = (f"held-out-of={new.trained_on}", images)
    elif new.trained_on is not None:
        notes.append(
            "no image of this version is held out from the model's training data: judged on "
            "all images"
        )
    report = validate(
        project,
        model_source(project, new.id, imgsz=size, trust=trust, progress=progress, cancel=cancel),
        ref=version.id,
        baseline_source=(
            model_source(
                project, current.id, imgsz=size, trust=trust, progress=progress, cancel=cancel
            )
            if current is not None
            else None
        ),
        metric=metric,
        max_drop=max(0.0, -min_gain),
        only=only,
        progress=progress,
        cancel=cancel,
    )
    row = report.rows[0]
    base = report.baseline_rows[0] if report.baseline_rows else None
    value = row.value
    b_value = base.value if base is not None else None
    if current is None:
        passed = value is not None and not math.isnan(value)
    else:
        passed = (
            value is not None
            and b_value is not None
            and not math.isnan(value)
            and not math.isnan(b_value)
            and value - b_value >= min_gain - 1e-12
        )
    with project.transaction():
        # The evaluation ran without the write lock (minutes, on a big version). Whoever wrote
        # in the meantime is seen now: a demoted lead may not promote, and a release model
        # another lead promoted meanwhile was not the one this model was judged against, so
        # taking the release now would overwrite that decision unseen (a lost update).
        project.require_lead("promote a model")
        if over is None and release_model(project) != current_id:
            now = release_model(project)
            raise LabelDeskError(
                f"the release model changed to {now[:12] if now else 'none'} while {new.name} "
                "was being judged; nothing was promoted: run promote again to judge it against "
                "the new release"
            )
        project.db.execute(
            "INSERT INTO promotion (model, over, version, subset, metric, value, baseline_value, "
            "min_gain, passed, run, at, by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                new.id,
                current.id if current else None,
                version.id,
                row.subset,
                metric,
                value,
                b_value,
                min_gain,
                int(passed),
                report.run,
                now_iso(),
                project.user,
            ],
        )
        if passed:
            project.db.execute(
                "INSERT INTO project_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [RELEASE_KEY, new.id],
            )
    if passed:
        watch(project, new.id, WatchSettings(metric=metric, imgsz=size, trust=trust))
    return PromoteResult(
        new.name,
        new.id,
        current.name if current else None,
        current.id if current else None,
        version,
        row.subset,
        metric,
        value,
        b_value,
        min_gain,
        passed,
        notes,
    )
