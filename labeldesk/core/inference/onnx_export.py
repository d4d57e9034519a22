"""``labeldesk model export``: a registered ``.pt`` model exported to ONNX and registered too.

The exported file is a new model (its own sha256) that records the model it came from, so the
review flavour, which runs ``.onnx`` only, can use what the full flavour trained.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..defaults import DEFAULT_IMGSZ
from ..store.project import Project
from .loading import safe_default, safe_load_checkpoint, ultralytics
from .model_files import ModelError, private_copy
from .registry import AddReport, ModelInfo, add_model, get_model

# --- export ----------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What :func:`export_onnx` made: the new model, and the one it was exported from."""

    source: ModelInfo
    add: AddReport
    imgsz: int
    dynamic: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source.id,
            "imgsz": self.imgsz,
            "dynamic": self.dynamic,
            **self.add.to_json(),
        }


def export_onnx(
    project: Project,
    name_or_id: str,
    *,
    name: str | None = None,
    imgsz: int = DEFAULT_IMGSZ,
    dynamic: bool = True,
    trust: bool = False,
) -> ExportReport:
    """Export a registered ``.pt`` to ONNX with Ultralytics' exporter and register the result.

    The export reads a verified private copy (safe loading unless ``trust`` or the model was
    registered trusted), so the ONNX file is made from exactly the registered bytes. Its bytes
    go into the project's object store, like trained weights (fsck counts them through the
    model row), and are registered as ``name`` (default ``<source>-onnx``) with the source's
    ``trained_on``. ``dynamic`` exports accept any image size (the decoder pads each image to
    the stride, as Ultralytics does for ``.pt``); a static export runs at ``imgsz`` only.
    Needs the full flavour (torch, Ultralytics, onnx).
    """
    import warnings

    source = get_model(project, name_or_id)
    if source.format != "pt":
        raise ModelError(f"{source.name} is already an {source.format} model; export needs a .pt")
    if int(imgsz) != imgsz or imgsz < 32 or imgsz % 32:
        raise ModelError(f"imgsz must be a multiple of 32 (the stride), got {imgsz}")
    ultralytics()
    try:
        import onnx  # noqa: F401  (Ultralytics' exporter writes through it)
    except ImportError as e:
        raise ModelError(
            f"exporting to ONNX needs the full flavour with {e.name}: "
            "pip install 'labeldesk[dev]' (torch, Ultralytics and onnx)"
        ) from None
    trusted = trust or source.trusted
    with private_copy(Path(source.path), expected=source.id) as (copy, _):
        weights = copy.rename(copy.with_suffix(".pt"))
        if not trusted:
            safe_load_checkpoint(weights, source.path, trust=False)  # the gate
        from ultralytics import YOLO

        with safe_default(not trusted), warnings.catch_warnings():
            # Tracing warns about Python control flow on tensors; harmless for export.
            warnings.simplefilter("ignore")
            try:
                import onnxslim  # noqa: F401

                simplify = True
            except ImportError:
                simplify = False  # Ultralytics would try to pip-install it otherwise
            try:
                out = YOLO(str(weights), task=source.task).export(
                    format="onnx", imgsz=int(imgsz), dynamic=dynamic, simplify=simplify
                )
            except Exception as e:  # the exporter's own message says what went wrong
                raise ModelError(f"ONNX export of {source.name} failed: {e}") from None
        data = Path(out).read_bytes()
    project.objects.put_bytes(data)  # before the row that names it
    obj = project.objects.path(hashlib.sha256(data).hexdigest())
    trained_on = source.trained_on

    def link(model_id: str) -> None:
        if trained_on is not None:
            project.db.execute(
                "UPDATE model SET trained_on = ? WHERE id = ?", [trained_on, model_id]
            )

    report = add_model(project, obj, name or f"{source.name}-onnx", within=link)
    return ExportReport(source, report, int(imgsz), dynamic)
