"""The Train and Models dialogs on a real project, offscreen: real Ultralytics training in a
child process, a live chart per epoch, Cancel, and the promotion gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeldesk.core.demo.synth import write_yolo_dataset
from labeldesk.core.formats.yolo import import_yolo
from labeldesk.core.inference.registry import list_models
from labeldesk.core.store.project import Project
from labeldesk.core.training.promote import release_model
from labeldesk.core.training.runs import all_runs

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def train_project(tmp_path) -> Path:
    ds = write_yolo_dataset(tmp_path / "ds", 24, 8, seed=5, size=(160, 120)).parent
    with Project.init(tmp_path / "proj", user="lead") as p:
        import_yolo(p, ds)
        return p.root


def _dialog(qtbot, root: Path):
    from labeldesk.gui.train_dialog import TrainDialog

    with Project.open(root, user="lead") as p:
        dialog = TrainDialog(None, root, "lead", p)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.epochs_box.setValue(1)
    dialog.imgsz.setValue(64)
    dialog.batch.setValue(8)
    return dialog


def test_train_dialog_trains_charts_each_epoch_and_registers(qtbot, train_project) -> None:
    dialog = _dialog(qtbot, train_project)
    assert dialog.base.currentData() == ("config", "yolov8n.yaml")
    with qtbot.waitSignal(dialog.trained, timeout=300_000) as sig:
        qtbot.mouseClick(dialog.train_button, qtbot_button())
    name = sig.args[0]
    assert len(dialog.epochs) == 1
    # the chart holds the epoch's figures: one x label, a point per series
    axes = dialog.map_chart.axes
    assert [t.get_text() for t in axes.get_xticklabels()] == ["1"]
    assert any(len(line.get_xdata()) == 1 for line in axes.get_lines())
    assert "Trained" in dialog.status.text() and dialog.train_button.isEnabled()
    with Project.open(train_project) as p:
        assert [m.name for m in list_models(p.db)] == [name]


def test_cancel_in_the_dialog_records_a_cancelled_run(qtbot, train_project) -> None:
    dialog = _dialog(qtbot, train_project)
    dialog.epochs_box.setValue(3)
    qtbot.mouseClick(dialog.train_button, qtbot_button())
    # cancel once training really runs: the bar shows batches
    qtbot.waitUntil(lambda: dialog.bar.maximum() > 1, timeout=300_000)
    with qtbot.waitSignal(dialog.cancelled, timeout=60_000):
        qtbot.mouseClick(dialog.cancel_button, qtbot_button())
    assert "no model was registered" in dialog.status.text()
    with Project.open(train_project) as p:
        (run,) = all_runs(p.db)
        assert run.status == "cancelled" and list_models(p.db) == []


def test_models_dialog_shows_lineage_and_promotes(qtbot, train_project) -> None:
    from labeldesk.core.training.train import TrainOptions, train
    from labeldesk.gui.train_dialog import ModelsDialog

    with Project.open(train_project, user="lead") as p:
        train(p, config="yolov8n.yaml", name="m1", options=TrainOptions(1, 64, 8))
        dialog = ModelsDialog(None, train_project, "lead", p)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 0).text() == "m1"
    dialog.table.selectRow(0)
    assert "trained on version" in dialog.lineage.toPlainText()
    with qtbot.waitSignal(dialog.promoted, timeout=300_000) as sig:
        qtbot.mouseClick(dialog.promote_button, qtbot_button())
    assert sig.args[0].passed
    assert dialog.table.item(0, 1).text() == "release"
    with Project.open(train_project) as p:
        assert release_model(p) == list_models(p.db)[0].id


def test_the_window_offers_training_and_marks_trained_versions(qtbot, window) -> None:
    from labeldesk.gui.item_models import VersionTableModel

    names = [a.text() for a in window.menuBar().actions()]
    assert "&Models" in names
    window.train_dialog()
    assert window.train_window.isVisible()
    window.train_window.close()
    model = window.versions.model
    assert model.headerData(VersionTableModel.TRAINED_COLUMN, _horizontal()) == "trained"
    # a version with a model trained on it says so in that column (the fixture's model "demo",
    # marked as trained on main)
    db = window.project.db
    with window.project.transaction():
        db.execute("UPDATE model SET trained_on = (SELECT version FROM ref WHERE name = 'main')")
    with qtbot.waitSignal(window.versions.historyShown, timeout=10000):  # read off-thread
        window.versions.refresh()
    newest = next(
        r
        for r, v in enumerate(model.versions)
        if v.id
        == window.project.db.execute("SELECT version FROM ref WHERE name = 'main'").fetchone()[0]
    )
    assert model.index(newest, VersionTableModel.TRAINED_COLUMN).data() == "demo"


def qtbot_button():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def _horizontal():
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal
