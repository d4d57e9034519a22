"""``labeldesk remote``, ``push``, ``fetch``, ``pull`` and ``clone`` against a real SeaweedFS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import run_cli as run
from helpers import write_image

from labeldesk.core.boxes import Box
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, capsys, name: str = "a", n: int = 4) -> Path:
    root = tmp_path / name
    src = tmp_path / f"src-{name}"
    for i in range(n):
        write_image(src / f"img{i}.png", seed=i)
    assert run(capsys, "init", str(root))[0] == 0
    assert run(capsys, "-p", str(root), "add", str(src))[0] == 0
    return root


def _review(root: Path, image_index: int, x: float) -> str:
    """Label the image_index-th image (by hash) with one box at x; its hash."""
    with Project.open(root) as p:
        s = ReviewSession.start(p)
        image = p.db.execute("SELECT sha256 FROM image ORDER BY sha256").fetchall()[image_index][0]
        cid = s.add_class("cat") if "cat" not in s.classes().values() else 1
        s.set_boxes(image, [Box(cid, x, 1.0, 5.0, 5.0)])
        s.commit(f"x={x}")
    return image


def test_remote_add_list_remove(tmp_path: Path, capsys, remote_url: str) -> None:
    root = _project(tmp_path, capsys)
    code, out, _ = run(capsys, "-p", str(root), "remote", "add", "origin", remote_url)
    assert code == 0 and remote_url in out
    code, out, _ = run(capsys, "-p", str(root), "remote", "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["origin"]
    code, _, err = run(capsys, "-p", str(root), "remote", "add", "bad", "ftp://x")
    assert code == 1 and "not an S3 URL" in err
    assert run(capsys, "-p", str(root), "remote", "remove", "origin")[0] == 0
    code, out, _ = run(capsys, "-p", str(root), "remote", "list", "--json")
    assert json.loads(out) == []


def test_push_refused_then_pull_lists_conflicts_then_resolved(
    tmp_path: Path, capsys, remote_url: str
) -> None:
    a = _project(tmp_path, capsys)
    assert run(capsys, "-p", str(a), "remote", "add", "origin", remote_url)[0] == 0
    code, out, _ = run(capsys, "-p", str(a), "push")
    assert code == 0 and "main ->" in out
    b = tmp_path / "b"
    code, out, _ = run(capsys, "clone", remote_url, str(b))
    assert code == 0 and "cloned into" in out
    image = _review(a, 0, 1.0)
    _review(b, 0, 2.0)  # the same image, differently
    assert run(capsys, "-p", str(a), "push")[0] == 0
    code, _, err = run(capsys, "-p", str(b), "push")
    assert code == 1 and "fetch and merge first" in err
    code, _, err = run(capsys, "-p", str(b), "pull")
    assert code == 1 and "1 image(s) changed differently" in err and image[:12] in err
    code, out, _ = run(capsys, "-p", str(b), "pull", "--ours")
    assert code == 0 and "merged" in out
    assert run(capsys, "-p", str(b), "push")[0] == 0
    code, out, _ = run(capsys, "-p", str(a), "pull")
    assert code == 0 and "fast-forward" in out
    code, out, _ = run(capsys, "-p", str(a), "remote", "list", "--json")
    assert json.loads(out)[0]["ahead"] == 0 and json.loads(out)[0]["behind"] == 0


def test_clone_lazy_in_a_subprocess_never_prints_credentials(
    tmp_path: Path, capsys, remote_url: str
) -> None:
    a = _project(tmp_path, capsys)
    assert run(capsys, "-p", str(a), "remote", "add", "origin", remote_url)[0] == 0
    assert run(capsys, "-p", str(a), "push")[0] == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "labeldesk.cli.main"]
    r = subprocess.run(
        [*cmd, "clone", remote_url, str(tmp_path / "lazy"), "--lazy"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert "0 image(s)" in r.stdout and "lazy" in r.stdout
    # export reads every image: the lazy clone fetches them, verified, on the way
    r2 = subprocess.run(
        [*cmd, "-p", str(tmp_path / "lazy"), "export", "yolo", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert r2.returncode == 0, r2.stderr
    assert len(list((tmp_path / "out").rglob("*.png"))) == 4
    for text in (r.stdout, r.stderr, r2.stdout, r2.stderr):
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text
    # an unreachable endpoint: a clear error, status 2, no project left behind
    r3 = subprocess.run(
        [*cmd, "clone", remote_url, str(tmp_path / "none"), "--endpoint-url",
         "http://127.0.0.1:9"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert r3.returncode == 2 and "cannot reach" in r3.stderr and "Traceback" not in r3.stderr
    assert not (tmp_path / "none").exists()


def test_read_commands_in_a_lazy_clone_do_not_load_the_s3_client(
    tmp_path: Path, capsys, remote_url: str
) -> None:
    a = _project(tmp_path, capsys, n=2)
    assert run(capsys, "-p", str(a), "remote", "add", "origin", remote_url)[0] == 0
    assert run(capsys, "-p", str(a), "push")[0] == 0
    assert run(capsys, "clone", remote_url, str(tmp_path / "lazy"), "--lazy")[0] == 0
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['labeldesk', '-p', {str(tmp_path / 'lazy')!r}, 'log']\n"
        "try:\n    runpy.run_module('labeldesk.cli.main', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('LOADED', [m for m in sys.modules if m.split('.')[0] in ('obstore', 'boto3')])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "LOADED []" in r.stdout
