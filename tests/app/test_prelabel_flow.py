"""The README's flow: `model add`, `prelabel` in real processes, then the review workspace shows
the model's boxes without any menu, and still shows the rest after a commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import DEMO_MODEL

from labeldesk.app import rules
from labeldesk.app.review import Workspace, open_or_start_session
from labeldesk.core.demo.synth import write_images
from labeldesk.core.store.project import Project

ROOT = Path(__file__).resolve().parents[2]


def labeldesk(*argv: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "labeldesk.cli.main", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr


def test_cli_prelabels_reach_the_workspace_and_survive_a_commit(tmp_path) -> None:
    write_images(tmp_path / "src", 4, seed=5, size=(320, 240))
    root = tmp_path / "proj"
    p = ("-p", str(root))
    labeldesk("init", str(root))
    labeldesk(*p, "add", str(tmp_path / "src"))
    labeldesk(*p, "model", "add", str(DEMO_MODEL), "--name", "shapes", "--add-classes")
    labeldesk(*p, "prelabel", "--model", "shapes", "--imgsz", "320")

    with Project.open(root) as project:
        (model_id,) = [r[0] for r in project.db.execute("SELECT id FROM model")]
        ws = Workspace(project, open_or_start_session(project))
        ws.load()
        assert ws.prelabel_model == model_id
        assert ws.prelabel_params == {"conf": 0.25, "iou": 0.7, "imgsz": 320}
        pending = {r.sha: ws.boxes(r.sha) for r in ws.rows}
        with_boxes = [sha for sha, boxes in pending.items() if boxes]
        assert len(with_boxes) >= 2, "the demo model finds shapes on these scenes"
        for boxes in pending.values():
            assert all(b.state == "pending" and b.model == model_id for b in boxes)
        first, *rest = with_boxes
        assert ws.rows[ws.index[first]].min_score is not None  # the list can filter by it
        ws.session.set_boxes(first, rules.accept_all(pending[first], project.user))
        ws.session.commit("first image reviewed")

        nxt = Workspace(project, open_or_start_session(project))
        nxt.load()
        assert nxt.session.id != ws.session.id
        assert (nxt.prelabel_model, nxt.prelabel_params) == (ws.prelabel_model, ws.prelabel_params)

        def seen(w: Workspace, boxes) -> list[tuple]:
            # by class name: classes --add-classes made are provisional until the first commit
            return [(w.classes[b.cls], b.x, b.y, b.w, b.h, b.score, b.state) for b in boxes]

        for sha in rest:  # the images nobody reviewed still have their pending boxes
            assert seen(nxt, nxt.boxes(sha)) == seen(ws, pending[sha])
        # the reviewed image is labelled now: the model agrees with its labels, nothing to say
        assert [b.state for b in nxt.boxes(first)] == ["accepted"] * len(pending[first])
        assert nxt.suggestions(first) == []
