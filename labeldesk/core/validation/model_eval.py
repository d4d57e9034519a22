"""Detections of a registered model, as an evaluation :class:`~.evaluation.Source`.

Why it is built this way:

* The model is run through the pre-labelling path (:func:`.prelabel.prelabel`), so images are
  seen upright exactly as reviewers see them, and predictions land in the same cache keyed by
  (model, parameters, image): evaluating again, on another version that shares most images,
  or after a crash, only predicts what is missing.
* Evaluation needs the whole precision/recall curve, so the model runs at the COCO-standard
  low confidence (0.001, as Ultralytics' own ``val`` does); the ``--conf`` of ``validate`` only
  picks the operating point for precision and recall. These predictions are a different cache
  entry from a pre-labelling run at 0.25, so the two never mix.
* The model's class *names* map to the version's class ids by name, the same rule as
  pre-labelling; boxes of a class the version does not have cannot match any label, so they are
  left out (the model's class names are in the source's parameters, for the record).
* The source's identity is the model's id, the sha256 of its weights: an evaluation says which
  bytes were judged, whatever name the model had.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..defaults import EVAL_CONF
from ..errors import InputError, Problem
from ..inference.predictions import load_many, prelabel_params
from ..inference.prelabel import DEFAULT_IMGSZ, DEFAULT_IOU, prelabel
from ..inference.registry import get_model
from ..progress import CancelFn, ProgressFn
from ..store.project import Project
from .evaluation import Detections, ImageIndex, Source


def model_source(
    project: Project,
    name_or_id: str,
    *,
    imgsz: int = DEFAULT_IMGSZ,
    iou: float = DEFAULT_IOU,
    trust: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Source:
    """A :class:`Source` whose detections are ``name_or_id``'s predictions on any version.

    The model is checked now (registered, file unchanged); it is loaded and run only when
    detections are asked for, and only for images without cached predictions. ``trust``
    allows full unpickling of a ``.pt`` that safe loading refuses (it can run code).
    """
    info = get_model(project, name_or_id)
    predict = prelabel_params(EVAL_CONF, iou, imgsz)
    params: dict[str, Any] = {
        "model": info.name,
        "model_id": info.id,
        "format": info.format,
        "predict": predict,
        "class_names": info.class_names,  # matched to the version's classes by name
    }

    def detections(index: ImageIndex) -> Detections:
        version = index.version
        ids = {str(c["name"]): int(c["id"]) for c in version.classes}
        if version.classes and info.class_names and not set(info.class_names) & set(ids):
            # Checked before any inference: every box would be left out and every figure 0.
            raise InputError(
                f"cannot evaluate {info.name} on {version.short}: no class of the model is a "
                "class of the version (classes are matched by name)",
                [
                    Problem(f"model {info.name}", ", ".join(info.class_names)),
                    Problem(f"version {version.short}", ", ".join(sorted(ids))),
                ],
            )
        report = prelabel(
            project,
            info,
            version.id,
            conf=predict["conf"],
            iou=predict["iou"],
            imgsz=predict["imgsz"],
            progress=progress,
            cancel=cancel,
            trust=trust,
        )
        if report.failed:
            # An image the model cannot see would count as all misses and pull the figures
            # down for a reason that has nothing to do with the model: refuse, and say which.
            raise InputError(
                f"cannot evaluate {info.name} on {version.short}: {len(report.failed)} image(s) "
                "could not be decoded (the file store may be damaged: run `labeldesk fsck`)",
                [
                    Problem(f"{index.names.get(p.where, p.where)} ({p.where[:12]})", p.reason)
                    for p in report.failed
                ],
            )
        out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for sha, preds in load_many(project.db, info.id, predict, index.shas).items():
            kept = [p for p in preds if p.name in ids]
            out[sha] = (
                np.asarray([(p.x, p.y, p.w, p.h) for p in kept], dtype=np.float64).reshape(-1, 4),
                np.asarray([ids[p.name] for p in kept], dtype=np.int64),
                np.asarray([p.score for p in kept], dtype=np.float64),
            )
        return out

    return Source("model", info.id, info.name, params, detections)
