"""``labeldesk model add|list`` and ``labeldesk prelabel``, driven as a user drives them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli as run

from labeldesk.core.demo.synth import write_images
from labeldesk.core.store.project import Project, now_iso

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo-shapes.pt"


class Payload:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


@pytest.fixture
def proj(tmp_path, capsys) -> Path:
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    write_images(tmp_path / "src", 4, seed=5)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
    return root


def test_model_add_list_and_prelabel(proj, tmp_path, capsys) -> None:
    p = ("-p", str(proj))
    weights = str(shutil.copy(DEMO, tmp_path / "shapes.bin"))  # the name says nothing of the format
    code, out, err = run(capsys, *p, "model", "add", weights, "--name", "shapes")
    assert code == 0, err
    assert "registered model shapes" in out and "pt, detect, 4 classes: circle, square" in out
    assert "classes not in version" in out and "--add-classes" in out
    code, out, _ = run(capsys, *p, "model", "add", weights, "--name", "shapes", "--add-classes")
    assert "already registered" in out and "added classes circle, square, triangle, star" in out
    code, out, _ = run(capsys, *p, "model", "list")
    assert code == 0 and "shapes" in out and " ok " in out and "detect" in out
    (row,) = json.loads(run(capsys, *p, "model", "list", "--json")[1])
    assert row["name"] == "shapes" and row["file"] == "ok" and row["trusted"] is False

    code, out, err = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "320", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["images"], report["cached"], report["predicted"]) == (4, 0, 4)
    assert report["params"] == {"conf": 0.25, "iou": 0.7, "imgsz": 320}
    code, out, _ = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "320")
    assert code == 0 and "4 images, 4 cached, 0 predicted" in out

    with open(weights, "ab") as f:
        f.write(b"\0")
    code, out, _ = run(capsys, *p, "model", "list")
    assert " changed " in out
    code, _, err = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "320")
    assert code == 1 and "changed since it was registered" in err and "register it again" in err
    code, _, err = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "100")
    assert code == 1 and "multiple of 32" in err


def test_a_malicious_pt_never_runs_without_trust(proj, tmp_path, capsys) -> None:
    import torch

    p = ("-p", str(proj))
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload(marker)}, evil)
    code, _, err = run(capsys, *p, "model", "add", str(evil))
    assert code == 1 and "refused by safe loading" in err and "--trust" in err
    assert not marker.exists()
    assert json.loads(run(capsys, *p, "model", "list", "--json")[1]) == []

    # A registry row for it (say, added with --trust on another machine): prelabel refuses too.
    with Project.open(proj) as project, project.transaction():
        project.db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, trusted, added_at, "
            "added_by) VALUES (?, 'evil', ?, 'pt', 'detect', '[\"a\"]', 1, ?, 'x')",
            [hashlib.sha256(evil.read_bytes()).hexdigest(), str(evil), now_iso()],
        )
    code, _, err = run(capsys, *p, "prelabel", "--model", "evil", "--imgsz", "320")
    assert code == 1 and "refused by safe loading" in err
    assert not marker.exists()
    code, _, err = run(capsys, *p, "prelabel", "--model", "evil", "--imgsz", "320", "--trust")
    assert code == 1 and marker.exists()  # --trust means it: the pickle ran


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(proj, tmp_path, capsys, monkeypatch) -> None:
    from labeldesk.cli import output

    p = ("-p", str(proj))
    assert run(capsys, *p, "model", "add", str(DEMO), "--name", "shapes")[0] == 0
    drawn = output.ProgressBar.__call__

    def ctrl_c_after_two(self, done: int, total: int, what: str) -> None:
        drawn(self, done, total, what)
        if done == 2:
            signal.raise_signal(signal.SIGINT)  # as the terminal does on Ctrl-C

    monkeypatch.setattr(output.ProgressBar, "__call__", ctrl_c_after_two)
    # what the process had: Python's handler, or SIG_IGN when started in the background by a
    # shell without job control (as a CI runner may start it)
    before = signal.getsignal(signal.SIGINT)
    code, _, err = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "320")
    assert code == 130
    assert "stopping after this image" in err and "2 of 4 images have predictions" in err
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    monkeypatch.undo()
    code, out, _ = run(capsys, *p, "prelabel", "--model", "shapes", "--imgsz", "320")
    assert code == 0 and "4 images, 2 cached, 2 predicted" in out


def test_help_says_what_trust_means_and_loads_no_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from labeldesk.cli.main import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):\n"
        "    main(['model', 'add', '--help'])\n"
        "print(buf.getvalue())\n"
        "print('LOADED', [m for m in ('torch', 'ultralytics') if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    text = " ".join(r.stdout.split())
    assert "A .pt file is a pickle: loading it can run any code it contains" in text
    assert "LOADED []" in r.stdout
