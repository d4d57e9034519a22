"""``labeldesk validate --model``, ``model watch`` and the background evaluation after a commit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import DEMO_MODEL, label_truth, write_image
from helpers import run_cli as run

from labeldesk.core.inference.registry import add_model
from labeldesk.core.store.project import Project
from labeldesk.core.validation.evaluation import list_evaluations


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    with Project.init(root, user="lead") as project:
        label_truth(project, tmp_path / "src")
        add_model(project, DEMO_MODEL, "demo")
    return root


def test_validate_a_model_against_a_baseline_model(capsys, proj) -> None:
    p = ["-p", str(proj)]
    code, out, err = run(capsys, *p, "validate", "--model", "demo", "--imgsz", "320", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["source"]["kind"] == "model" and first["source"]["name"] == "demo"
    (row,) = first["evaluations"]
    assert row["metrics"]["summary"]["map50"] > 0.3
    # A larger inference size as the baseline: another model setup on the same version.
    args = ["validate", "--model", "demo", "--imgsz", "320", "--baseline-model", "demo"]
    code, out, err = run(capsys, *p, *args, "--imgsz", "640", "--max-drop", "1")
    assert code == 0, err
    assert "baseline: model demo on version" in out and "gate" in out
    # Every evaluation of the model, whatever it was compared with
    code, out, _ = run(capsys, *p, "evaluations", "--model", "demo", "--json")
    rows = json.loads(out)
    assert len(rows) == 3 and {r["source_hash"] for r in rows} == {row["source_hash"]}
    code, _, err = run(capsys, *p, "evaluations", "--model", "nope")
    assert code == 1 and "no model 'nope'" in err


def test_watch_evaluates_each_new_version_in_the_background(capsys, proj, tmp_path) -> None:
    p = ["-p", str(proj)]
    code, out, err = run(capsys, *p, "model", "watch", "demo", "--imgsz", "320")
    assert code == 0, err and "watching demo" in out
    code, out, _ = run(capsys, *p, "model", "list")
    assert "yes (map50_95, max drop 0.02)" in out
    code, out, err = run(capsys, *p, "validate", "--watched")
    assert code == 0, err
    assert "demo: map50_95" in out and "no earlier evaluation" in out

    # Unlabelled new images: the model's boxes on them are false positives, mAP drops.
    new = [
        write_image(tmp_path / "new" / f"n{i}.png", seed=50 + i, size=(320, 240)) for i in (0, 1)
    ]
    code, out, err = run(capsys, *p, "add", *map(str, new))
    assert code == 0, err
    assert "in the background" in out and "watch.log" in out
    with Project.open(proj, user="lead") as project:
        main_id, committer = project.db.execute(
            "SELECT id, author FROM version ORDER BY seq DESC"
        ).fetchone()
        deadline = time.monotonic() + 120
        while not list_evaluations(project, version=main_id):
            assert time.monotonic() < deadline, (proj / "watch.log").read_text()
            time.sleep(0.5)
        (row,) = list_evaluations(project, version=main_id)
    assert row.params["trigger"] == "watch" and row.baseline is not None and row.author == committer
    assert row.passed is (row.metric_drop <= 0.02 + 1e-9)

    code, out, _ = run(capsys, *p, "log")
    assert "watched models" in out and "demo map50_95" in out
    code, out, _ = run(capsys, *p, "log", "--json")
    watch = {v["id"]: v["watch"] for v in json.loads(out)}
    assert watch[main_id][0]["evaluation"] == row.id
    # Run again in the foreground: already evaluated, nothing new is stored.
    code, out, _ = run(capsys, *p, "validate", "--watched", "--json")
    (result,) = json.loads(out)["results"]
    assert result["skipped"] and result["evaluation"]["id"] == row.id
    assert code == (1 if result["regression"] else 0)

    code, out, _ = run(capsys, *p, "model", "unwatch", "demo")
    assert code == 0 and "no longer watching demo" in out
    code, out, _ = run(capsys, *p, "validate", "--watched")
    assert code == 0 and "no model is watched" in out
