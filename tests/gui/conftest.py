"""A real project with pre-labels, and the real main window on it (offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_image

from labeldesk.app.review import open_or_start_session, set_prelabel_source
from labeldesk.core.inference import predictions
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import Project, now_iso
from labeldesk.core.store.sessions import ReviewSession

PARAMS = {"conf": 0.25, "iou": 0.7, "imgsz": 640}


def make_review_project(root: Path, n: int = 4, user: str = "lead-user") -> list[str]:
    """n images (200x150) with two pre-labels each (a car at 0.9, a bus at 0.3)."""
    with Project.init(root / "project", user=user) as p:
        files = [
            write_image(root / "src" / f"img{i}.png", seed=i, size=(200, 150)) for i in range(n)
        ]
        shas = [a.sha256 for a in add_images(p, files).added]
        s = ReviewSession.start(p)
        car, bus = s.add_class("car"), s.add_class("bus")
        s.set_boxes(shas[0], [])
        s.commit("classes")
        del car, bus
        with p.transaction():
            p.db.execute(
                "INSERT INTO model (id, name, path, format, task, class_names, added_at, "
                "added_by) VALUES ('m1', 'demo', '/m.pt', 'pt', 'detect', ?, ?, ?)",
                ['["car", "bus"]', now_iso(), user],
            )
        predictions.store(
            p,
            "m1",
            PARAMS,
            [
                (
                    sha,
                    [
                        predictions.Prediction("car", 20, 30, 60, 40, 0.9),
                        predictions.Prediction("bus", 120, 80, 50, 50, 0.3),
                    ],
                )
                for sha in shas
            ],
        )
        session = open_or_start_session(p)
        set_prelabel_source(p, session.id, "m1", PARAMS)
        return shas  # in file-name order, as the image list shows them


@pytest.fixture
def review_project(tmp_path) -> tuple[Path, list[str]]:
    shas = make_review_project(tmp_path)
    return tmp_path / "project", shas


@pytest.fixture
def window(qtbot, review_project, monkeypatch, tmp_path):
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qs"))
    from labeldesk.gui.main_window import MainWindow

    root, _ = review_project
    w = MainWindow(root, user="lead-user")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.ws is not None and w.current is not None, timeout=10000)
    yield w
    w.close()


@pytest.fixture
def make_project():
    """``make_review_project`` for tests that need another size or layout of project."""
    return make_review_project
