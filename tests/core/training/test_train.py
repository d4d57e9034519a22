"""Training from a version, for real: Ultralytics in a child process on a few dozen small
generated images, one or two epochs at 64 pixels on the CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import snapshot

from labeldesk.core.demo.synth import write_yolo_dataset
from labeldesk.core.errors import InputError
from labeldesk.core.formats.yolo import import_yolo
from labeldesk.core.inference.registry import find_model, list_models
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.objects import hash_file
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import resolve
from labeldesk.core.training.promote import promote, release_model
from labeldesk.core.training.runs import all_runs, run_of_model, runs_of_version
from labeldesk.core.training.train import (
    TrainingCancelled,
    TrainingFailed,
    TrainOptions,
    split_manifest,
    train,
)

TINY = TrainOptions(epochs=1, imgsz=64, batch=8)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    return write_yolo_dataset(root / "ds", 24, 8, seed=3, size=(160, 120)).parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    """One project with one model trained from its imported version (shared: training costs)."""
    p = Project.init(tmp_path_factory.mktemp("t") / "proj", user="lead")
    import_yolo(p, dataset)
    events = []
    result = train(p, config="yolov8n.yaml", name="tiny", options=TINY, progress=events.append)
    yield p, result, events
    p.close()


def _fresh(tmp_path: Path, dataset: Path) -> Project:
    p = Project.init(tmp_path / "proj", user="lead")
    import_yolo(p, dataset)
    return p


def test_training_registers_the_model_with_its_lineage(trained) -> None:
    project, result, events = trained
    version = resolve(project.db, "main")
    model = find_model(project.db, "tiny")
    assert model.id == result.model_id
    assert model.trained_on == version.id
    run = run_of_model(project.db, model.id)
    assert run is not None and run.status == "completed"
    assert run.version == version.id
    assert run.split_hash == split_manifest(project, version)[0]
    assert (run.base_kind, run.base, run.seed) == ("config", "yolov8n.yaml", 0)
    assert run.params["epochs"] == 1 and run.params["imgsz"] == 64 and run.params["batch"] == 8
    assert set(run.libs) == {"ultralytics", "torch"}
    assert [e["epoch"] for e in run.epochs] == [1]
    assert "metrics/mAP50-95(B)" in run.epochs[0]["metrics"]
    assert any(k.endswith("box_loss") for k in run.epochs[0]["loss"])
    assert run.wall_s and run.wall_s > 0 and run.author == "lead"
    # the weights are an object of the store, named by their hash: they cannot change silently
    weights = project.objects.path(model.id)
    assert Path(model.path) == weights and hash_file(weights)[0] == model.id
    # progress came as it happened: batches of the epoch, then the epoch with its figures
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and "batch" in kinds and kinds.index("epoch") > kinds.index("batch")
    assert kinds[-1] == "done"
    report = fsck(project)
    assert report.ok, report.errors


def test_lineage_answers_both_ways(trained, capsys) -> None:
    from helpers import run_cli

    project, result, _ = trained
    code, out, _ = run_cli(capsys, "-p", str(project.root), "lineage", "main", "--json")
    assert code == 0
    runs = json.loads(out)["runs"]
    assert [r["model_name"] for r in runs] == ["tiny"]
    code, out, _ = run_cli(capsys, "-p", str(project.root), "lineage", "tiny", "--json")
    assert code == 0
    back = json.loads(out)
    assert back["trained_on"] == resolve(project.db, "main").id
    assert back["training"]["split_hash"] == runs[0]["split_hash"]
    code, out, _ = run_cli(capsys, "-p", str(project.root), "model", "show", "tiny")
    assert code == 0 and "trained on version" in out and "mAP50-95" in out


def test_cancel_records_a_cancelled_run_and_registers_nothing(tmp_path, dataset) -> None:
    project = _fresh(tmp_path, dataset)
    seen = []
    with pytest.raises(TrainingCancelled):
        train(
            project,
            config="yolov8n.yaml",
            options=TINY,
            progress=seen.append,
            cancel=lambda: any(e.kind == "batch" for e in seen),
        )
    (run,) = all_runs(project.db)
    assert run.status == "cancelled" and run.model is None and run.partial is None
    assert list_models(project.db) == []
    assert not (project.root / "training" / f"run-{run.id}").exists()
    assert fsck(project).ok


def test_a_cancelled_run_kept_partial_resumes_to_the_end(tmp_path, dataset) -> None:
    project = _fresh(tmp_path, dataset)
    seen = []
    opts = TrainOptions(epochs=2, imgsz=64, batch=8)
    with pytest.raises(TrainingCancelled) as info:
        train(
            project,
            config="yolov8n.yaml",
            options=opts,
            keep_partial=True,
            progress=seen.append,
            cancel=lambda: any(e.kind == "epoch" for e in seen),
        )
    run = info.value.run
    assert run.status == "cancelled" and run.epochs_done == 1
    assert run.partial is not None and Path(run.partial).is_file()
    result = train(project, resume=run.id)
    assert result.run.id == run.id and result.run.status == "completed"
    assert [e["epoch"] for e in result.run.epochs] == [1, 2]
    assert find_model(project.db, result.model_name).trained_on == run.version


def test_bad_input_is_refused_before_any_work(tmp_path, dataset) -> None:
    project = _fresh(tmp_path, dataset)
    before = snapshot(project)
    cases = [
        dict(config="yolov8n.yaml", options=TrainOptions(device="gpu")),
        dict(config="yolov8n.txt"),
        dict(base="no-such-model"),
        dict(),
        dict(config="yolov8n.yaml", options=TrainOptions(epochs=0, imgsz=8)),
    ]
    for kwargs in cases:
        with pytest.raises(InputError) as e:
            train(project, **kwargs)
        assert e.value.problems, kwargs
    assert snapshot(project) == before


def test_a_version_without_val_split_or_labels_is_refused(tmp_path, dataset) -> None:
    flat = tmp_path / "flat"
    shutil.copytree(dataset / "images" / "train", flat / "images")
    shutil.copytree(dataset / "labels" / "train", flat / "labels")
    (flat / "classes.txt").write_text("circle\nsquare\ntriangle\nstar\n")
    project = Project.init(tmp_path / "proj", user="lead")
    import_yolo(project, flat)
    with pytest.raises(InputError) as e:
        train(project, config="yolov8n.yaml", options=TINY)
    assert any("val split" in p.reason for p in e.value.problems)
    assert runs_of_version(project.db, resolve(project.db, "main").id) == []


def test_a_failing_child_leaves_a_failed_run_and_no_model(tmp_path, dataset) -> None:
    project = _fresh(tmp_path, dataset)
    with pytest.raises(TrainingFailed) as e:
        train(project, config="no-such-architecture.yaml", options=TINY)
    assert "no-such-architecture" in str(e.value)
    (run,) = all_runs(project.db)
    assert run.status == "failed" and run.error and run.model is None
    assert list_models(project.db) == []
    assert not (project.root / "training" / f"run-{run.id}" / "dataset").exists()


def test_promote_passes_and_fails_the_gate(trained) -> None:
    project, result, _ = trained
    first = promote(project, "tiny")
    assert first.passed and first.over is None
    assert release_model(project) == result.model_id
    # a second model: the same weights under another name cannot be registered, so train again
    other = train(project, config="yolov8n.yaml", name="tiny-2", options=TINY)
    # judged on the images the new model never trained on: the val split
    refused = promote(project, "tiny-2", min_gain=1.0)
    assert not refused.passed and refused.over == "tiny"
    assert refused.subset.startswith("held-out-of=")
    assert release_model(project) == result.model_id
    taken = promote(project, "tiny-2", min_gain=-1.0)
    assert taken.passed and release_model(project) == other.model_id
    rows = project.db.execute("SELECT passed FROM promotion ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [1, 0, 1]
    # both evaluations of each decision are stored with their lineage
    n = project.db.execute("SELECT COUNT(*) FROM evaluation").fetchone()[0]
    assert n == 1 + 2 + 2
    from labeldesk.core.validation.watch import watched

    assert other.model_id in {m.id for m, _ in watched(project.db)}


def test_a_base_with_other_classes_gets_a_new_head_and_says_so(tmp_path, dataset) -> None:
    from helpers import DEMO_MODEL

    from labeldesk.core.inference.registry import add_model

    renamed = tmp_path / "renamed"
    shutil.copytree(dataset, renamed)
    yaml = renamed / "data.yaml"
    text = yaml.read_text()
    for old, new in (("circle", "disc"), ("star", "asterisk")):
        text = text.replace(old, new)
    yaml.write_text(text)
    project = Project.init(tmp_path / "proj", user="lead")
    import_yolo(project, renamed)
    add_model(project, DEMO_MODEL, "shapes")
    result = train(project, base="shapes", options=TINY)
    assert any("re-made" in n for n in result.notes)
    trained = find_model(project.db, result.model_name)
    assert "disc" in trained.class_names and "circle" not in trained.class_names
    assert run_of_model(project.db, trained.id).base == find_model(project.db, "shapes").id


def test_a_base_registered_with_trust_needs_trust_again(tmp_path, dataset) -> None:
    from helpers import DEMO_MODEL

    from labeldesk.core.inference.registry import add_model

    project = _fresh(tmp_path, dataset)
    add_model(project, DEMO_MODEL, "shapes", trust=True)
    before = snapshot(project)
    with pytest.raises(InputError) as e:
        train(project, base="shapes", options=TINY)
    assert "--trust" in str(e.value.problems[0])
    assert snapshot(project) == before


def test_a_disk_that_fills_during_training_fails_cleanly(tmp_path, dataset, tmpfs) -> None:
    from helpers import fill

    fs = tmpfs("small", 24 << 20)
    project = Project.init(fs / "proj", user="lead")
    import_yolo(project, dataset)
    fill(fs, leave=3 << 20)  # room for the links and labels, not for a checkpoint
    with pytest.raises(TrainingFailed) as e:
        train(project, config="yolov8n.yaml", options=TINY)
    assert "disk is full" in str(e.value)
    (run,) = all_runs(project.db)
    assert run.status == "failed" and run.model is None
    assert list_models(project.db) == []
    (fs / "filler").unlink()
    report = fsck(project)
    assert report.ok, report.errors
    project.close()


def test_a_release_promoted_meanwhile_is_not_overwritten(tmp_path, dataset) -> None:
    """No lost update: the gate judged against the release it read; if another lead promoted a
    model while this one was being evaluated, this promotion takes nothing."""
    import sqlite3

    from helpers import DEMO_MODEL

    from labeldesk.core.errors import LabelDeskError
    from labeldesk.core.inference.registry import add_model

    project = _fresh(tmp_path, dataset)
    add_model(project, DEMO_MODEL, "shapes")
    other_lead_wrote = []

    def meanwhile(*_args) -> None:
        # As another lead's promote commits its release, from another connection, mid-gate.
        if not other_lead_wrote:
            with sqlite3.connect(project.root / "labeldesk.db", timeout=30) as other:
                other.execute(
                    "INSERT INTO project_meta (key, value) VALUES ('release_model', 'b' || ?)",
                    ["0" * 63],
                )
            other_lead_wrote.append(True)

    with pytest.raises(LabelDeskError, match="release model changed"):
        promote(project, "shapes", progress=meanwhile)
    assert other_lead_wrote
    assert release_model(project) == "b" + "0" * 63
    assert project.db.execute("SELECT COUNT(*) FROM promotion").fetchone()[0] == 0
