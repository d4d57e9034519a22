"""Train a model from a version, and judge models against the release model, from the window.

Both dialogs are non-modal: training runs for minutes to hours, and the reviewer keeps working
meanwhile. The work runs on a thread with its own project connection (SQLite connections
belong to the thread that opened them); training itself runs in a child process
(:mod:`labeldesk.core.training.train`), so nothing slow ever runs in a slot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from labeldesk.app import training
from labeldesk.core.defaults import DEFAULT_IMGSZ

from .charts import LineChart, Series
from .operations import Lane, Op, run_op, show_error

#: Model YAMLs offered to train from scratch (Ultralytics builds them offline).
CONFIGS = ("yolov8n.yaml", "yolov8s.yaml", "yolo11n.yaml")
_LOSSES = ("train/box_loss", "train/cls_loss", "train/dfl_loss")
_MAPS = (("metrics/mAP50(B)", "val mAP50"), ("metrics/mAP50-95(B)", "val mAP50-95"))


def version_choices(project: Any) -> list[tuple[str, str]]:
    """(label, version id) for every version on main's history, newest first."""
    return training.version_choices(project)


class TrainDialog(QDialog):
    """Choose version, base, epochs, size, device; train with a live chart and Cancel."""

    trained = Signal(str)  # the registered model's name
    cancelled = Signal(int)  # the run id

    def __init__(self, parent: QWidget | None, root: Path, user: str, project: Any) -> None:
        super().__init__(parent)
        self.root, self.user = root, user
        # its own thread and connection: training takes minutes, reviewing goes on meanwhile
        self.lane = Lane(root, user, "labeldesk-train", dedicated=True)
        self.setWindowTitle("Train a model")
        self.setModal(False)
        self.job: Op | None = None
        self.epochs: list[dict[str, Any]] = []
        self.run_id: int | None = None

        form = QFormLayout()
        self.version = QComboBox()
        for label, vid in version_choices(project):
            self.version.addItem(label, vid)
        form.addRow("Version", self.version)
        self.base = QComboBox()
        for cfg in CONFIGS:
            self.base.addItem(f"{cfg} (from scratch)", ("config", cfg))
        for m in training.trainable_models(project):
            self.base.addItem(f"{m.name} ({m.short})", ("model", m.id))
        form.addRow("Start from", self.base)
        self.epochs_box = self._spin(1, 10_000, 10)
        form.addRow("Epochs", self.epochs_box)
        self.imgsz = self._spin(32, 4096, DEFAULT_IMGSZ, step=32)
        form.addRow("Image size", self.imgsz)
        self.batch = self._spin(1, 1024, 16)
        form.addRow("Batch", self.batch)
        self.device = QLineEdit("cpu")
        self.device.setToolTip("cpu, a CUDA device (0) or several (0,1: Ultralytics' DDP)")
        form.addRow("Device", self.device)
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: <version>-run<N>")
        form.addRow("Model name", self.name)

        self.status = QLabel("Choose what to train, then Train.")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.loss_chart = LineChart(self, min_height=160)
        self.map_chart = LineChart(self, min_height=160)
        charts = QHBoxLayout()
        charts.addWidget(self.loss_chart)
        charts.addWidget(self.map_chart)

        self.train_button = QPushButton("Train")
        self.train_button.setDefault(True)
        self.train_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.train_button, self.cancel_button, close):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addLayout(charts, 1)
        layout.addLayout(buttons)
        self.resize(760, 620)
        self._redraw()

    @staticmethod
    def _spin(low: int, high: int, value: int, step: int = 1) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setSingleStep(step)
        box.setValue(value)
        return box

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.job is not None and self.job.running:
            return
        kind, ident = self.base.currentData()
        options = {
            "epochs": self.epochs_box.value(),
            "imgsz": self.imgsz.value(),
            "batch": self.batch.value(),
            "device": self.device.text().strip() or "cpu",
        }
        ref = self.version.currentData()
        name = self.name.text().strip() or None
        self.epochs = []
        self._redraw()
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Materialising the version and starting Ultralytics…")
        self.bar.setRange(0, 0)
        self.job = run_op(
            self,
            lambda p, report, cancel: training.train(
                p,
                ref=ref,
                base=ident if kind == "model" else None,
                config=ident if kind == "config" else None,
                name=name,
                progress=report,  # each training event, carried to the GUI thread
                cancel=cancel,
                **options,
            ),
            lane=self.lane,
            on_progress=self._event,
            on_done=lambda changed: self._done(changed.report),
            on_error=self._failed,
            title="Training",
        )

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling: ending the training process…")

    def _event(self, event: Any) -> None:
        d = event.data
        if event.kind == "batch":
            total = max(1, d["epochs"] * max(d["batches"], 1))
            done = (d["epoch"] - 1) * d["batches"] + d["batch"]
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            losses = "  ".join(
                f"{k.split('/')[-1].removesuffix('_loss')} {v:.3f}" for k, v in d["loss"].items()
            )
            self.status.setText(
                f"Epoch {d['epoch']}/{d['epochs']}, batch {d['batch']}/{d['batches']}: {losses}"
            )
        elif event.kind == "epoch":
            self.epochs.append({"epoch": d["epoch"], "loss": d["loss"], "metrics": d["metrics"]})
            self._redraw()

    def _redraw(self) -> None:
        labels = [str(e["epoch"]) for e in self.epochs]
        xs = list(range(len(self.epochs)))
        losses = [
            Series(key.split("/")[-1], xs, [e["loss"].get(key, float("nan")) for e in self.epochs])
            for key in _LOSSES
        ]
        maps = [
            Series(label, xs, [e["metrics"].get(key, float("nan")) for e in self.epochs])
            for key, label in _MAPS
        ]
        self.loss_chart.plot(
            labels,
            losses,
            title="Training losses per epoch",
            ylabel="loss",
            empty_text="losses appear after the first epoch",
        )
        self.map_chart.plot(
            labels,
            maps,
            title="mAP on the val split",
            ylabel="mAP",
            unit_range=True,
            empty_text="mAP appears after the first epoch",
        )
        if self.isVisible():
            self.loss_chart.activate()
            self.map_chart.activate()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.loss_chart.activate()
        self.map_chart.activate()

    def _finish(self) -> None:
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1)

    def _done(self, result: Any) -> None:
        self._finish()
        self.bar.setValue(1)
        last = result.run.epochs[-1]["metrics"] if result.run.epochs else {}
        self.run_id = result.run.id
        notes = "".join(f"\n{n}" for n in result.notes)
        self.status.setText(
            f"Trained {result.model_name} in {result.run.wall_s:.0f} s: val mAP50-95 "
            f"{last.get('metrics/mAP50-95(B)', 0.0):.4f} (run {result.run.id}). It is "
            f"registered with its lineage; Models… → Promote judges it against the release "
            f"model.{notes}"
        )
        self.trained.emit(result.model_name)

    def _failed(self, error: BaseException) -> None:
        self._finish()
        if isinstance(error, training.training_cancelled()):
            self.run_id = error.run.id
            self.status.setText(str(error).capitalize() + "; no model was registered.")
            self.cancelled.emit(error.run.id)
            return
        self.status.setText(f"Training did not finish: {error}")
        show_error(self, "Training failed", error)

    def closeEvent(self, event: Any) -> None:
        # Closing the dialog does not end a run: training goes on, and its model is registered.
        super().closeEvent(event)


class ModelsDialog(QDialog):
    """The registered models with their lineage; Promote runs the champion/challenger gate."""

    promoted = Signal(object)  # the PromoteResult

    def __init__(self, parent: QWidget | None, root: Path, user: str, project: Any) -> None:
        super().__init__(parent)
        self.root, self.user = root, user
        self.lane = Lane(root, user, "labeldesk-promote", dedicated=True)
        self.setWindowTitle("Models and promotion")
        self.setModal(False)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(
            ("model", "release", "trained on", "base", "val mAP50-95", "added by")
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._show_lineage)
        self.lineage = QPlainTextEdit()
        self.lineage.setReadOnly(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.promote_button = QPushButton("Promote…")
        self.promote_button.setToolTip(
            "Evaluate the selected model and the release model on main (images the selected "
            "model did not train on); the release model changes only if it is not worse"
        )
        self.promote_button.clicked.connect(self.promote_selected)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.promote_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.lineage, 1)
        layout.addLayout(buttons)
        self.resize(820, 520)
        self.rows: list[dict[str, Any]] = []
        self.reload(project)

    def reload(self, project: Any) -> None:
        self.show_rows(training.models_table(project))

    def show_rows(self, models: list[training.ModelRow]) -> None:
        self.rows = []
        for row in models:
            m, run = row.info, row.run
            last = (
                run.epochs[-1]["metrics"].get("metrics/mAP50-95(B)") if run and run.epochs else None
            )
            self.rows.append(
                {
                    "info": m,
                    "run": run,
                    "cells": (
                        m.name,
                        "release" if row.release else "",
                        m.trained_on[:12] if m.trained_on else "not trained here",
                        row.base,
                        "" if last is None else f"{last:.4f}",
                        m.added_by,
                    ),
                }
            )
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, text in enumerate(row["cells"]):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)

    def selected(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows else None

    def _show_lineage(self) -> None:
        row = self.selected()
        if row is None:
            self.lineage.setPlainText("")
            return
        m, run = row["info"], row["run"]
        lines = [f"{m.name}  ({m.id})", f"classes: {', '.join(m.class_names)}"]
        if run is None:
            lines.append("Not trained in this project: its training data is unknown.")
        else:
            lines += [
                f"trained on version {run.version} (split manifest {run.split_hash[:12]})",
                f"run {run.id}, {run.status}, by {run.author}, {run.wall_s or 0:.0f} s, "
                f"seed {run.seed}",
                "parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(run.params.items())),
                "libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(run.libs.items())),
            ]
            for e in run.epochs:
                figure = e["metrics"].get("metrics/mAP50-95(B)", 0.0)
                lines.append(f"  epoch {e['epoch']}: val mAP50-95 {figure:.4f}")
        self.lineage.setPlainText("\n".join(lines))

    def promote_selected(self) -> None:
        row = self.selected()
        if row is None:
            self.status.setText("Select the model to promote.")
            return
        model_id = row["info"].id
        self.promote_button.setEnabled(False)
        self.status.setText(f"Evaluating {row['info'].name} and the release model…")

        def promote_and_list(p: Any) -> tuple[Any, list[training.ModelRow]]:
            changed = training.promote(p, model_id)
            return changed.report, training.models_table(p)

        run_op(
            self,
            promote_and_list,
            lane=self.lane,
            on_done=lambda got: self._promoted(*got),
            on_error=self._failed,
            title="Promote",
        )

    def _promoted(self, result: Any, models: list[training.ModelRow]) -> None:
        self.promote_button.setEnabled(True)
        self.status.setText(result.verdict())
        self.show_rows(models)
        self.promoted.emit(result)

    def _failed(self, error: BaseException) -> None:
        self.promote_button.setEnabled(True)
        self.status.setText(f"Not promoted: {error}")
        show_error(self, "Promote", error)
