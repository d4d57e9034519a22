"""``labeldesk queue`` end to end: a labelled dataset with injected errors, the shipped model
run by ``labeldesk prelabel``, and the ranking printed by a real ``labeldesk`` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import DEMO_MODEL

from labeldesk.core.demo.synth import write_yolo_dataset

ROOT = Path(__file__).resolve().parents[2]


def labeldesk(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labeldesk.cli.main", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def _rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def _write(path: Path, rows: list[list[str]]) -> None:
    path.write_text("".join(" ".join(r) + "\n" for r in rows))


def _biggest(rows: list[list[str]]) -> int:
    return max(range(len(rows)), key=lambda i: float(rows[i][3]) * float(rows[i][4]))


def test_queue_ranks_the_injected_errors_first(tmp_path) -> None:
    write_yolo_dataset(tmp_path / "ds", 8, 0, seed=3, size=(320, 240))
    labels = tmp_path / "ds" / "labels" / "train"
    # Inject one error of each kind on the biggest (surely detected) object of three images.
    rows = _rows(labels / "img_00001.txt")
    del rows[_biggest(rows)]  # a missing box
    _write(labels / "img_00001.txt", rows)
    rows = _rows(labels / "img_00002.txt")
    i = _biggest(rows)
    rows[i][0] = "0" if rows[i][0] != "0" else "1"  # a swapped class
    _write(labels / "img_00002.txt", rows)
    rows = _rows(labels / "img_00005.txt")
    i = _biggest(rows)
    rows[i][1] = f"{float(rows[i][1]) + 0.7 * float(rows[i][3]):.6f}"  # a shifted box
    _write(labels / "img_00005.txt", rows)

    p = ("-p", str(tmp_path / "proj"))
    for argv in (
        ("init", str(tmp_path / "proj")),
        (*p, "import", "yolo", str(tmp_path / "ds")),
        (*p, "model", "add", str(DEMO_MODEL), "--name", "shapes"),
        (*p, "prelabel", "--model", "shapes", "--imgsz", "320"),
    ):
        r = labeldesk(*argv)
        assert r.returncode == 0, r.stderr

    r = labeldesk(*p, "queue", "--json", "--limit", "3")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["source"]["model_name"] == "shapes" and out["source"]["images"] == 8
    top = {q["name"]: {x["kind"] for x in q["reasons"]} for q in out["queue"]}
    assert top.keys() == {"img_00001.jpg", "img_00002.jpg", "img_00005.jpg"}, out["queue"]
    assert "missing" in top["img_00001.jpg"]
    assert "wrong_class" in top["img_00002.jpg"]
    assert "loose" in top["img_00005.jpg"]
    reason = out["queue"][0]["reasons"][0]
    assert set(reason) == {"kind", "class", "box", "score", "model", "text"}
    assert [q["priority"] for q in out["queue"]] == sorted(
        (q["priority"] for q in out["queue"]), reverse=True
    )

    r = labeldesk(*p, "queue", "--limit", "1", "--model", "shapes")
    assert r.returncode == 0, r.stderr
    assert "by shapes (conf 0.25, imgsz 320, iou 0.7)" in r.stdout
    assert "priority" in r.stdout and "more (--limit 0 lists all)" in r.stdout

    r = labeldesk(*p, "queue", "--model", "nope")
    assert r.returncode == 1 and "no model 'nope'" in r.stderr
    r = labeldesk(*p, "queue", "--iou", "2")
    assert r.returncode == 2 and "--iou must be between 0 and 1" in r.stderr
