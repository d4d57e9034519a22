"""The one place that turns a registered weights file into a runnable model.

A ``.pt`` file is a pickle, and unpickling can run arbitrary code. By default it is loaded
through Ultralytics' safe loader (``torch.load(weights_only=True)`` with Ultralytics'
allow-list of model classes), which refuses any other global *without running it*. Full
unpickling happens only when the caller passes ``trust=True`` (``--trust`` on the command
line). torch and ultralytics are imported inside functions only, after forcing offline mode
with no auto-install, so opening the GUI or ``labeldesk --help`` never loads them and nothing
here ever reaches for the network.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model_files import (
    SUPPORTED_TASKS,
    FullFlavourError,
    ModelError,
    UnsafeModelError,
    private_copy,
    read_onnx_header,
)

if TYPE_CHECKING:  # numpy and onnxruntime load only when an ONNX model is run
    from .onnx_decode import OnnxDetector
    from .registry import ModelInfo  # only named in annotations: the registry imports this module


# --- reading names and task ------------------------------------------------------------------


def ultralytics():
    """Import Ultralytics offline, with no auto-install and quiet logs; return the module.

    The environment must be set before the first import: Ultralytics reads it then (and would
    otherwise probe the network to decide whether it is online).
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import ultralytics as ul
    except ImportError as e:  # the review flavour: say what is missing and how to get it
        from ..flavour import FULL_ONLY

        raise FullFlavourError(
            f"{e.name or 'ultralytics'} is not installed here: .pt models, training and ONNX "
            f"export {FULL_ONLY.replace('needs', 'need', 1)}"
        ) from None
    return ul


def _names_list(names: Any) -> list[str]:
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list | tuple):
        return [str(n) for n in names]
    raise ModelError("the model does not say its class names")


_UNSAFE_HINT = (
    "A .pt file is a pickle: loading it fully can run any code it contains. Only if you trust "
    "where it came from, run again with --trust (or export it to ONNX, which carries no code)."
)


def safe_load_checkpoint(copy: Path, shown: Path | str, trust: bool) -> dict:
    """``torch_safe_load`` on the private copy: allow-listed globals only unless ``trust``."""
    ultralytics()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(copy), safe_only=not trust)
    except TypeError as e:
        text = str(e)
        if not trust and "outside the supported" in text:
            cause = str(e.__cause__ or "")
            found = re.findall(r"GLOBAL ([\w.]+)", cause)
            what = f" (it refers to {', '.join(sorted(set(found)))})" if found else ""
            raise UnsafeModelError(
                f"{shown} was refused by safe loading: it refers to code outside Ultralytics' "
                f"allow-list of model classes{what}; nothing in it was run. {_UNSAFE_HINT}"
            ) from None
        reason = "TorchScript archive" if "TorchScript" in text else "damaged or not a checkpoint"
        raise ModelError(f"cannot load {shown}: {reason}") from None
    except ModuleNotFoundError as e:
        raise ModelError(f"cannot load {shown}: it needs the module {e.name!r}") from None
    if not isinstance(ckpt, dict):
        raise ModelError(f"{shown} is not an Ultralytics checkpoint")
    return ckpt


def pt_meta(copy: Path, shown: Path | str, trust: bool) -> tuple[str, list[str]]:
    ultralytics()  # first: without it (the review flavour) the error says what to install
    import torch

    ckpt = safe_load_checkpoint(copy, shown, trust)
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{shown} is not an Ultralytics checkpoint (it holds no model)")
    from ultralytics.nn.tasks import guess_model_task

    task = getattr(model, "task", None) or guess_model_task(model)
    return str(task), _names_list(getattr(model, "names", None))


def onnx_meta(copy: Path, shown: Path | str) -> tuple[str, list[str], dict[str, Any]]:
    meta = read_onnx_header(copy) or {}
    if "names" not in meta:
        raise ModelError(
            f"{shown} is an ONNX model without Ultralytics metadata (class names, task); "
            "export it with Ultralytics (`yolo export model=best.pt format=onnx`)"
        )
    try:
        names = ast.literal_eval(meta["names"])
        extra = {k: ast.literal_eval(meta[k]) for k in ("imgsz", "args") if meta.get(k, "").strip()}
    except (ValueError, SyntaxError):
        raise ModelError(f"{shown}: unreadable Ultralytics metadata") from None
    return meta.get("task", "detect"), _names_list(names), extra


def check_task(task: str, shown: Path | str) -> None:
    if task not in SUPPORTED_TASKS:
        raise ModelError(
            f"{shown} is a {task!r} model; pre-labelling needs boxes, so only detection models "
            "(and segmentation models, whose boxes are used) are supported"
        )


# --- loading for inference -------------------------------------------------------------------

_LOAD_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    """A model ready to predict, with what the prediction loop needs to know about it.

    Exactly one of ``yolo`` (Ultralytics: every ``.pt``, and RT-DETR ``.onnx``) and ``onnx``
    (onnxruntime with numpy decoding, :mod:`.onnx_decode`: every other ``.onnx``) is set.
    """

    info: ModelInfo
    yolo: Any  # ultralytics.YOLO, or None for a model run by ``onnx``
    names: dict[int, str]
    fixed_imgsz: int | None = None  # an ONNX export with a static input size
    _folder: Path | None = None  # the private copy an ONNX session reads; removed by close()
    onnx: OnnxDetector | None = None

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def safe_default(on: bool) -> Iterator[None]:
    """Make Ultralytics' own checkpoint load (inside ``YOLO(path)``) weights-only too.

    The explicit gate has already refused unsafe globals; this keeps the bytes from ever being
    fully unpickled when the user did not trust them (defence in depth, and one code path).
    """
    from ultralytics.nn import tasks

    if not on:
        yield
        return
    if not hasattr(tasks, "SAFE_LOAD"):
        # Fail closed: without the switch, Ultralytics' own load would fully unpickle the file.
        raise ModelError(
            "this Ultralytics version has no weights-only switch (ultralytics.nn.tasks."
            "SAFE_LOAD), so LabelDesk cannot load an untrusted .pt with it; install a version "
            "LabelDesk supports (see pyproject.toml) or use --trust for files you trust"
        )
    with _LOAD_LOCK:
        before = tasks.SAFE_LOAD
        tasks.SAFE_LOAD = True
        try:
            yield
        finally:
            tasks.SAFE_LOAD = before


def load_model(info: ModelInfo, *, trust: bool = False) -> LoadedModel:
    """Load a registered model for inference from a verified private copy of its file.

    A ``.pt`` goes through the safe loader first (unless ``trust``); an ``.onnx`` needs
    onnxruntime and runs without torch or Ultralytics (:mod:`.onnx_decode`), except an RT-DETR
    export, which Ultralytics decodes. Raises :class:`ModelChangedError` if the file's bytes are
    not the registered ones, :class:`UnsafeModelError` if safe loading refuses it.
    """
    # The private copy; None once the weights are in memory and the folder is gone.
    folder: Path | None
    folder = Path(tempfile.mkdtemp(prefix="labeldesk-run-"))
    try:
        with private_copy(Path(info.path), expected=info.id) as (copy, _):
            target = folder / f"weights.{info.format}"
            # External data files (ONNX) keep their place relative to the model.
            for data in sorted(copy.parent.rglob("*")):
                if data.is_file() and data != copy:
                    dest = folder / data.relative_to(copy.parent)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(data), dest)
            shutil.move(str(copy), target)
        fixed = None
        detector = None
        yolo: Any = None
        if info.format == "pt":
            ultralytics()
            if not trust:
                safe_load_checkpoint(target, info.path, trust=False)  # the gate
            from ultralytics import YOLO

            with safe_default(not trust):
                try:
                    yolo = YOLO(str(target), task=info.task)
                except TypeError as e:
                    raise ModelError(f"cannot load {info.path}: {e}") from None
            if type(yolo.model).__name__ == "RTDETRDetectionModel":
                yolo = _as_rtdetr(yolo)
            shutil.rmtree(folder, ignore_errors=True)  # the weights are in memory now
            folder = None
        else:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                raise ModelError(
                    "running .onnx models needs onnxruntime: pip install onnxruntime"
                ) from None
            _, _, extra = onnx_meta(target, info.path)
            if not extra.get("args", {}).get("dynamic", False) and extra.get("imgsz"):
                fixed = int(max(extra["imgsz"]))
            from . import onnx_decode

            meta = read_onnx_header(target) or {}
            if onnx_decode.supports(meta):
                try:
                    detector = onnx_decode.OnnxDetector(target, meta)
                except Exception as e:  # onnxruntime refuses the graph: say so, in one line
                    raise ModelError(f"onnxruntime cannot load {info.path}: {e}") from None
                if detector.fixed is not None:
                    fixed = max(detector.fixed)
            else:
                try:
                    ultralytics()
                except FullFlavourError:
                    raise FullFlavourError(
                        f"{info.path} is an RT-DETR export, which LabelDesk runs through "
                        "Ultralytics; install the full flavour (pip install labeldesk)"
                    ) from None
                from ultralytics import YOLO

                yolo = _as_rtdetr(YOLO(str(target), task=info.task))
        names = {i: n for i, n in enumerate(info.class_names)}
        return LoadedModel(info, yolo, names, fixed, folder, onnx=detector)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _as_rtdetr(yolo: Any) -> Any:
    """The same loaded model behind Ultralytics' RT-DETR front end (its own post-processing);
    ``RTDETR(model)`` adopts a loaded model without reading the file again."""
    from ultralytics import RTDETR

    return RTDETR(yolo)
