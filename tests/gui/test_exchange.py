"""Import and export from the window's menus: real files, progress, errors as itemised lists."""

from __future__ import annotations

import json

from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import resolve
from labeldesk.gui import exchange


def test_export_then_import_coco_from_the_window(window, qtbot, tmp_path) -> None:
    out = tmp_path / "coco-out"
    op = exchange.export_dataset(window, "coco", out=str(out))
    qtbot.waitUntil(lambda: not op.running, timeout=30000)
    qtbot.waitUntil(lambda: getattr(window, "last_message", None) is not None, timeout=5000)
    assert "Export finished" in window.last_message.windowTitle()
    (ann,) = [p for p in out.rglob("*.json")]
    data = json.loads(ann.read_text())
    assert len(data["images"]) == 4

    with Project.init(tmp_path / "fresh", user="lead-user") as p:
        root = p.root
    from labeldesk.gui.main_window import MainWindow

    w2 = MainWindow(root, user="lead-user")
    qtbot.addWidget(w2)
    images_dir = next(d for d in out.rglob("*") if d.is_dir() and any(d.glob("*.png")))
    op = exchange.import_dataset(w2, "coco", ([str(ann)], str(images_dir)))
    qtbot.waitUntil(lambda: not op.running, timeout=30000)
    qtbot.waitUntil(lambda: w2.ws is not None and w2.current is not None, timeout=10000)
    assert len(w2.ws.rows) == 4
    assert resolve(w2.project.db, "main").kind == "import"
    w2.close()


def test_bad_import_shows_every_problem_and_changes_nothing(window, qtbot, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "../x.png", "width": 5, "height": 5}],
                "annotations": [{"id": 1, "image_id": 9, "category_id": 3, "bbox": [0, 0, -1, 2]}],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    before = resolve(window.project.db, "main").id
    op = exchange.import_dataset(window, "coco", ([str(bad)], str(tmp_path)))
    qtbot.waitUntil(lambda: not op.running, timeout=30000)
    qtbot.waitUntil(lambda: getattr(window, "last_message", None) is not None, timeout=5000)
    box = window.last_message
    assert len(box.detailedText().splitlines()) >= 3  # each problem on its own line
    assert resolve(window.project.db, "main").id == before


def test_prelabel_from_the_window_while_reviewing(window, qtbot, review_project, tmp_path):
    """A real model registered in the project pre-labels the session's version in the
    background; the reviewer keeps working meanwhile; the boxes then show as pending."""
    from pathlib import Path

    from labeldesk.core.inference.registry import add_model
    from labeldesk.gui.prelabel_dialog import start_prelabel

    root, shas = review_project
    weights = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-shapes.pt"
    with Project.open(root, user="lead-user") as p:
        info = add_model(p, weights).model
    job = start_prelabel(window, info.id, 0.05, 0.7, 320)
    window.next_image()  # the window is not blocked while the job runs
    assert window.current == shas[1]
    qtbot.waitUntil(lambda: not job.running, timeout=120000)
    qtbot.waitUntil(lambda: window.ws.prelabel_model == info.id, timeout=20000)
    assert window.ws.prelabel_params == {"conf": 0.05, "iou": 0.7, "imgsz": 320}
    from labeldesk.core.inference import predictions

    params = window.ws.prelabel_params
    assert predictions.cached_images(window.project.db, info.id, params) == set(shas)
    # image 2 was never opened: what it shows now is exactly the model's cached boxes
    cached = predictions.load(window.project.db, info.id, params, shas[2])
    shown = window.boxes_of(shas[2])
    assert [(b.x, b.y, b.w, b.h, b.score) for b in shown] == [
        (p.x, p.y, p.w, p.h, p.score) for p in cached if p.name in window.ws.classes.values()
    ]
    assert all(b.model == info.id and b.state == "pending" for b in shown)

    # Next time the dialog offers that model the settings it was last run with
    from labeldesk.app.review import last_prelabel_params
    from labeldesk.gui.prelabel_dialog import PrelabelDialog

    dialog = PrelabelDialog(window, [info], last_prelabel_params(window.project))
    assert dialog.choice() == (info.id, 0.05, 0.7, 320)
    fresh = PrelabelDialog(window, [info], {})
    assert fresh.choice() == (info.id, 0.25, 0.7, 640)  # Ultralytics' defaults
