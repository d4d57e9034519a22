from __future__ import annotations

from labeldesk.core.boxes import Box
from labeldesk.core.inference import predictions
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import now_iso
from labeldesk.core.store.sessions import ReviewSession


def _model(project) -> str:
    with project.transaction():
        project.db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, added_at, added_by) "
            "VALUES ('m1', 'demo', '/x.pt', 'pt', 'detect', ?, ?, 'me')",
            ['["car"]', now_iso()],
        )
    return "m1"


def test_predictions_are_cached_by_model_params_and_image(project, images) -> None:
    shas = [a.sha256 for a in add_images(project, images).added]
    model = _model(project)
    p = predictions.Prediction("car", 1.00001, 2, 3, 4, 0.87654321)
    params = {"conf": 0.25, "iou": 0.7, "imgsz": 640}
    assert predictions.store(project, model, params, [(shas[0], [p]), (shas[1], [])]) == 2
    assert predictions.cached_images(project.db, model, dict(reversed(params.items()))) == {
        shas[0],
        shas[1],
    }
    assert predictions.cached_images(project.db, model, {**params, "conf": 0.5}) == set()
    (back,) = predictions.load(project.db, model, params, shas[0])
    assert (back.name, back.x, back.score) == ("car", 1.0, 0.876543)


def test_pending_prelabels_never_become_labels(project, images) -> None:
    shas = [a.sha256 for a in add_images(project, images).added]
    s = ReviewSession.start(project)
    c = s.add_class("car")
    pending = Box(c, 1, 1, 4, 4, origin="model", state="pending", score=0.4, model="m1")
    accepted = Box(c, 9, 9, 4, 4, origin="model", state="accepted", score=0.9, model="m1")
    s.set_boxes(shas[0], [pending, accepted])
    assert s.commit("r").n_boxes == 1
