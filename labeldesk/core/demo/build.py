"""``labeldesk demo``: build a self-contained demo project and walk through the workflow.

Everything is generated offline: images of simple shapes on textured backgrounds, with their
true boxes standing in for a first human labelling pass. The demo then plays a second review
that corrects some labels, tags and approves a release, diffs the two, assigns train/val splits
and approves that as the next release, imports a fresh batch
of unlabelled images, pre-labels it with the small detector shipped in
``resources/models/demo-shapes.pt`` (trained on scenes of the same kind by
``resources/train_demo_model.py``), watches the model (evaluated on both labelled versions,
and then on every version committed), fine-tunes it on the approved release for a couple of
epochs and promotes the result only if it beats the shipped one on the images it did not train
on, and opens a review session that shows the pre-labels.
The model is good but not perfect on purpose, so the review has misses and false positives
to find.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..boxes import Box
from ..errors import LabelDeskError
from ..flavour import FULL_ONLY, is_full
from ..inference.predictions import load as load_predictions
from ..inference.predictions import prelabel_params
from ..inference.prelabel import prelabel, show_in_session
from ..inference.registry import ModelInfo, add_model
from ..progress import ProgressFn
from ..store.fsck import fsck
from ..store.importer import add_images
from ..store.project import DB_NAME, Project
from ..store.sessions import ReviewSession
from ..store.splits import assign_splits
from ..store.version_diff import diff
from ..store.versions import decide, log, tag
from ..validation.watch import WatchSettings, evaluate_watched, watch
from ..validation.watch_status import status_text, watch_status
from .synth import CLASSES, SynthBox, write_images

Say = Callable[[str], None]

#: Overrides where the demo model is looked for (a copy outside the source tree).
DEMO_MODEL_ENV = "LABELDESK_DEMO_MODEL"
DEMO_MODEL_NAME = "demo-shapes"
#: The demo model was trained at 320; inference at that size is also quick on a laptop CPU.
DEMO_IMGSZ = 320
#: Epochs of the demo's fine-tuning step: enough to show the loop, seconds on a laptop CPU.
DEMO_EPOCHS = 2


def demo_model_path() -> Path:
    """The demo model: ``$LABELDESK_DEMO_MODEL``, else ``resources/models/demo-shapes.pt``.

    resources/ sits at the repository root next to labeldesk/ (in the desktop bundle: next to
    the frozen package); it is not in the wheel, so the demo needs a source checkout
    (``pip install -e .``), the bundle, or the environment variable. Where torch is missing
    (the review flavour) the ONNX export beside it, ``demo-shapes.onnx``, is used instead: the
    desktop bundle carries that one (``packaging/build.py`` exports it).
    """
    env = os.environ.get(DEMO_MODEL_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise LabelDeskError(f"${DEMO_MODEL_ENV} is {env}, which is not a file")
        return path
    folder = Path(__file__).resolve().parents[3] / "resources" / "models"
    names = ["demo-shapes.pt", "demo-shapes.onnx"] if is_full() else ["demo-shapes.onnx"]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise LabelDeskError(
        f"the demo model is not at {folder / names[0]}: it ships in the LabelDesk source "
        f"repository (resources/models/) and the desktop bundle, not in the wheel. Install "
        f"from a checkout (`pip install -e .`) or set {DEMO_MODEL_ENV} to the model file."
    )


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def _matches(truth: list[SynthBox], preds: list) -> tuple[int, int]:
    """(objects found with the right class at IoU >= 0.5, predictions that match nothing)."""
    free = list(preds)
    found = 0
    for t in truth:
        rect = (t.x, t.y, t.w, t.h)
        best = max(free, key=lambda p: _iou(rect, (p.x, p.y, p.w, p.h)), default=None)
        if best is not None and _iou(rect, (best.x, best.y, best.w, best.h)) >= 0.5:
            free.remove(best)
            found += best.name == CLASSES[t.cls]
    return found, len(free)


def _train_step(
    project: Project,
    shipped: ModelInfo,
    step: Iterator[int],
    say: Say,
    progress: ProgressFn | None,
) -> None:
    """Close the loop: fine-tune the shipped model on the approved release, a couple of epochs
    at the demo size, and promote it over the shipped model only if it wins on the images it
    did not train on. Both figures are printed either way."""
    from ..training.promote import promote
    from ..training.train import TrainOptions, train

    first = promote(project, shipped.id, ref="v2.0", imgsz=DEMO_IMGSZ, progress=progress)
    result = train(
        project,
        ref="v2.0",
        base=shipped.id,
        name=f"{DEMO_MODEL_NAME}-ft",
        options=TrainOptions(epochs=DEMO_EPOCHS, imgsz=DEMO_IMGSZ, batch=8),
    )
    last = result.run.epochs[-1]["metrics"] if result.run.epochs else {}
    say(
        f"{next(step)}. labeldesk train --version v2.0 --base {shipped.name} --epochs "
        f"{DEMO_EPOCHS} --imgsz {DEMO_IMGSZ}: {result.model_name} in {result.run.wall_s:.0f}s, "
        f"val mAP50-95 {last.get('metrics/mAP50-95(B)', 0.0):.3f}; its lineage (version, "
        "splits, base, parameters, seed, per-epoch figures) is in "
        f"`labeldesk model show {result.model_name}`"
    )
    gate = promote(project, result.model_name, ref="v2.0", imgsz=DEMO_IMGSZ, progress=progress)
    release = gate.model if gate.passed else first.model
    say(
        f"{next(step)}. labeldesk promote {result.model_name}: {gate.metric} "
        f"{gate.value or 0.0:.3f} against {first.model}'s {gate.baseline_value or 0.0:.3f} on "
        f"v2.0's val images -> {'promoted' if gate.passed else 'not promoted'}; the release "
        f"model is {release}"
    )


def clear_demo_folder(root: Path, *, force: bool) -> None:
    """Make way for a demo in ``root``: an empty or missing folder is fine; with ``force``, a
    folder holding a previous demo (its project is in ``root/project``) is deleted. Anything
    else is refused, so ``--force`` can never delete a folder the demo did not make."""
    if not root.exists() or not any(root.iterdir()):
        return
    if not force:
        raise LabelDeskError(f"{root} exists and is not empty; use --force to replace it")
    if not (root / "project" / DB_NAME).is_file():
        raise LabelDeskError(
            f"{root} does not hold a LabelDesk demo (no project/{DB_NAME}); refusing to delete it"
        )
    shutil.rmtree(root)


def build_demo(
    root: Path,
    *,
    n_images: int = 48,
    seed: int = 7,
    force: bool = False,
    train: bool = True,
    progress: ProgressFn | None = None,
    say: Say = print,
) -> Project:
    root = Path(root).absolute()
    clear_demo_folder(root, force=force)
    step = itertools.count(1)
    source = root / "source-images"
    say(f"{next(step)}. Generating {n_images} images of {', '.join(CLASSES)} in {source}")
    truth = write_images(source, n_images, seed=seed)
    project = Project.init(root / "project")
    say(f"{next(step)}. Created project {project.root} (lead: {project.user})")

    report = add_images(project, [source], progress=progress)
    v_import = report.version
    assert v_import is not None
    say(
        f"{next(step)}. labeldesk add: {len(report.added)} images imported -> version "
        f"{v_import.short}"
    )

    # First pass: a hasty labeller. The generator's truth stands in for them, with the kind of
    # mistakes QA finds: a missed object, a loose box, a wrong class.
    by_name = {Path(a.path).name: a.sha256 for a in report.added}
    session = ReviewSession.start(project)
    ids = {name: session.add_class(name) for name in CLASSES}
    truth_boxes = {
        by_name[path.name]: [
            Box(ids[CLASSES[b.cls]], b.x, b.y, b.w, b.h, author=project.user) for b in boxes
        ]
        for path, boxes in truth
    }
    flawed: dict[str, str] = {}
    for i, (sha, boxes) in enumerate(truth_boxes.items()):
        hasty = list(boxes)
        if boxes and i % 6 == 1:
            hasty = hasty[:-1]
            flawed[sha] = "missed object"
        elif boxes and i % 6 == 3:
            b = hasty[0]
            hasty[0] = b.with_(
                x=max(0.0, b.x - 0.15 * b.w), y=max(0.0, b.y - 0.15 * b.h), w=b.w * 1.3, h=b.h * 1.3
            )
            flawed[sha] = "loose box"
        elif boxes and i % 6 == 5:
            b = hasty[0]
            hasty[0] = b.with_(
                cls=ids[
                    CLASSES[
                        (CLASSES.index(next(n for n, c in ids.items() if c == b.cls)) + 1)
                        % len(CLASSES)
                    ]
                ]
            )
            flawed[sha] = "wrong class"
        session.set_boxes(sha, hasty)
    v1 = session.commit("First labelling pass", provenance={"method": "manual"})
    say(
        f"{next(step)}. Review session 1 labelled {len(truth)} images: {v1.n_boxes} boxes -> "
        f"{v1.short}"
    )
    tag(project, "v1.0", v1.id)
    decide(project, "v1.0", "approved", "first complete labelling")
    say(f"{next(step)}. Tagged it v1.0 and approved it as a release")

    # Second pass: QA finds and fixes the mistakes.
    session = ReviewSession.start(project)
    final = {old: session.add_class(name) for name, old in ids.items()}  # provisional -> real
    for sha in flawed:
        session.set_boxes(
            sha, [b.with_(cls=final[b.cls], state="edited") for b in truth_boxes[sha]]
        )
    v2 = session.commit(
        "QA: add missed objects, tighten loose boxes, fix classes", provenance={"method": "manual"}
    )
    kinds = ", ".join(
        f"{n} {k}"
        for k, n in sorted(
            {k: list(flawed.values()).count(k) for k in set(flawed.values())}.items()
        )
    )
    say(f"{next(step)}. Review session 2 corrected {len(flawed)} images ({kinds}) -> {v2.short}")

    d = diff(project, "v1.0", "main")
    c = d.counts()
    say(
        f"{next(step)}. labeldesk diff v1.0 main: {c['images_changed']} images changed, "
        f"+{c['boxes_added']} / -{c['boxes_removed']} boxes"
    )

    # Before a model can learn from the QA'd labels, the images need train/val splits.
    split = assign_splits(project, val=0.25, seed=seed)
    v_release = split.version
    tag(project, "v2.0", v_release.id)
    decide(project, "v2.0", "approved", "QA passed")
    say(
        f"{next(step)}. labeldesk split --val 0.25: "
        + ", ".join(f"{n} {s}" for s, n in sorted(split.assigned.items()))
        + f" -> {v_release.short}, tagged v2.0 and approved as the new release"
    )

    # A fresh, unlabelled batch: the detector proposes, a reviewer decides.
    n_new = max(4, n_images // 4)
    new_truth = write_images(root / "new-images", n_new, seed=seed + 1000)
    report = add_images(project, [root / "new-images"], progress=progress)
    assert report.version is not None
    new_shas = {Path(a.path).name: a.sha256 for a in report.added}
    say(
        f"{next(step)}. labeldesk add: {len(report.added)} new, unlabelled images -> version "
        f"{report.version.short}"
    )
    added = add_model(project, demo_model_path(), DEMO_MODEL_NAME)
    model = added.model
    say(
        f"{next(step)}. labeldesk model add: {model.name} ({model.short}), {model.format} "
        f"{model.task} model, classes {', '.join(model.class_names)}; "
        + (
            "loaded with safe (weights-only) loading"
            if model.format == "pt"
            else "run by onnxruntime with numpy decoding (no torch)"
        )
    )
    params = prelabel_params(imgsz=DEMO_IMGSZ)
    run = prelabel(project, model, imgsz=DEMO_IMGSZ, progress=progress)
    found = extra = objects = 0
    for path, true_boxes in new_truth:
        preds = load_predictions(project.db, model.id, params, new_shas[path.name])
        f, x = _matches(true_boxes, preds)
        found, extra, objects = found + f, extra + x, objects + len(true_boxes)
    say(
        f"{next(step)}. labeldesk prelabel --model {model.name} --imgsz {DEMO_IMGSZ}: "
        f"{run.predicted} images in {run.seconds:.1f}s. On the {n_new} new images it found "
        f"{found} of {objects} objects (right class, IoU >= 0.5) and proposed {extra} boxes "
        "that match nothing: work for the reviewer"
    )
    watch(project, model.id, WatchSettings(imgsz=DEMO_IMGSZ))
    figures = []
    for ref in (v1.id, v2.id):
        (result,) = evaluate_watched(project, ref, progress=progress)
        if result.evaluation is None:
            raise LabelDeskError(f"the demo model could not be evaluated: {result.error}")
        figures.append(result.evaluation.summary["map50_95"])
    say(
        f"{next(step)}. labeldesk model watch {model.name}: it is evaluated on every new version. "
        f"mAP50-95 on v1.0 {figures[0]:.3f}, on the QA version {figures[1]:.3f} "
        "(QA fixed labels the model had right)"
    )
    if train and model.format == "pt" and is_full():
        _train_step(project, model, step, say, progress)
    elif train:
        say(f"{next(step)}. (Training the model on v2.0 is skipped: it {FULL_ONLY}.)")
    session = ReviewSession.start(project)
    show_in_session(project, session.id, model.id, params)
    say(
        f"{next(step)}. Review session {session.id} is open on main: the {n_new} new images "
        "show the model's boxes as pending pre-labels to accept, fix or reject"
    )
    say(f"{next(step)}. labeldesk log:")
    watched_figures = watch_status(project)
    for v in log(project.db):
        tags = f" [{', '.join(v.tags)}]" if v.tags else ""
        figure = status_text(watched_figures.get(v.id, []))
        say(
            f"     {v.short} {v.kind:<7} {v.status:<9} {v.n_images:>4} img {v.n_boxes:>5} box"
            f"  {v.message}{tags}" + (f"  ({figure})" if figure else "")
        )
    report_fsck = fsck(project)
    say(
        f"{next(step)}. labeldesk fsck: {'OK' if report_fsck.ok else 'PROBLEMS'} "
        f"({report_fsck.objects_checked} objects re-hashed)"
    )
    say(
        f"\nTry it yourself:\n  labeldesk -p {project.root} log\n"
        f"  labeldesk -p {project.root} diff v1.0 main\n  labeldesk -p {project.root} fsck\n"
        f"  labeldesk -p {project.root} model list\n"
        f"  labeldesk -p {project.root} prelabel --model {model.name} --imgsz {DEMO_IMGSZ}"
        "   (cached: returns at once)\n"
        f"  labeldesk -p {project.root} validate --watched   (after you commit the review)\n"
        f"  labeldesk -p {project.root} report --out report.html"
    )
    return project
