"""Evaluate a registered model on a version from the window, optionally against a baseline.

The dialog only gathers the choice; the evaluation (inference for the images not yet in the
prediction cache, then the figures) runs as a status-bar job on its own connection, so neither
the window nor the writer that saves edits waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
)

from labeldesk.app import validation
from labeldesk.core.defaults import DEFAULT_IMGSZ

if TYPE_CHECKING:
    from labeldesk.core.inference.registry import ModelInfo
    from labeldesk.core.store.versions import Version

from .validation_data import version_choice


@dataclass(frozen=True)
class EvaluateChoice:
    model: str  # model id
    ref: str  # version id
    baseline_ref: str | None = None  # the same model on an earlier version
    baseline_model: str | None = None  # or another model on the same version
    imgsz: int = DEFAULT_IMGSZ
    trust: bool = False


class EvaluateDialog(QDialog):
    def __init__(
        self,
        parent,
        models: list[ModelInfo],
        versions: list[Version],
        head: str | None,
        imgsz_of: dict[str, int] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Evaluate a model")
        self.models, self.head = models, head
        self.imgsz_of = imgsz_of or {}  # model id -> the size it is usually judged at
        self.versions = sorted(versions, key=lambda v: v.seq, reverse=True)  # newest first
        form = QFormLayout(self)
        self.model = QComboBox()
        for m in models:
            self.model.addItem(f"{m.name}  ({m.format}, {len(m.class_names)} classes)", m.id)
        self.model.currentIndexChanged.connect(self._fill_baselines)
        self.model.currentIndexChanged.connect(self._model_chosen)
        form.addRow("Model", self.model)
        self.version = QComboBox()
        for v in self.versions:
            self.version.addItem(version_choice(v, head), v.id)
        if head is not None:
            self.version.setCurrentIndex(max(0, self.version.findData(head)))
        self.version.currentIndexChanged.connect(self._fill_baselines)
        form.addRow("Version", self.version)
        self.baseline = QComboBox()
        self.baseline.setToolTip(
            "Compare with the same model on an earlier version, or with another model on the "
            "same version; the evaluation fails its gate when mAP50-95 drops by more than 0.02."
        )
        form.addRow("Baseline", self.baseline)
        self.imgsz = QSpinBox()
        self.imgsz.setRange(32, 4096)
        self.imgsz.setSingleStep(32)
        self.imgsz.setValue(DEFAULT_IMGSZ)
        form.addRow("Image size", self.imgsz)
        self.trust = QCheckBox("Load a .pt file that safe loading refuses (it can run code)")
        form.addRow("", self.trust)
        if not models:
            form.addRow(QLabel("No model registered: use `labeldesk model add WEIGHTS`."))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Evaluate")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            bool(models) and bool(self.versions)
        )
        form.addRow(buttons)
        self._fill_baselines()
        self._model_chosen()

    def _model_chosen(self) -> None:
        self.imgsz.setValue(self.imgsz_of.get(self.model.currentData(), DEFAULT_IMGSZ))

    def _fill_baselines(self) -> None:
        """Earlier versions of the chosen one, then the other models."""
        self.baseline.clear()
        self.baseline.addItem("none", None)
        chosen = next((v for v in self.versions if v.id == self.version.currentData()), None)
        if chosen is not None:
            for v in self.versions:
                if v.seq < chosen.seq:
                    label = f"same model on {version_choice(v, self.head)}"
                    self.baseline.addItem(label, ("version", v.id))
        for m in self.models:
            if m.id != self.model.currentData():
                self.baseline.addItem(f"model {m.name} on the same version", ("model", m.id))

    def choice(self) -> EvaluateChoice:
        kind, base = self.baseline.currentData() or (None, None)
        return EvaluateChoice(
            model=self.model.currentData(),
            ref=self.version.currentData(),
            baseline_ref=base if kind == "version" else None,
            baseline_model=base if kind == "model" else None,
            imgsz=self.imgsz.value(),
            trust=self.trust.isChecked(),
        )


def start_evaluation(parent: Any, ops: Any, choice: EvaluateChoice) -> Any:
    """Run ``validate`` with the model's detections as a status-bar job; returns the operation.

    It runs on a jobs lane (inference can take minutes) and stores its rows itself; the caller
    connects ``finished`` (a :class:`~labeldesk.app.changes.Changed`) and ``failed``.
    """
    return ops.run(
        parent,
        lambda p, progress, cancel: validation.evaluate(
            p,
            choice.model,
            choice.ref,
            baseline_ref=choice.baseline_ref,
            baseline_model=choice.baseline_model,
            imgsz=choice.imgsz,
            trust=choice.trust,
            progress=progress,
            cancel=cancel,
        ),
        lane="jobs",
        progress="status",
        title="Evaluating a model",
        on_error=lambda _e: None,  # the caller shows it
    )
