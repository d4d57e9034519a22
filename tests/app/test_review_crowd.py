"""The review workspace on images whose labels are crowd regions only."""

from __future__ import annotations

import json

from helpers import write_image

from labeldesk.app.review import Workspace, open_or_start_session, set_prelabel_source
from labeldesk.core.formats import import_coco
from labeldesk.core.inference import predictions
from labeldesk.core.store.project import Project, now_iso

PARAMS = {"conf": 0.25, "iou": 0.7, "imgsz": 640}


def test_an_image_with_only_a_crowd_region_is_labelled_but_counts_no_box(tmp_path) -> None:
    """It shows its crowd region, not pre-labels, so the list must not offer its pre-labels'
    scores either; and it counts 0 boxes."""
    root = tmp_path / "coco"
    for i, name in enumerate(("a.png", "b.png")):
        write_image(root / "images" / name, seed=i, size=(100, 80))
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
            {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 60, 50], "iscrowd": 1}
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    with Project.init(tmp_path / "project", user="lead-user") as p:
        import_coco(p, [root / "annotations.json"])
        with p.transaction():
            p.db.execute(
                "INSERT INTO model (id, name, path, format, task, class_names, added_at, "
                "added_by) VALUES ('m1', 'demo', '/m.pt', 'pt', 'detect', ?, ?, ?)",
                ['["person"]', now_iso(), "lead-user"],
            )
        shas = {r[1]: r[0] for r in p.db.execute("SELECT sha256, path FROM image_source")}
        a, b = (next(s for path, s in shas.items() if path.endswith(n)) for n in ("a.png", "b.png"))
        pred = [predictions.Prediction("person", 10, 10, 20, 20, 0.4)]
        predictions.store(p, "m1", PARAMS, [(a, pred), (b, pred)])
        session = open_or_start_session(p)
        set_prelabel_source(p, session.id, "m1", PARAMS)
        ws = Workspace(p, session)
        ws.load()
        rows = {r.sha: r for r in ws.rows}
        assert [bx.crowd for bx in ws.boxes(a)] == [True]  # its label, not the pre-label
        assert (rows[a].n_boxes, rows[a].min_score) == (0, None)
        assert [bx.state for bx in ws.boxes(b)] == ["pending"]
        assert (rows[b].n_boxes, rows[b].min_score) == (0, 0.4)
