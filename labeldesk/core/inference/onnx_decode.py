"""Run Ultralytics ONNX detection models with onnxruntime and numpy only (no torch, no cv2).

Why it exists: the review flavour of the desktop app ships without torch (about 5 GB less), yet
pre-labelling and suggestions must still run. An Ultralytics ONNX export is a plain graph from
a normalised image to raw head outputs; everything around it — letterbox, decoding, NMS and
scaling back — is re-done here in numpy, step for step as Ultralytics does it, so the boxes
agree with Ultralytics' own (within 1 px and 1e-3 in score, see
tests/core/inference/test_onnx_decode.py).

Why always this path for ``.onnx`` (not only when Ultralytics is missing): predictions are a
cache keyed by (model, parameters, image). If the full and the review flavour decoded the same
model differently, one project would hold boxes that depend on which app wrote them. One decoder
for every ``.onnx`` gives the same boxes everywhere, and skips Ultralytics' import (seconds).

What it reproduces, from Ultralytics 8.4 (``LetterBox``, ``non_max_suppression``,
``scale_boxes``):

* letterbox: scale by ``min(new/h, new/w)`` (sides rounded), bilinear resize, pad with grey 114
  centred (``round(d/2 ∓ 0.1)``); a model with a dynamic input size gets the minimal
  rectangle (padding only to the stride), a static one its fixed square, as Ultralytics does;
* the resize is OpenCV's ``INTER_LINEAR`` for 8-bit images re-done in integers (11-bit
  weights, the same rounding), so the model sees the pixels it would see through cv2;
* decode ``(1, 4 + nc [+ masks], anchors)``: best class per anchor, ``score > conf``, boxes
  offset by class × 7680 for class-wise NMS (IoU ``> iou`` suppresses), 300 at most; an
  end-to-end head ``(1, n, 6)`` only needs the ``score > conf`` filter;
* boxes back to the original image: minus padding, divided by the per-axis gain, clipped.

RT-DETR exports (head ``RTDETRDecoder``) are not decoded here; :func:`supports` says so.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelDeskError

#: Ultralytics' defaults for prediction (``max_det``, the class offset for batched NMS).
MAX_DET = 300
MAX_NMS = 30000
MAX_WH = 7680
PAD_VALUE = 114
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


class OnnxDecodeError(LabelDeskError):
    """The ONNX model's outputs are not a layout this decoder knows."""


@dataclass(frozen=True)
class Detections:
    """Boxes of one image, in pixels of that image, best score first."""

    xyxy: np.ndarray  # (n, 4) float32
    scores: np.ndarray  # (n,) float32
    classes: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return int(self.scores.shape[0])


# --- letterbox -------------------------------------------------------------------------------


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR source indices and 11-bit weights along one axis."""
    scale = src / dst
    fx = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx).astype(np.int64)
    fx = fx - sx
    low = sx < 0
    fx[low], sx[low] = 0.0, 0
    high = sx >= src - 1
    fx[high], sx[high] = 0.0, src - 1
    w0 = np.rint((1.0 - fx) * _COEF_SCALE)
    w1 = np.rint(fx * _COEF_SCALE)
    return sx, np.minimum(sx + 1, src - 1), np.stack([w0, w1]).astype(np.int32)


def resize_linear(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxWxC uint8 image as ``cv2.resize(img, (width, height), INTER_LINEAR)`` does.

    OpenCV works in fixed point: horizontal taps with 11-bit weights into int32, then the
    vertical pass of its vector code, ``((b0·(s0>>4))>>16 + (b1·(s1>>4))>>16 + 2) >> 2``. The
    same arithmetic here gives the same bytes (cv2's exact 2× path, INTER_AREA, agrees with
    it too), so the network sees what it sees under Ultralytics.
    """
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    if (w, h) == (2 * width, 2 * height):
        # Exactly half (the demo's 640x480 at 320): every output pixel is the rounded mean of a
        # 2x2 block, which is what both OpenCV's INTER_AREA shortcut and the formula below give.
        pairs = img[0::2].astype(np.uint16) + img[1::2]
        block = pairs[:, 0::2] + pairs[:, 1::2]
        block += 2
        block >>= 2
        return block.astype(np.uint8)
    x0, x1, wx = _linear_taps(w, width)
    y0, y1, wy = _linear_taps(h, height)
    # Horizontal pass on just the rows the vertical pass reads (int32 holds 255 * 2048 * 2048
    # / 16, the largest intermediate); gathered as bytes, widened after, updated in place.
    rows = np.unique(np.concatenate([y0, y1]))
    where = np.searchsorted(rows, np.stack([y0, y1]))
    sub = img[rows]
    horiz = np.take(sub, x0, axis=1).astype(np.int32)
    horiz *= wx[0][None, :, None]
    right = np.take(sub, x1, axis=1).astype(np.int32)
    right *= wx[1][None, :, None]
    horiz += right
    horiz >>= 4
    out = np.take(horiz, where[0], axis=0)
    out *= wy[0][:, None, None]
    out >>= 16
    below = np.take(horiz, where[1], axis=0)
    below *= wy[1][:, None, None]
    below >>= 16
    out += below
    out += 2
    out >>= 2
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed in the network input: what :func:`scale_boxes` undoes."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def letterbox(
    img: np.ndarray, new_shape: tuple[int, int], *, auto: bool = False, stride: int = 32
) -> tuple[np.ndarray, Letterbox]:
    """Ultralytics' ``LetterBox`` (centred, scale up allowed): padded image and its placement.

    ``new_shape`` is (height, width); ``auto`` pads only up to a multiple of ``stride``.
    """
    h, w = img.shape[:2]
    r = min(new_shape[0] / h, new_shape[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = new_shape[1] - new_w, new_shape[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    resized = resize_linear(img, new_w, new_h)
    out = np.full(
        (new_h + top + bottom, new_w + left + right, img.shape[2]), PAD_VALUE, dtype=np.uint8
    )
    out[top : top + new_h, left : left + new_w] = resized
    return out, Letterbox(new_w / w, new_h / h, left, top)


def scale_boxes(xyxy: np.ndarray, placed: Letterbox, shape: tuple[int, int]) -> np.ndarray:
    """Boxes in network-input pixels -> pixels of the original (height, width) image, clipped."""
    out = xyxy.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - placed.pad_x) / placed.gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - placed.pad_y) / placed.gain_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape[0])
    return out


# --- decode and NMS --------------------------------------------------------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS as torchvision's: indices kept, best score first; IoU ``> iou`` suppresses."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(overlap > iou)]  # NaN (two empty boxes) keeps, as torchvision does
    return np.asarray(keep, dtype=np.int64)


def decode(
    output: np.ndarray,
    conf: float,
    iou: float,
    nc: int,
    *,
    end2end: bool = False,
    max_det: int = MAX_DET,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw head output -> (xyxy, score, class) in network-input pixels.

    ``output`` is ``(4 + nc + extra, anchors)`` (boxes as centre, size) or, for an end-to-end
    head, ``(n, 6)`` rows of (x1, y1, x2, y2, score, class).
    """
    if end2end or (output.ndim == 2 and output.shape[-1] == 6 and output.shape[0] != 4 + nc):
        rows = output[output[:, 4] > conf][:max_det]
        return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)
    if output.ndim != 2 or output.shape[0] < 4 + nc:
        raise OnnxDecodeError(
            f"unexpected output shape {tuple(output.shape)} for a model of {nc} classes"
        )
    cls = output[4 : 4 + nc]
    score = cls.max(axis=0)
    keep = score > conf
    if not keep.any():
        empty = np.zeros((0, 4), np.float32)
        return empty, np.zeros(0, np.float32), np.zeros(0, np.int64)
    box, score, klass = output[:4, keep].T, score[keep], cls[:, keep].argmax(axis=0)
    if score.shape[0] > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        box, score, klass = box[top], score[top], klass[top]
    xyxy = np.empty_like(box)
    half_w, half_h = box[:, 2] / 2, box[:, 3] / 2
    xyxy[:, 0] = box[:, 0] - half_w
    xyxy[:, 1] = box[:, 1] - half_h
    xyxy[:, 2] = box[:, 0] + half_w
    xyxy[:, 3] = box[:, 1] + half_h
    picked = nms(xyxy + (klass * MAX_WH)[:, None].astype(xyxy.dtype), score, iou)[:max_det]
    return xyxy[picked], score[picked], klass[picked].astype(np.int64)


# --- the model -------------------------------------------------------------------------------


def _literal(meta: dict[str, str], key: str, default: Any) -> Any:
    text = meta.get(key, "").strip()
    if not text:
        return default
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return default


def supports(meta: dict[str, str]) -> bool:
    """Whether an Ultralytics ONNX export with this metadata is decoded here (not RT-DETR)."""
    return meta.get("head") != "RTDETRDecoder" and meta.get("task", "detect") in (
        "detect",
        "segment",
    )


class OnnxDetector:
    """An Ultralytics detection (or segmentation: boxes only) ONNX export on onnxruntime."""

    def __init__(self, path: Path | str, meta: dict[str, str], *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.fp16 = first.type == "tensor(float16)"
        self._rank = len(first.shape)
        dims = first.shape[2:4] if self._rank == 4 else []
        #: (height, width) of a static input; None when the export is dynamic.
        self.fixed: tuple[int, int] | None = (
            (int(dims[0]), int(dims[1])) if all(isinstance(d, int) for d in dims) and dims else None
        )
        names = _literal(meta, "names", {})
        self.nc = len(names)
        self.stride = int(_literal(meta, "stride", 32) or 32)
        self.end2end = bool(_literal(meta, "end2end", False))

    def predict(self, rgb: np.ndarray, conf: float, iou: float, imgsz: int) -> Detections:
        """Boxes for one HxWx3 uint8 RGB image, as Ultralytics' ``predict`` would return them."""
        if self._rank != 4:
            raise OnnxDecodeError(
                f"the model's input {self.input_name!r} has {self._rank} dimensions, not an "
                "image batch (N, 3, H, W): it is not an Ultralytics detection export"
            )
        if self.fixed is not None:
            shape, auto = self.fixed, False
        else:
            shape, auto = (imgsz, imgsz), True
        placed_img, placed = letterbox(rgb, shape, auto=auto, stride=self.stride)
        blob: np.ndarray = placed_img.transpose(2, 0, 1)[None].astype(
            np.float16 if self.fp16 else np.float32
        )
        blob /= 255.0
        (output, *_) = self.session.run(None, {self.input_name: blob})
        xyxy, scores, classes = decode(
            output[0].astype(np.float32, copy=False), conf, iou, self.nc, end2end=self.end2end
        )
        if len(scores):
            xyxy = scale_boxes(xyxy, placed, rgb.shape[:2])
        return Detections(xyxy.astype(np.float32), scores.astype(np.float32), classes)
