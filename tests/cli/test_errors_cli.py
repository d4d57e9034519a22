"""The command line under hostile conditions: roles, broken projects, full and read-only disks.

Known conditions (a full or read-only disk, a file that is no project) end with one clear line
and exit status 2, never a traceback; the project is unchanged afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli as run
from helpers import write_image


@pytest.fixture
def released(tmp_path, capsys, monkeypatch) -> Path:
    """A project led by ``boss`` with annotator ``ann``; v1.0 is tagged and approved."""
    monkeypatch.setenv("LABELDESK_USER", "boss")
    root = tmp_path / "proj"
    assert run(capsys, "init", str(root))[0] == 0
    assert run(capsys, "-p", str(root), "member", "ann", "annotator")[0] == 0
    write_image(tmp_path / "src" / "a.png", seed=1)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
    write_image(tmp_path / "src" / "b.png", seed=2)
    assert run(capsys, "-p", str(root), "add", str(tmp_path / "src"))[0] == 0
    assert run(capsys, "-p", str(root), "tag", "v1.0", "main~1")[0] == 0
    assert run(capsys, "-p", str(root), "approve", "v1.0", "--note", "ok")[0] == 0
    return root


def test_cli_annotator_cannot_move_or_delete_a_release_tag(released, capsys, monkeypatch):
    p = str(released)
    code, out, _ = run(capsys, "-p", p, "tag", "--json")
    monkeypatch.setenv("LABELDESK_USER", "ann")
    code, _, err = run(capsys, "-p", p, "tag", "-f", "v1.0", "main")
    assert code == 1
    assert "only a lead may move" in err and "Traceback" not in err
    code, _, err = run(capsys, "-p", p, "tag", "-d", "v1.0")
    assert code == 1 and "only a lead may delete" in err
    assert run(capsys, "-p", p, "tag", "--json")[1] == out  # the tag list did not change
    monkeypatch.setenv("LABELDESK_USER", "boss")
    code, out, _ = run(capsys, "-p", p, "tag", "-d", "v1.0")
    assert code == 0 and out.startswith("deleted tag v1.0")


def test_cli_last_lead_cannot_demote_themselves(released, capsys):
    p = str(released)
    code, _, err = run(capsys, "-p", p, "member", "boss", "annotator")
    assert code == 1 and "no lead left" in err
    assert "boss: lead" in run(capsys, "-p", p, "member", "boss")[1]
