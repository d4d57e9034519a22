"""``labeldesk validate / evaluations / agreement / drift / report`` as CI and users run them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli as run
from helpers import write_image
from PIL import Image

from labeldesk.cli.main import build_parser
from labeldesk.core.boxes import Box
from labeldesk.core.inference import predictions
from labeldesk.core.store.importer import Staging
from labeldesk.core.store.manifest import Entry
from labeldesk.core.store.project import Project, now_iso
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import resolve

CLASSES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def labelled(project: Project, paths: list[Path], message: str = "labelled") -> None:
    """Commit ``paths`` with two boxes each, alternating val/train, every third tagged."""
    with Staging(project) as st:
        staged = st.stage_files(paths)
        st.commit(
            entries={
                sha: Entry("", ("val", "train")[k % 2], ("night",) * (k % 3 == 0))
                for k, (_, sha, _) in enumerate(staged)
            },
            annsets={
                sha: [Box(1, 4 + k, 4, 20, 16), Box(2, 30, 20, 16 + k, 20)]
                for k, (_, sha, _) in enumerate(staged)
            },
            classes=CLASSES,
            message=message,
            provenance={},
        )


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    with Project.init(root, user="lead") as project:
        labelled(
            project,
            [write_image(tmp_path / "src" / f"im{i}.png", seed=i, size=(64, 48)) for i in range(6)],
        )
    return root


def results(proj: Path, tmp_path: Path, name: str, shift: float) -> Path:
    """Detections equal to the labels moved by ``shift`` px, by file name."""
    out = []
    with Project.open(proj) as project:
        for (path,) in project.db.execute("SELECT path FROM image_source ORDER BY path"):
            if not Path(path).stem.startswith("im"):
                continue
            k = int(Path(path).stem[2:])
            for cls, box in ((1, [4 + k, 4, 20, 16]), (2, [30, 20, 16 + k, 20])):
                box = [box[0] + shift, box[1], box[2], box[3]]
                out.append(
                    {"image_id": Path(path).name, "category_id": cls, "bbox": box, "score": 0.9}
                )
    path = tmp_path / name
    path.write_text(json.dumps(out))
    return path


def test_help_lists_the_validation_verbs() -> None:
    text = build_parser().format_help()
    for verb in ("validate", "evaluations", "agreement", "drift", "report"):
        assert verb in text


def test_validate_gate_exit_codes(capsys, proj, tmp_path) -> None:
    good = results(proj, tmp_path, "good.json", 0)
    bad = results(proj, tmp_path, "bad.json", 5)
    p = ["-p", str(proj)]
    code, out, err = run(capsys, *p, "validate", "--predictions", str(good), "--by-split")
    assert code == 0, err
    assert re.search(r"^all\s+6\s+12\s+1\.000\s+1\.000", out, re.M)
    assert re.search(r"^split=val\s+3\s+6\s", out, re.M)
    assert "no baseline" in out

    # worse predictions than the baseline predictions: exit 1 with a clear message
    args = [*p, "validate", "--predictions", str(bad), "--baseline-predictions", str(good)]
    code, out, err = run(capsys, *args)
    assert code == 1
    m = re.search(r"FAIL map50_95 on all: ([0-9.]+) vs baseline 1\.0000, a drop of ([0-9.]+)", err)
    assert m and float(m.group(2)) == pytest.approx(1 - float(m.group(1)), abs=2e-4)
    assert "FAIL" in out

    # within a generous limit: exit 0; --json carries the verdict and the lineage
    code, out, _ = run(capsys, *args, "--max-drop", "0.9", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["passed"] is True and data["metric"] == "map50_95"
    (row,) = data["evaluations"]
    (base,) = data["baseline_evaluations"]
    assert row["baseline"] == base["id"] and base["source_name"] == str(good)

    # the same file on the same version as baseline REF: no drop
    code, out, _ = run(capsys, *p, "validate", "--predictions", str(good), "--baseline", "main")
    assert code == 0 and "PASS" in out

    code, out, _ = run(capsys, *p, "evaluations", "--json")
    rows = json.loads(out)
    assert [r["role"] for r in rows] == ["candidate"] * 3 + ["baseline", "candidate"] * 3
    assert all(len(r["source_hash"]) == 64 and r["version"] for r in rows)
    code, out, _ = run(capsys, *p, "evaluations")
    assert code == 0 and "FAIL" in out and "predictions:" in out


def test_bad_input_exits_2_and_stores_nothing(capsys, proj, tmp_path) -> None:
    p = ["-p", str(proj)]
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": "im0.png", "category_id": 7, "bbox": [1, 2, 3, 4]}]')
    code, _, err = run(capsys, *p, "validate", "--predictions", str(broken))
    assert code == 2
    assert "broken.json[0]: missing score" in err
    broken.write_text('[{"image_id": "nope.png", "category_id": 7, "bbox": [1], "score": 1}]')
    code, _, err = run(capsys, *p, "validate", "--predictions", str(broken))
    assert code == 2
    assert "no image of this version is named 'nope.png'" in err
    assert "category_id 7 is not a class" in err and "bbox must be" in err
    good = results(proj, tmp_path, "good.json", 0)
    code, _, err = run(capsys, *p, "validate", "--predictions", str(good), "--metric", "x")
    assert code == 2 and "--metric" in err
    code, _, err = run(capsys, *p, "validate", "--predictions", str(good), "--version", "nope")
    assert code == 2 and "unknown ref" in err
    code, _, err = run(capsys, *p, "validate", "--model", "yolo")
    assert code == 2 and "no model 'yolo'" in err
    args = ["validate", "--predictions", str(good), "--baseline-model", "old"]
    code, _, err = run(capsys, *p, *args)
    assert code == 2 and "no model 'old'" in err
    code, _, err = run(capsys, *p, "validate", "--watched", "--by-split")
    assert code == 2 and "drop --by-split" in err
    code, out, _ = run(capsys, *p, "evaluations", "--json")
    assert json.loads(out) == []


def test_agreement_drift_and_report(capsys, proj, tmp_path) -> None:
    p = ["-p", str(proj)]
    with Project.open(proj, user="lead") as project:
        with project.transaction():
            project.db.execute(
                "INSERT INTO model (id, name, path, format, task, class_names, added_at, "
                "added_by) VALUES ('m1', 'demo', '/m.onnx', 'onnx', 'detect', '[]', ?, 'x')",
                [now_iso()],
            )
        sha = project.db.execute("SELECT sha256 FROM image_source WHERE path LIKE '%im5.png'")
        sha = sha.fetchone()[0]
        pred = predictions.Prediction("cat", 40, 30, 10, 10, 0.75)
        predictions.store(project, "m1", {"conf": 0.25}, [(sha, [pred])])
        s = ReviewSession.start(project)
        with project.transaction():
            project.db.execute(
                "UPDATE review_session SET prelabel_model = 'm1', prelabel_params = ? WHERE id = ?",
                [predictions.params_key({"conf": 0.25}), s.id],
            )
        edited = Box(1, 41, 30, 10, 10, origin="model", state="edited", score=0.75, model="m1")
        s.set_boxes(sha, [*s.boxes(sha), edited])
        s.commit("review <script>alert(1)</script>")
        # dark images with only dogs: a drifted version
        dark = []
        for i in range(6):
            arr = (np.random.default_rng(i).random((48, 64, 3)) * 40).astype(np.uint8)
            dark.append(tmp_path / "dark" / f"d{i}.png")
            dark[-1].parent.mkdir(exist_ok=True)
            Image.fromarray(arr).save(dark[-1])
        labelled(project, dark, message="dark batch")

    code, out, _ = run(capsys, *p, "agreement")
    assert code == 0 and re.search(r"demo\s+cat\s+0\s+1\s+0\.818", out)
    code, out, _ = run(capsys, *p, "agreement", "--model", "demo", "--json")
    data = json.loads(out)
    assert data["sessions"][0]["classes"]["cat"]["edited"] == 1
    assert data["trend"][0]["mean_iou"] == pytest.approx(90 / 110)
    code, _, err = run(capsys, *p, "agreement", "--model", "nope")
    assert code == 1 and "no model 'nope'" in err

    code, out, _ = run(capsys, *p, "drift", "main", "main")
    assert code == 0 and "no drift" in out
    code, _, err = run(capsys, *p, "drift", "main", "nope")
    assert code == 2 and "unknown ref 'nope'" in err
    code, out, _ = run(capsys, *p, "drift", "main~2", "main", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["drifted"] and "brightness" in data["verdict"]

    good = results(proj, tmp_path, "good.json", 0)
    assert run(capsys, *p, "validate", "--predictions", str(good), "--version", "main~2")[0] == 0
    assert run(capsys, *p, "validate", "--predictions", str(good), "--version", "main~1")[0] == 0
    out_file = tmp_path / "out" / "report.html"
    code, out, err = run(capsys, *p, "report", "--out", str(out_file))
    assert code == 0, err
    assert [f.name for f in out_file.parent.iterdir()] == ["report.html"]
    text = out_file.read_text()
    assert text.count('src="data:image/png;base64,') >= 3  # evaluations, agreement, drift
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, re.I)
    assert "<script>" not in text and "review &lt;script&gt;alert(1)&lt;/script&gt;" in text
    for section in ("Versions", "Evaluations", "Review agreement", "Drift"):
        assert f"<h2>{section}</h2>" in text
    # times to the minute for reading, the full timestamp on hover
    with Project.open(proj) as project:
        created = resolve(project.db, "main").created
    assert f'<span title="{created}">{created[:10]} {created[11:16]} UTC</span>' in text


def test_a_passing_gate_says_the_drop_and_the_limit(capsys, proj, tmp_path) -> None:
    good = results(proj, tmp_path, "good.json", 0)
    bad = results(proj, tmp_path, "bad.json", 5)
    p = ["-p", str(proj)]
    args = [*p, "validate", "--predictions", str(bad), "--baseline-predictions", str(good)]
    code, out, _ = run(capsys, *args, "--max-drop", "0.9")
    assert code == 0
    m = re.search(r"PASS: map50_95 on all dropped by ([0-9.]+) \(([0-9.]+) vs baseline", out)
    assert m and float(m.group(1)) > 0.01, out
    assert "within the limit of 0.9000" in out and "dropped at most" not in out
    code, out, _ = run(capsys, *p, "validate", "--predictions", str(good), "--baseline", "main")
    assert code == 0 and "PASS: map50_95 did not drop on any subset (limit" in out
