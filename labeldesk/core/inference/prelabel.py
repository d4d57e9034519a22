"""Pre-labelling: run a registered model over the images of a version and cache its boxes.

Why it is built this way:

* Predictions are a cache keyed by (model, parameters, image) (see :mod:`.predictions`): only
  images without a cached prediction are predicted, so a rerun on a finished version costs one
  query, and a run that was killed resumes where it stopped.
* Results are stored in batches, one transaction each: a kill loses at most the batch in
  flight. Cancelling (checked between images) stores the images already predicted, then stops.
* The model sees every image upright: images are decoded here with Pillow and EXIF-transposed,
  exactly as the review window shows them, and handed to Ultralytics as BGR arrays (its
  convention for numpy input), or as RGB to :mod:`.onnx_decode`, which runs every ``.onnx``
  (except RT-DETR) without torch. Either returns boxes in the upright frame, the frame every
  box in LabelDesk lives in. Decoding runs on a background thread so it overlaps
  inference instead of adding to it.
* Boxes keep the model's class *names*; mapping them to a version's classes happens where they
  are shown, so one cache serves every version.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..defaults import DEFAULT_BATCH, DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU
from ..errors import CancelledError, LabelDeskError, Problem
from ..progress import CancelFn, ProgressFn
from ..store.manifest import ManifestStore
from ..store.objects import ObjectDamagedError, read_object
from ..store.project import Project
from ..store.versions import MAIN, resolve
from .loading import LoadedModel, load_model
from .predictions import Prediction, cached_images, params_key, prelabel_params, store
from .registry import ModelInfo, get_model, unknown_classes

if TYPE_CHECKING:
    from .onnx_decode import Detections
_PREFETCH = 8


@dataclass
class PrelabelReport:
    model: ModelInfo
    version: str
    params: dict[str, Any]
    images: int = 0  # images in the version
    cached: int = 0  # already predicted before this run
    predicted: int = 0  # predicted and stored by this run
    boxes: int = 0  # boxes stored by this run
    failed: list[Problem] = field(default_factory=list)  # images that could not be decoded
    unknown_classes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.id,
            "model_name": self.model.name,
            "version": self.version,
            "params": self.params,
            "images": self.images,
            "cached": self.cached,
            "predicted": self.predicted,
            "boxes": self.boxes,
            "failed": [{"image": p.where, "reason": p.reason} for p in self.failed],
            "unknown_classes": self.unknown_classes,
            "seconds": round(self.seconds, 3),
        }


def decode_upright_bgr(data: bytes) -> Any:
    """Image bytes -> upright (EXIF applied) HxWx3 uint8 BGR array, as Ultralytics takes numpy.

    The channels of :func:`decode_upright_rgb` reversed (the same bytes ``cv2.cvtColor`` gives,
    without needing cv2, which the review flavour does not ship).
    """
    import numpy as np

    return np.ascontiguousarray(decode_upright_rgb(data)[:, :, ::-1])


def decode_upright_rgb(data: bytes) -> Any:
    """Image bytes -> upright (EXIF applied) HxWx3 uint8 RGB array (the ONNX path's input).

    Same pixels as :func:`labeldesk.core.images.open_upright`, minus its copies when there is
    nothing to rotate: this runs once per image per pre-labelling run, so it is kept lean.
    """
    import numpy as np
    from PIL import Image, ImageOps

    im: Image.Image = Image.open(io.BytesIO(data))
    try:
        orientation = int(im.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: show the pixels as stored, like the importer
        orientation = 1
    if 2 <= orientation <= 8:
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


class _Prefetch:
    """Decode images on a background thread, a few ahead of the consumer."""

    _END = object()

    def __init__(
        self, project: Project, shas: list[str], depth: int = _PREFETCH, *, rgb: bool = False
    ) -> None:
        self._objects = project.objects
        self._decode = decode_upright_rgb if rgb else decode_upright_bgr
        self._shas = shas
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labeldesk-decode", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        for sha in self._shas:
            item: tuple[str, Any, str | None]  # (sha, the pixels or None, why not)
            try:
                # verified: a model must never be run (or judged) on bytes that are not the image
                item = (sha, self._decode(read_object(self._objects, sha)), None)
            except ObjectDamagedError as e:
                item = (sha, None, f"{e.reason}; run `labeldesk fsck`")
            except Exception as e:  # a damaged object: report it, go on with the rest
                item = (sha, None, f"cannot decode: {e}")
            if not self._put(item):
                return
        self._put(self._END)

    def __iter__(self) -> Iterator[tuple[str, Any, str | None]]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _to_predictions(result: Any) -> list[Prediction]:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    names = result.names
    xyxy = boxes.xyxy.cpu().numpy().tolist()
    scores = boxes.conf.cpu().numpy().tolist()
    classes = boxes.cls.cpu().numpy().astype(int).tolist()
    return [
        Prediction(str(names[c]), x1, y1, x2 - x1, y2 - y1, s)
        for (x1, y1, x2, y2), s, c in zip(xyxy, scores, classes, strict=True)
    ]


def _detections_to_predictions(found: Detections, names: dict[int, str]) -> list[Prediction]:
    return [
        Prediction(names.get(c, str(c)), x1, y1, x2 - x1, y2 - y1, s)
        for (x1, y1, x2, y2), s, c in zip(
            found.xyxy.tolist(), found.scores.tolist(), found.classes.tolist(), strict=True
        )
    ]


def prelabel(
    project: Project,
    model: str | ModelInfo,
    version_ref: str = MAIN,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
    imgsz: int = DEFAULT_IMGSZ,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    batch: int = DEFAULT_BATCH,
    *,
    trust: bool = False,
    loaded: LoadedModel | None = None,
) -> PrelabelReport:
    """Predict every image of ``version_ref`` that has no cached prediction for (model, params).

    ``model`` is a registered name or id; its file must still hold the registered bytes.
    ``trust`` allows full unpickling of a ``.pt`` that safe loading refuses (it can run code).
    ``loaded`` reuses a model already in memory (benchmarks, the GUI's long-lived worker).
    Raises :class:`CancelledError` when ``cancel()`` turns true; what was predicted before is
    stored, and a rerun goes on from there.
    """
    t0 = time.perf_counter()
    params = prelabel_params(conf, iou, imgsz)
    if batch < 1:
        raise LabelDeskError("batch must be at least 1")
    info = model if isinstance(model, ModelInfo) else get_model(project, model)
    version = resolve(project.db, version_ref)
    ms = ManifestStore(project.db)
    shas = [sha for sha, _ in ms.entries(ms.tree(version.tree))]
    done_before = cached_images(project.db, info.id, params)
    todo = [s for s in shas if s not in done_before]
    report = PrelabelReport(
        info,
        version.id,
        params,
        images=len(shas),
        cached=len(shas) - len(todo),
        unknown_classes=unknown_classes(info.class_names, version.classes),
    )
    if todo:
        own = loaded is None
        lm = loaded or load_model(info, trust=trust)
        try:
            _run(project, lm, todo, params, batch, report, progress, cancel)
        finally:
            if own:
                lm.close()
    report.seconds = time.perf_counter() - t0
    return report


def _run(
    project: Project,
    lm: LoadedModel,
    todo: list[str],
    params: dict[str, Any],
    batch: int,
    report: PrelabelReport,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> None:
    if lm.fixed_imgsz and lm.fixed_imgsz != params["imgsz"]:
        raise LabelDeskError(
            f"{lm.info.name} is an ONNX export with a fixed input size of {lm.fixed_imgsz}; "
            f"run it with imgsz {lm.fixed_imgsz} (or export it with dynamic=True)"
        )
    kwargs = {
        "conf": params["conf"],
        "iou": params["iou"],
        "imgsz": params["imgsz"],
        "verbose": False,
    }
    pending: list[tuple[str, list[Prediction]]] = []

    def flush() -> None:
        if pending:
            store(project, lm.info.id, params, pending)
            report.predicted += len(pending)
            report.boxes += sum(len(p) for _, p in pending)
            pending.clear()

    images = _Prefetch(project, todo, rgb=lm.onnx is not None)
    done, total = 0, len(todo)
    try:
        for sha, array, error in images:
            if cancel is not None and cancel():
                flush()
                raise CancelledError(
                    f"cancelled: {report.cached + report.predicted} of {report.images} images "
                    "have predictions (kept); run again to continue"
                )
            if error is not None:
                report.failed.append(Problem(sha, error))
            else:
                if lm.onnx is not None:
                    found = lm.onnx.predict(array, params["conf"], params["iou"], params["imgsz"])
                    pending.append((sha, _detections_to_predictions(found, lm.names)))
                else:
                    (result,) = lm.yolo.predict(array, **kwargs)
                    pending.append((sha, _to_predictions(result)))
                if len(pending) >= batch:
                    flush()
            done += 1
            if progress is not None:
                progress(done, total, "pre-labelling")
        flush()
    finally:
        images.close()


def show_in_session(
    project: Project, session_id: int, model_id: str | None, params: dict[str, Any] | None
) -> None:
    """Make a review session show ``model_id``'s cached boxes (under ``params``) as pre-labels.

    Writes the same columns as ``labeldesk.app.review.set_prelabel_source``; it lives here too
    because core (the demo) may not import the app layer.
    """
    with project.transaction():
        project.db.execute(
            "UPDATE review_session SET prelabel_model = ?, prelabel_params = ? WHERE id = ?",
            [model_id, params_key(params) if params is not None else None, session_id],
        )
