"""Pre-label from the window: choose a registered model and its parameters, run in background.

The run goes on in a status-bar job (with Cancel) while the reviewer keeps working; when it ends
the session is pointed at the model's cached boxes and they appear as pending pre-labels on
every image that has no labels yet.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
)

from labeldesk.app import review
from labeldesk.core.defaults import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU

from .operations import Op, run_op

DEFAULTS = {"conf": DEFAULT_CONF, "iou": DEFAULT_IOU, "imgsz": DEFAULT_IMGSZ}


class PrelabelDialog(QDialog):
    def __init__(self, parent, models: list, last: dict[str, dict] | None = None) -> None:
        """``last``: model id -> the parameters it was last run with (offered again)."""
        super().__init__(parent)
        self.setWindowTitle("Pre-label with a model")
        self.last = last or {}
        form = QFormLayout(self)
        self.model = QComboBox()
        for m in models:
            self.model.addItem(f"{m.name}  ({m.format}, {len(m.class_names)} classes)", m.id)
        self.model.currentIndexChanged.connect(self._model_chosen)
        form.addRow("Model", self.model)
        self.conf = QDoubleSpinBox()
        self.conf.setRange(0.01, 1.0)
        self.conf.setSingleStep(0.05)
        self.conf.setValue(DEFAULT_CONF)
        form.addRow("Confidence ≥", self.conf)
        self.iou = QDoubleSpinBox()
        self.iou.setRange(0.05, 1.0)
        self.iou.setSingleStep(0.05)
        self.iou.setValue(DEFAULT_IOU)
        form.addRow("NMS IoU", self.iou)
        self.imgsz = QSpinBox()
        self.imgsz.setRange(32, 4096)
        self.imgsz.setSingleStep(32)
        self.imgsz.setValue(DEFAULT_IMGSZ)
        form.addRow("Image size", self.imgsz)
        if not models:
            form.addRow(QLabel("No model registered: use `labeldesk model add WEIGHTS`."))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(models))
        form.addRow(buttons)
        self._model_chosen()

    def _model_chosen(self) -> None:
        params = {**DEFAULTS, **self.last.get(self.model.currentData(), {})}
        self.conf.setValue(params["conf"])
        self.iou.setValue(params["iou"])
        self.imgsz.setValue(params["imgsz"])

    def choice(self) -> tuple[str, float, float, int]:
        return self.model.currentData(), self.conf.value(), self.iou.value(), self.imgsz.value()


def start_prelabel(window: Any, model_id: str, conf: float, iou: float, imgsz: int) -> Op:
    """Pre-label the session's base version in the background (a status-bar bar with Cancel;
    the reviewer keeps working), then show the model's boxes; returns the operation."""
    assert window.lanes is not None and window.ws is not None
    base = window.ws.session.base_id
    job = run_op(
        window,
        lambda p, progress, cancel: review.prelabel(
            p, model_id, base, conf=conf, iou=iou, imgsz=imgsz, progress=progress, cancel=cancel
        ),
        lane=window.lanes.jobs,  # minutes of inference: neither the writer nor the reader waits
        progress="status",
        title="Pre-labelling",
        on_done=window.project_actions.prelabels_ready,
        on_error=window.show_error,
    )
    window.prelabel_job = job
    return job
