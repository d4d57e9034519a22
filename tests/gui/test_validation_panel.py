"""The validation panel on real projects: stored evaluations, review agreement, drift, and the
shipped demo model evaluated from the panel and on every commit (watched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DEMO_MODEL, label_truth
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from labeldesk.app.review import open_or_start_session, set_prelabel_source
from labeldesk.core.boxes import Box
from labeldesk.core.inference.registry import add_model
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import resolve, tag
from labeldesk.core.validation import evaluation as ev
from labeldesk.core.validation.agreement import agreement
from labeldesk.core.validation.drift import drift
from labeldesk.core.validation.watch import WatchSettings, evaluate_watched, watch

IMGSZ = 320  # what the demo model was trained at
PARAMS = {"conf": 0.25, "iou": 0.7, "imgsz": 640}  # m1's pre-labels (gui/conftest.py)


def pre(cls: int, x, y, w, h, score: float, state: str) -> Box:
    return Box(cls, x, y, w, h, origin="model", state=state, score=score, model="m1")


def results_file(project: Project, ref: str, path: Path, only: set[str] | None = None) -> Path:
    """COCO results equal to the labels of ``ref`` (score 0.9), images named by file name so
    the file reads the same against any version."""
    index = ev.ImageIndex.build(project, ref)
    gt = ev.ground_truth(project, index)
    out = []
    for sha in index.shas:
        if only is not None and sha not in only:
            continue
        boxes, classes, *_ = gt[sha]
        for b, c in zip(boxes, classes, strict=True):
            out.append(
                {
                    "file_name": index.names[sha],
                    "category_id": int(c),
                    "bbox": [float(v) for v in b],
                    "score": 0.9,
                }
            )
    path.write_text(json.dumps(out))
    return path


def predictions(path: Path):
    return lambda index: ev.predictions_source(path, index)


@pytest.fixture
def validation_project(review_project, tmp_path) -> dict:
    """Four images pre-labelled by model m1 and reviewed in two sessions (v2 tagged r1, v3),
    and two predictions files evaluated on both; ``partial`` fails its gate on v3."""
    root, shas = review_project
    with Project.open(root, user="lead-user") as p:
        ids = {c["name"]: c["id"] for c in resolve(p.db, "main").classes}
        car, bus = ids["car"], ids["bus"]
        s1 = open_or_start_session(p)  # shows m1's pre-labels
        s1.set_boxes(
            shas[0],
            [pre(car, 20, 30, 60, 40, 0.9, "accepted"), pre(bus, 120, 80, 50, 50, 0.3, "rejected")],
        )
        s1.set_boxes(
            shas[1],
            [
                pre(car, 24, 30, 60, 40, 0.9, "edited"),  # moved: IoU 0.875 with the prediction
                pre(bus, 120, 80, 50, 50, 0.3, "accepted"),
                Box(bus, 5, 5, 20, 20),  # drawn by hand: the model missed it
            ],
        )
        v2 = s1.commit("first review").id
        tag(p, "r1", v2)
        s2 = ReviewSession.start(p)
        set_prelabel_source(p, s2.id, "m1", PARAMS)
        s2.set_boxes(
            shas[2],
            [pre(car, 20, 30, 60, 40, 0.9, "accepted"), pre(bus, 120, 80, 50, 50, 0.3, "accepted")],
        )
        s2.set_boxes(
            shas[3],
            [pre(car, 20, 30, 60, 40, 0.9, "rejected"), pre(bus, 120, 80, 50, 50, 0.3, "accepted")],
        )
        v3 = s2.commit("second review").id
        good = results_file(p, v3, tmp_path / "good.json")
        partial = results_file(p, v2, tmp_path / "partial.json", only=set(shas[:2]))
        reports = {
            ("good", v2): ev.validate(p, predictions(good), ref=v2),
            ("good", v3): ev.validate(p, predictions(good), ref=v3),
            ("partial", v2): ev.validate(p, predictions(partial), ref=v2),
            ("partial", v3): ev.validate(p, predictions(partial), ref=v3, baseline_ref=v2),
        }
    assert not reports[("partial", v3)].passed  # it misses every label of images 2 and 3
    return {"root": root, "shas": shas, "v2": v2, "v3": v3, "reports": reports}


def open_window(qtbot, root: Path, tmp_path: Path):
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    from labeldesk.gui.main_window import MainWindow

    w = MainWindow(root, user="lead-user")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=10000)
    return w


@pytest.fixture
def vwindow(qtbot, validation_project, tmp_path):
    w = open_window(qtbot, validation_project["root"], tmp_path)
    yield w
    w.close()


def show_panel(qtbot, window):
    panel = window.validation
    with qtbot.waitSignal(panel.loaded, timeout=20000):
        window.show_validation()
    return panel


def test_models_chart_tables_and_per_class(vwindow, validation_project, qtbot, qtmodeltester):
    panel = vwindow.validation
    assert not panel.models_chart.loaded and panel.data is None  # nothing loaded while hidden
    panel = show_panel(qtbot, vwindow)
    assert panel.models_chart.loaded
    v2, v3, reports = (
        validation_project["v2"],
        validation_project["v3"],
        validation_project["reports"],
    )

    def figure(name: str, vid: str, metric: str) -> float:
        return reports[(name, vid)].rows[0].summary[metric]

    ax = panel.models_chart.axes
    lines = {line.get_label(): line for line in ax.lines}
    assert sorted(lines) == ["good.json", "partial.json"]  # one line per source
    for name, line in lines.items():
        assert list(line.get_xdata()) == [0, 1]  # v2 and v3, in commit order
        assert list(line.get_ydata()) == pytest.approx(
            [figure(name.removesuffix(".json"), v, "map50_95") for v in (v2, v3)]
        )
    assert figure("partial", v2, "map50_95") == pytest.approx(1.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["r1", v3[:12]]
    (failed,) = ax.collections  # the one failed gate: partial.json on v3, in red
    ((x, y),) = failed.get_offsets().tolist()
    assert (x, y) == (1, pytest.approx(figure("partial", v3, "map50_95")))

    panel.metric.setCurrentIndex(panel.metric.findData("map50"))
    lines = {line.get_label(): line for line in panel.models_chart.axes.lines}
    assert list(lines["good.json"].get_ydata()) == pytest.approx(
        [figure("good", v, "map50") for v in (v2, v3)]
    )

    # every stored row, newest first: 4 candidates and the baseline row of the gated run
    with Project.open(validation_project["root"]) as p:
        stored = ev.list_evaluations(p)
    model = panel.eval_model
    assert model.rowCount() == len(stored) == 5
    assert [e.id for e in model.items] == [e.id for e in reversed(stored)]
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    gate = headers.index("gate")
    failing = reports[("partial", v3)].rows[0]
    row = next(i for i, e in enumerate(model.items) if e.id == failing.id)
    assert model.index(row, gate).data() == "FAIL"
    assert model.index(row, headers.index("role")).data() == "candidate"
    assert model.index(row, headers.index("version")).data() == v3[:12]

    # selecting an evaluation fills the per-class table from its stored figures
    assert panel.select_evaluation(failing.id)
    per_class = failing.metrics["per_class"]
    assert panel.class_model.rowCount() == len(per_class) == 2
    names = [panel.class_model.index(r, 0).data() for r in range(2)]
    assert names == [c["name"] for c in per_class] == ["car", "bus"]
    assert [panel.class_model.index(r, 1).data() for r in range(2)] == [
        c["labels"] for c in per_class
    ]
    assert str(failing.id) in panel.class_title.text()
    for m in (panel.eval_model, panel.class_model):
        qtmodeltester.check(m)


def test_agreement_trend_and_table(vwindow, validation_project, qtbot, qtmodeltester):
    panel = show_panel(qtbot, vwindow)
    panel.tabs.setCurrentIndex(1)
    with Project.open(validation_project["root"]) as p:
        trend = agreement(p).trend()
    assert [t["version"] for t in trend] == [validation_project["v2"], validation_project["v3"]]
    lines = {line.get_label(): line for line in panel.agreement_chart.axes.lines}
    accepted = lines["accepted as predicted"]
    assert list(accepted.get_xdata()) == [0, 1]
    assert list(accepted.get_ydata()) == pytest.approx([0.5, 0.75])  # 2 of 4, 3 of 4
    assert list(lines["precision (kept, maybe corrected)"].get_ydata()) == pytest.approx(
        [t["precision"] for t in trend]
    )
    iou = lines["mean IoU of edited boxes"]  # only the first session edited a box
    assert list(iou.get_xdata()) == [0] and list(iou.get_ydata()) == pytest.approx([0.875])

    model = panel.agreement_model
    rows = [
        [model.index(r, c).data() for c in range(model.columnCount())]
        for r in range(model.rowCount())
    ]
    # newest session first: its classes, then its total
    assert [r[3] for r in rows] == ["bus", "car", "(all)", "bus", "car", "(all)"]
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    total_first = rows[5]
    assert total_first[headers.index("accepted")] == 2
    assert total_first[headers.index("edited")] == 1
    assert total_first[headers.index("added (missed)")] == 1
    assert total_first[headers.index("mean IoU")] == "0.875"
    assert "2 session(s)" in panel.agreement_summary.text()
    qtmodeltester.check(model)


def test_drift_runs_in_the_background(vwindow, validation_project, qtbot):
    panel = show_panel(qtbot, vwindow)
    panel.tabs.setCurrentIndex(2)
    v2, v3 = validation_project["v2"], validation_project["v3"]
    assert (panel.drift_a.currentData(), panel.drift_b.currentData()) == (v2, v3)  # no release
    panel.drift_threshold.setValue(0.1)
    with qtbot.waitSignal(panel.driftDone, timeout=30000) as sig:
        panel.drift_button.click()
        assert not panel.drift_button.isEnabled()  # one run at a time
    report = sig.args[0]
    assert panel.drift_button.isEnabled()
    with Project.open(validation_project["root"]) as p:
        expected = drift(p, v2, v3, threshold=0.1)
    model = panel.drift_model
    assert model.rowCount() == len(expected.features) == 7
    shown = [[model.index(r, c).data() for c in range(3)] for r in range(model.rowCount())]
    assert shown == [
        [
            f.name,
            "" if f.score is None else f"{f.score:.4f}",
            "no data" if f.score is None else ("drift" if f.drifted(0.1) else "ok"),
        ]
        for f in expected.features
    ]
    assert report.verdict() == expected.verdict()
    assert expected.verdict() in panel.drift_verdict.text()


# --- the shipped demo model -------------------------------------------------------------------


@pytest.fixture
def shapes(tmp_path) -> Path:
    """Three generated scenes with their true labels, and the demo model registered."""
    root = tmp_path / "project"
    with Project.init(root, user="lead-user") as p:
        label_truth(p, tmp_path / "src", n=3)
        add_model(p, DEMO_MODEL, "demo")
    return root


def test_evaluate_a_model_from_the_panel(shapes, qtbot, tmp_path):
    window = open_window(qtbot, shapes, tmp_path)
    panel = show_panel(qtbot, window)
    assert panel.eval_model.rowCount() == 0 and not panel.models_chart.axes.lines
    with qtbot.waitSignal(panel.evaluateAsked, timeout=10000):  # its choices read off-thread
        panel.evaluate_button.click()
    dialog = panel.evaluate_dialog_
    assert dialog.isVisible() and dialog.model.currentText().startswith("demo")
    assert dialog.version.currentData() == window.ws.session.base_id  # main
    baselines = [dialog.baseline.itemText(i) for i in range(dialog.baseline.count())]
    assert baselines[0] == "none" and len(baselines) == 2  # or the version of the import
    assert baselines[1].startswith("same model on ")
    assert dialog.imgsz.value() == 640  # never evaluated: Ultralytics' default size
    dialog.imgsz.setValue(IMGSZ)
    with qtbot.waitSignal(panel.evaluationDone, timeout=120000) as sig:
        dialog.accept()
        assert panel.eval_job is not None and not panel.evaluate_button.isEnabled()
        assert panel.eval_job.widget.isVisible()  # progress and Cancel in the status bar
        window.next_image()  # the window keeps working while the model runs
        assert window.current == window.ws.rows[1].sha
    report = sig.args[0]
    qtbot.waitUntil(lambda: panel.eval_model.rowCount() == 1, timeout=10000)
    (row,) = report.rows
    assert row.source_kind == "model" and row.params["source"]["predict"]["imgsz"] == IMGSZ
    assert row.summary["map50"] > 0.3  # the demo model finds most shapes
    (line,) = panel.models_chart.axes.lines
    assert line.get_label() == f"demo @{IMGSZ}"
    assert list(line.get_ydata()) == pytest.approx([row.value])
    assert panel.selected_evaluation_id() == row.id
    assert panel.class_model.rowCount() == len(row.metrics["per_class"]) > 0
    assert "Evaluated demo" in window.statusBar().currentMessage()
    assert panel.evaluate_button.isEnabled()
    with qtbot.waitSignal(panel.evaluateAsked, timeout=10000):
        panel.evaluate_button.click()  # next time the size it was judged at is offered
    assert panel.evaluate_dialog_.imgsz.value() == IMGSZ
    panel.evaluate_dialog_.reject()
    window.close()


def test_commit_evaluates_watched_models_and_reports_a_regression(shapes, qtbot, tmp_path):
    with Project.open(shapes, user="lead-user") as p:
        watch(p, "demo", WatchSettings(imgsz=IMGSZ, max_drop=0.02))
        (first,) = evaluate_watched(p)  # the previous evaluation, on the true labels
    window = open_window(qtbot, shapes, tmp_path)
    versions = window.versions.model
    qtbot.waitUntil(lambda: first.version in versions.watch, timeout=10000)
    assert versions.index(0, versions.WATCH_COLUMN).data() == f"demo {first.evaluation.value:.3f}"

    for i in range(len(window.ws.rows)):  # bad labels: every box moved by half its width
        window.show_row(i)
        boxes = window.boxes_of(window.current)
        window.edit([b.with_(x=b.x + b.w / 2, state="edited") for b in boxes], "shift")
    with qtbot.waitSignal(window.watched.evaluated, timeout=120000) as sig:
        window.commit_version("shifted boxes")
    version, (result,) = sig.args
    assert result.regression and result.evaluation.baseline == first.evaluation.id
    drop = result.evaluation.metric_drop
    assert drop > 0.02

    message = window.statusBar().currentMessage()
    assert message.startswith("Regression: demo: mAP50-95")
    assert f"{result.evaluation.value:.4f}" in message and f"down {drop:.4f}" in message
    notice = window.watched.notice
    assert notice.isVisible() and notice.windowModality() == Qt.WindowModality.NonModal
    assert notice.icon() == QMessageBox.Icon.Warning and "demo" in notice.informativeText()

    qtbot.waitUntil(lambda: version in versions.watch, timeout=10000)
    row = next(i for i, v in enumerate(versions.versions) if v.id == version)
    cell = versions.index(row, versions.WATCH_COLUMN)
    assert cell.data() == f"▼ demo −{drop:.3f}"
    assert "REGRESSION" in cell.data(Qt.ItemDataRole.ToolTipRole)
    assert cell.data(Qt.ItemDataRole.ForegroundRole).color().name() == "#d93025"
    notice.close()

    # A revert from the versions panel is a new version too: evaluated, back to the first value
    first_row = next(i for i, v in enumerate(versions.versions) if v.id == first.version)
    window.versions.table.selectRow(first_row)
    with qtbot.waitSignal(window.watched.evaluated, timeout=120000) as sig:
        window.versions.revert_selected()
    reverted, (result,) = sig.args
    assert reverted not in (first.version, version) and not result.regression
    assert result.evaluation.value == pytest.approx(first.evaluation.value)
    assert result.baseline_version == version  # compared with the shifted labels
    window.close()


def test_closing_right_after_a_commit_leaves_the_evaluation_to_a_background_process(
    shapes, qtbot, tmp_path
):
    import time

    with Project.open(shapes, user="lead-user") as p:
        watch(p, "demo", WatchSettings(imgsz=IMGSZ))
    window = open_window(qtbot, shapes, tmp_path)
    window.edit([], "delete the boxes of the first image")
    with qtbot.waitSignal(window.committed, timeout=10000) as sig:
        window.commit_version("fewer boxes")
    version = sig.args[0].id
    assert window.watched.busy  # the evaluation has started in the window ...
    handed = window.watched.close_project()  # ... and the reviewer closes it at once
    window.close()
    assert handed == [version]
    with Project.open(shapes, user="lead-user") as p:
        deadline = time.monotonic() + 120
        while not ev.list_evaluations(p, version=version):
            assert time.monotonic() < deadline, (shapes / "watch.log").read_text()
            time.sleep(0.5)
        (row,) = ev.list_evaluations(p, version=version)
    assert row.params["trigger"] == "watch" and row.author == "lead-user"
    assert f"--version {version}" in (shapes / "watch.log").read_text()


def test_drift_compares_main_with_the_last_release(validation_project, qtbot, tmp_path):
    from labeldesk.core.store.versions import all_versions, decide

    with Project.open(validation_project["root"], user="lead-user") as p:
        first = min(all_versions(p.db), key=lambda v: v.seq)  # older than main's parent
        decide(p, first.id, "approved", "release 1")
    window = open_window(qtbot, validation_project["root"], tmp_path)
    panel = show_panel(qtbot, window)
    assert panel.drift_a.currentData() == first.id
    assert panel.drift_b.currentData() == validation_project["v3"]
    window.close()


def test_an_empty_project_shows_an_empty_panel(qtbot, tmp_path):
    Project.init(tmp_path / "empty", user="lead-user").close()
    from labeldesk.gui.main_window import MainWindow

    window = MainWindow(tmp_path / "empty", user="lead-user")
    qtbot.addWidget(window)
    window.show()
    view = next(a for a in window.menuBar().actions() if a.text() == "&View").menu()
    show = next(a for a in view.actions() if a.text() == "&Validation panel")
    panel = window.validation
    with qtbot.waitSignal(panel.loaded, timeout=20000):
        show.trigger()
    assert panel.eval_model.rowCount() == panel.agreement_model.rowCount() == 0
    ax = panel.models_chart.axes
    assert not ax.lines and "No evaluations yet" in ax.texts[0].get_text()
    assert panel.drift_a.count() == 0 and not panel.drift_button.isEnabled()
    assert panel.run_drift() is None
    window.close()
