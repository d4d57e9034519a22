"""The validation panel: models across versions, review agreement, and drift.

* **Models**: a chart of one metric per source (model or predictions file) over the versions
  it was evaluated on, failed gates marked red; below it every stored evaluation, and the
  per-class figures of the one selected. "Evaluate model…" runs a registered model on a version
  as a status-bar job.
* **Agreement**: how reviewers treated the model's pre-labels, per committed session (a chart
  of the rates in commit order, and a table per session and class).
* **Drift**: two versions compared feature by feature (PSI), run on demand.

What it shows is read on the window's worker thread (the agreement figures scan the review
record) and only while the panel is on screen: a hidden panel just notes that it is stale.
Charts import matplotlib the first time they are shown (see charts.py).
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from labeldesk.core.project import Project
from labeldesk.core.timestamps import format_time

from . import validation_data as vd
from .charts import LineChart
from .models import FAIL_COLOR, Column, RecordTableModel

PASS_COLOR = "#188038"


def _table(model: RecordTableModel) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().setVisible(False)
    view.setWordWrap(False)
    view.setAlternatingRowColors(True)
    return view


def _signed(drop: float | None) -> str:
    """A drop below the baseline (negative: an improvement)."""
    return "" if drop is None else f"{drop:+.4f}"


def _gate(e: Any) -> str:
    if e.passed is None:
        return ""
    return "pass" if e.passed else "FAIL"


def _gate_color(e: Any) -> str | None:
    if e.passed is None:
        return None
    return PASS_COLOR if e.passed else FAIL_COLOR


def _eval_tooltip(e: Any) -> str:
    lines = [
        f"evaluation {e.id} (run {e.run[:8]}), {e.role}, by {e.author} at {format_time(e.created)}",
        f"source: {e.source_kind} {e.source_name} ({e.source_hash[:12]})",
        f"version {e.version[:12]}, subset {e.subset_label}, {e.n_images} images",
    ]
    if e.baseline is not None:
        lines.append(
            f"gated on {e.metric}: {vd.fmt(e.value, 4)} vs baseline #{e.baseline} "
            f"{vd.fmt(e.baseline_value, 4)}, drop {_signed(e.metric_drop) or 'n/a'} "
            f"(limit {vd.fmt(e.max_drop, 4)})"
        )
    predict = e.params.get("source", {}).get("predict")
    if predict:
        lines.append("inference: " + ", ".join(f"{k} {v}" for k, v in sorted(predict.items())))
    return "\n".join(lines)


class ValidationPanel(QWidget):
    """Lives in the window's "Validation" dock; ``window`` is the MainWindow."""

    loaded = Signal()  # the panel shows fresh data
    evaluationDone = Signal(object)  # a ValidationReport from "Evaluate model…"
    driftDone = Signal(object)  # a DriftReport

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window_ = window
        self.project: Project | None = None
        self.data: vd.PanelData | None = None
        self.stale = True
        self.on_screen = False
        self.eval_job: Any = None
        self.drift_job: Any = None
        self.drift_report: Any = None
        self.evaluate_dialog_: Any = None
        self._select_after_load: int | None = None
        self._versions: dict[str, Any] = {}  # id -> Version, for the tables' labels
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_models_tab(), "Models")
        self.tabs.addTab(self._build_agreement_tab(), "Agreement")
        self.tabs.addTab(self._build_drift_tab(), "Drift")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)

    def sizeHint(self) -> QSize:
        # Small: it shares a tabbed dock with Versions, whose area takes the larger hint of the
        # two; "show_validation" makes the dock taller when the panel is brought forward.
        return QSize(800, 180)

    def minimumSizeHint(self) -> QSize:
        return QSize(320, 140)

    # -- building ----------------------------------------------------------------------------
    def _build_models_tab(self) -> QWidget:
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.setContentsMargins(0, 4, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Metric"))
        self.metric = QComboBox()  # filled when first shown (see set_on_screen)
        self.metric.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.metric.currentIndexChanged.connect(self._plot_models)
        bar.addWidget(self.metric)
        bar.addStretch(1)
        self.evaluate_button = QPushButton("Evaluate model…")
        self.evaluate_button.setToolTip(
            "Run a registered model on a version and store its figures (in the background)"
        )
        self.evaluate_button.clicked.connect(self.evaluate_dialog)
        bar.addWidget(self.evaluate_button)
        lay.addLayout(bar)

        self.models_chart = LineChart(min_height=120)
        self.eval_model = RecordTableModel(
            [
                Column("id", lambda e: e.id, numeric=True, tooltip=_eval_tooltip),
                Column("created", lambda e: format_time(e.created)),
                Column("version", lambda e: self._version_text(e.version)),
                Column("subset", lambda e: e.subset_label),
                Column("kind", lambda e: e.source_kind),
                Column("source", vd.source_label, tooltip=_eval_tooltip),
                Column("mAP50-95", lambda e: vd.fmt(e.summary.get("map50_95")), numeric=True),
                Column("mAP50", lambda e: vd.fmt(e.summary.get("map50")), numeric=True),
                Column("role", lambda e: e.role),
                Column("baseline", lambda e: vd.fmt(e.baseline_value), numeric=True),
                Column("drop", lambda e: _signed(e.metric_drop), numeric=True),
                Column("gate", _gate, color=_gate_color, tooltip=_eval_tooltip),
            ],
            self,
        )
        self.eval_table = _table(self.eval_model)
        self.eval_table.selectionModel().currentRowChanged.connect(self._eval_selected)
        self.class_model = RecordTableModel(
            [
                Column("class", lambda c: c.get("name", str(c["category_id"]))),
                Column("labels", lambda c: c["labels"], numeric=True),
                Column("detections", lambda c: c["detections"], numeric=True),
                Column("AP", lambda c: vd.fmt(c["ap"]), numeric=True),
                Column("AP50", lambda c: vd.fmt(c["ap50"]), numeric=True),
                Column("P", lambda c: vd.fmt(c["precision"]), numeric=True),
                Column("R", lambda c: vd.fmt(c["recall"]), numeric=True),
                Column("TP", lambda c: c["tp"], numeric=True),
                Column("FP", lambda c: c["fp"], numeric=True),
                Column("FN", lambda c: c["fn"], numeric=True),
            ],
            self,
        )
        self.class_table = _table(self.class_model)
        self.class_title = QLabel("Per class: select an evaluation")
        self.class_title.setWordWrap(True)
        per_class = QWidget()
        pl = QVBoxLayout(per_class)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.class_title)
        pl.addWidget(self.class_table)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.models_chart)
        top.addWidget(per_class)
        top.setSizes([560, 520])  # scaled to the room there is, in this proportion
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.eval_table)
        split.setSizes([300, 200])
        # Grown or shrunk, chart and tables keep these shares (3:2), and neither collapses.
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        self.models_split = split
        lay.addWidget(split, 1)
        return tab

    def _build_agreement_tab(self) -> QWidget:
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.setContentsMargins(0, 4, 0, 0)
        self.agreement_summary = QLabel()
        self.agreement_summary.setWordWrap(True)
        lay.addWidget(self.agreement_summary)
        self.agreement_chart = LineChart(min_height=120)

        def rate(get):
            return lambda r: vd.fmt(get(r.counts))

        self.agreement_model = RecordTableModel(
            [
                Column("session", lambda r: r.session, numeric=True),
                Column("version", lambda r: self._version_text(r.version)),
                Column("model", lambda r: r.model),
                Column("class", lambda r: r.name),
                Column("accepted", lambda r: r.counts.accepted, numeric=True),
                Column("edited", lambda r: r.counts.edited, numeric=True),
                Column("mean IoU", rate(lambda c: c.mean_iou), numeric=True),
                Column("rejected", lambda r: r.counts.rejected, numeric=True),
                Column("pending", lambda r: r.counts.pending, numeric=True),
                Column("added (missed)", lambda r: r.counts.added, numeric=True),
                Column("accept rate", rate(lambda c: c.acceptance_rate), numeric=True),
                Column("precision", rate(lambda c: c.precision), numeric=True),
                Column("recall", rate(lambda c: c.recall), numeric=True),
            ],
            self,
        )
        self.agreement_table = _table(self.agreement_model)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.agreement_chart)
        split.addWidget(self.agreement_table)
        split.setSizes([500, 600])
        lay.addWidget(split, 1)
        return tab

    def _build_drift_tab(self) -> QWidget:
        tab = QWidget()
        lay = QVBoxLayout(tab)
        lay.setContentsMargins(0, 4, 0, 0)
        bar = QHBoxLayout()
        self.drift_a = QComboBox()
        self.drift_b = QComboBox()
        for combo in (self.drift_a, self.drift_b):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(24)
        bar.addWidget(QLabel("Reference"))
        bar.addWidget(self.drift_a, 1)
        bar.addWidget(QLabel("compared"))
        bar.addWidget(self.drift_b, 1)
        bar.addWidget(QLabel("PSI threshold"))
        self.drift_threshold = QDoubleSpinBox()
        self.drift_threshold.setRange(0.0, 10.0)
        self.drift_threshold.setSingleStep(0.05)
        self.drift_threshold.setDecimals(2)
        self.drift_threshold.setValue(0.2)
        bar.addWidget(self.drift_threshold)
        self.drift_button = QPushButton("Run")
        self.drift_button.setToolTip("Compare the two versions (in the background)")
        self.drift_button.clicked.connect(self.run_drift)
        bar.addWidget(self.drift_button)
        lay.addLayout(bar)
        self.drift_verdict = QLabel(
            "Compare two versions' labels and pixels: a PSI above the threshold is drift "
            "(< 0.1 no real change, 0.1-0.25 moderate, > 0.25 major)."
        )
        self.drift_verdict.setWordWrap(True)
        lay.addWidget(self.drift_verdict)

        def verdict(f) -> str:
            if f.score is None:
                return "no data"
            return "drift" if f.drifted(self._drift_threshold()) else "ok"

        def color(f) -> str | None:
            return FAIL_COLOR if f.drifted(self._drift_threshold()) else None

        def bins(f) -> str:
            rows = [f"{'bin':>14} {'reference':>10} {'compared':>10}"]
            rows += [f"{b:>14} {a:>10} {c:>10}" for b, a, c in zip(f.bins, f.a, f.b, strict=True)]
            return "\n".join(rows)

        self.drift_model = RecordTableModel(
            [
                Column("feature", lambda f: f.name, tooltip=bins),
                Column("PSI", lambda f: vd.fmt(f.score, 4), numeric=True, tooltip=bins),
                Column("verdict", verdict, color=color),
            ],
            self,
        )
        self.drift_table = _table(self.drift_model)
        lay.addWidget(self.drift_table, 1)
        return tab

    # -- project -----------------------------------------------------------------------------
    def set_project(self, project: Project) -> None:
        self.project = project
        self.data = None
        self.drift_report = None
        self.drift_model.set_items([])
        self.refresh()

    def close_project(self) -> None:
        """Cancel this panel's jobs; their late results are ignored (see ``_is_current``)."""
        for job in (self.eval_job, self.drift_job):
            if job is not None:
                job.cancel()
        self.eval_job = self.drift_job = None
        self.evaluate_button.setEnabled(True)
        self.drift_button.setEnabled(True)
        self.project = None

    def _is_current(self, project: Project | None) -> bool:
        return project is not None and project is self.project

    # -- loading -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload what the panel shows now if it is on screen, else when it is next shown."""
        self.stale = True
        if self.on_screen:
            self._load()

    def set_on_screen(self, visible: bool) -> None:
        """Follow the dock's ``visibilityChanged``: a dock tabbed behind another counts as
        visible to Qt (``isVisible``, ``showEvent``) while it is in fact off screen."""
        self.on_screen = visible
        if visible:
            if not self.metric.count():
                from labeldesk.core.metrics import STAT_KEYS

                self.metric.blockSignals(True)
                for key in STAT_KEYS:
                    self.metric.addItem(vd.METRIC_LABELS.get(key, key), key)
                self.metric.blockSignals(False)
            for chart in (self.models_chart, self.agreement_chart):
                chart.activate()
            if self.stale:
                self._load()

    def _load(self) -> None:
        worker = self.window_.worker
        project = self.project
        if project is None or worker is None:
            return
        self.stale = False
        worker.submit(
            vd.load,
            on_done=lambda data: self._loaded(project, data),
            on_error=self.window_.show_error,
        )

    def _loaded(self, project: Project, data: vd.PanelData) -> None:
        if not self._is_current(project):
            return
        self.data = data
        self._versions = {v.id: v for v in data.versions}
        self._show_models()
        self._show_agreement()
        self._fill_drift_versions()
        self.loaded.emit()

    def _version_text(self, vid: str) -> str:
        v = self._versions.get(vid)
        return vd.version_label(v) if v is not None else vid[:12]

    # -- models tab --------------------------------------------------------------------------
    def _show_models(self) -> None:
        assert self.data is not None
        selected = self._select_after_load or self.selected_evaluation_id()
        self._select_after_load = None
        rows = list(reversed(self.data.evaluations))  # newest first
        self.eval_model.set_items(rows)
        self.eval_table.resizeColumnsToContents()
        row = next((i for i, e in enumerate(rows) if e.id == selected), 0 if rows else -1)
        if row >= 0:
            self.eval_table.selectRow(row)
        else:
            self._show_per_class(None)
        self._plot_models()

    def _plot_models(self) -> None:
        if self.data is None:
            return
        metric = self.metric.currentData()
        xlabels, series = vd.model_series(self.data.versions, self.data.evaluations, metric)
        self.models_chart.plot(
            xlabels,
            series,
            title=f"{self.metric.currentText()} per version (all images; red ✕: failed gate)",
            ylabel=self.metric.currentText(),
            unit_range=True,
            empty_text="No evaluations yet: use “Evaluate model…” or `labeldesk validate`.",
        )

    def selected_evaluation_id(self) -> int | None:
        e = self.eval_model.item(self.eval_table.currentIndex())
        return None if e is None else e.id

    def select_evaluation(self, evaluation_id: int) -> bool:
        """Select a row of the evaluations table by evaluation id (fills the per-class table)."""
        for i, e in enumerate(self.eval_model.items):
            if e.id == evaluation_id:
                self.eval_table.selectRow(i)
                return True
        return False

    def _eval_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_per_class(self.eval_model.item(current))

    def _show_per_class(self, e: Any) -> None:
        if e is None:
            self.class_title.setText("Per class: select an evaluation")
            self.class_model.set_items([])
            return
        self.class_title.setText(
            f"Per class: evaluation {e.id}, {vd.source_label(e)} on "
            f"{self._version_text(e.version)} ({e.subset_label}, {e.n_images} images; "
            f"P/R/TP/FP/FN at score ≥ {e.metrics.get('conf', 0):.2f}, IoU 0.5)"
        )
        self.class_model.set_items(e.metrics.get("per_class", []))
        self.class_table.resizeColumnsToContents()

    def evaluate_dialog(self) -> None:
        """Ask which model to evaluate on which version (non-blocking), then run it."""
        from labeldesk.core.models import list_models
        from labeldesk.core.versions import all_versions, head
        from labeldesk.core.watch import watched

        from .evaluate_dialog import EvaluateDialog

        if self.project is None:
            return
        db = self.project.db
        evaluations = self.data.evaluations if self.data is not None else []
        sizes = vd.usual_imgsz(evaluations, watched(db))
        dialog = EvaluateDialog(
            self.window_, list_models(db), all_versions(db), head(db), imgsz_of=sizes
        )
        dialog.accepted.connect(lambda: self.start_evaluation(dialog.choice()))
        self.evaluate_dialog_ = dialog
        dialog.open()

    def start_evaluation(self, choice) -> Any:
        """Run the chosen evaluation as a status-bar job; returns the job."""
        from .evaluate_dialog import start_evaluation

        if self.project is None or self.eval_job is not None:
            return None
        project = self.project
        job = start_evaluation(self.window_, choice)
        job.finished.connect(lambda report: self._evaluated(project, job, report))
        job.failed.connect(lambda error: self._job_failed(project, job, error))
        self.eval_job = job
        self.evaluate_button.setEnabled(False)
        return job

    def _evaluated(self, project: Project, job, report) -> None:
        job.deleteLater()
        if not self._is_current(project):
            return
        self.eval_job = None
        self.evaluate_button.setEnabled(True)
        main = next((r for r in report.rows if r.subset == "all"), report.rows[0])
        metric = vd.METRIC_LABELS.get(main.metric, main.metric)
        self.window_.statusBar().showMessage(
            f"Evaluated {report.source.name} on {report.version.short}: {metric} "
            f"{vd.fmt(main.value, 4)}. {report.verdict().splitlines()[0]}",
            20000,
        )
        self._select_after_load = main.id
        self.refresh()
        self.evaluationDone.emit(report)

    def _job_failed(self, project: Project, job, error: BaseException) -> None:
        job.deleteLater()
        if not self._is_current(project):
            return
        if job is self.eval_job:
            self.eval_job = None
            self.evaluate_button.setEnabled(True)
        if job is self.drift_job:
            self.drift_job = None
            self.drift_button.setEnabled(True)
        self.window_.show_error(error)

    # -- agreement tab -------------------------------------------------------------------------
    def _show_agreement(self) -> None:
        assert self.data is not None
        report = self.data.agreement
        xlabels, series = vd.trend_series(report)
        self.agreement_chart.plot(
            xlabels,
            series,
            title="Pre-label agreement per review session (commit order)",
            ylabel="rate",
            unit_range=True,
            empty_text="No committed review session had model pre-labels yet.",
        )
        self.agreement_model.set_items(vd.agreement_rows(report))
        self.agreement_table.resizeColumnsToContents()
        if report.sessions:
            t = report.totals()
            iou = f" (mean IoU {t.mean_iou:.3f})" if t.mean_iou is not None else ""
            self.agreement_summary.setText(
                f"{len(report.sessions)} session(s) with pre-labels: {t.decided} decided, "
                f"{vd.fmt(t.acceptance_rate)} accepted as predicted, {t.edited} corrected{iou}, "
                f"{t.rejected} rejected, {t.added} drawn by hand (missed by the model)."
            )
        else:
            self.agreement_summary.setText(
                "No committed review session had model pre-labels yet: pre-label a session, "
                "review it and commit."
            )

    # -- drift tab -----------------------------------------------------------------------------
    def _fill_drift_versions(self) -> None:
        """Newest first; keep the user's choice, else main against the newest release before it
        (what changed since the data was last approved), else against main's parent."""
        assert self.data is not None
        versions = sorted(self.data.versions, key=lambda v: v.seq, reverse=True)
        head_id = self.data.head
        head_v = next((v for v in versions if v.id == head_id), versions[0] if versions else None)
        default_b = head_v.id if head_v else None
        default_a = head_v.parents[0] if head_v and head_v.parents else default_b
        if head_v is not None:
            release = next(
                (v for v in versions if v.status == "approved" and v.seq < head_v.seq), None
            )
            default_a = release.id if release is not None else default_a
        for combo, default in ((self.drift_a, default_a), (self.drift_b, default_b)):
            keep = combo.currentData() or default
            combo.blockSignals(True)
            combo.clear()
            for v in versions:
                combo.addItem(vd.version_choice(v, head_id), v.id)
            i = combo.findData(keep)
            combo.setCurrentIndex(i if i >= 0 else combo.findData(default))
            combo.blockSignals(False)
        self.drift_button.setEnabled(len(versions) > 0 and self.drift_job is None)

    def _drift_threshold(self) -> float:
        report = self.drift_report
        return report.threshold if report is not None else self.drift_threshold.value()

    def run_drift(self) -> Any:
        """Compare the chosen versions as a status-bar job; returns the job."""
        from .jobs import StatusJob

        a, b = self.drift_a.currentData(), self.drift_b.currentData()
        if self.project is None or a is None or b is None or self.drift_job is not None:
            return None
        project = self.project
        root, user = project.root, project.user
        threshold = self.drift_threshold.value()

        def work(progress, cancel):
            from labeldesk.core.drift import drift

            with Project.open(root, user=user) as p:
                return drift(p, a, b, threshold=threshold, progress=progress, cancel=cancel)

        job = StatusJob(self.window_, "Measuring drift", work)
        job.finished.connect(lambda report: self._drift_done(project, job, report))
        job.failed.connect(lambda error: self._job_failed(project, job, error))
        self.drift_job = job
        self.drift_button.setEnabled(False)
        self.drift_verdict.setText("Measuring…")
        return job

    def _drift_done(self, project: Project, job, report) -> None:
        job.deleteLater()
        if not self._is_current(project):
            return
        self.drift_job = None
        self.drift_button.setEnabled(True)
        self.drift_report = report
        self.drift_model.set_items(report.features)
        self.drift_table.resizeColumnsToContents()
        text = (
            f"<b>{report.b.short}</b> against <b>{report.a.short}</b>: "
            f"<b>{html.escape(report.verdict())}</b>"
        )
        if report.score is not None:
            text += f" (largest PSI {report.score:.3f})"
        if report.unreadable:
            text += f"; {len(report.unreadable)} image(s) could not be decoded and were left out"
        self.drift_verdict.setText(text)
        self.driftDone.emit(report)
