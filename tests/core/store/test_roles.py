"""Roles: a release tag and the last lead are protected in core, not only in the interfaces."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import snapshot, write_image

from labeldesk.core.errors import PermissionDeniedError
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import decide, delete_tag, resolve, tag


@pytest.fixture
def released(tmp_path: Path):
    """A project led by ``lead-user`` with annotator ``ann``: v1 (tagged v1.0, approved), v2."""
    root = tmp_path / "p"
    with Project.init(root, user="lead-user") as p:
        p.set_member("ann", "annotator")
        v1 = add_images(p, [write_image(tmp_path / "a.png", seed=1)]).version
        v2 = add_images(p, [write_image(tmp_path / "b.png", seed=2)]).version
        tag(p, "v1.0", v1.id)
        tag(p, "wip", v1.id)
        decide(p, "v1.0", "approved", "QA ok")
    return root, v1, v2


def test_an_annotator_cannot_move_or_delete_a_tag_on_an_approved_version(released) -> None:
    root, v1, v2 = released
    with Project.open(root, user="ann") as p:
        before = snapshot(p)
        with pytest.raises(PermissionDeniedError, match="only a lead may move"):
            tag(p, "v1.0", v2.id, force=True)
        with pytest.raises(PermissionDeniedError, match="only a lead may delete"):
            delete_tag(p, "v1.0")
        assert snapshot(p) == before
        assert resolve(p.db, "v1.0").id == v1.id
        # Tags on approved versions may still be made, and an idempotent re-tag is no move.
        tag(p, "ann-mark", v1.id)
        tag(p, "v1.0", v1.id, force=True)
        assert resolve(p.db, "v1.0").id == v1.id


def test_an_annotator_may_move_and_delete_tags_on_unapproved_versions(released) -> None:
    root, v1, v2 = released
    with Project.open(root, user="ann") as p:
        tag(p, "draft", v2.id)
        tag(p, "draft", v1.id, force=True)  # onto an approved version: naming it is harmless
        assert resolve(p.db, "draft").id == v1.id
        tag(p, "draft2", v2.id)
        assert delete_tag(p, "draft2") == v2.id
        assert p.db.execute("SELECT 1 FROM ref WHERE name = 'draft2'").fetchone() is None


def test_a_lead_may_move_and_delete_a_release_tag(released) -> None:
    root, v1, v2 = released
    with Project.open(root, user="lead-user") as p:
        tag(p, "v1.0", v2.id, force=True)
        assert resolve(p.db, "v1.0").id == v2.id
        assert delete_tag(p, "v1.0") == v2.id
        assert resolve(p.db, v1.id).status == "approved"  # the version stays


def test_the_last_lead_cannot_be_demoted(tmp_path: Path) -> None:
    with Project.init(tmp_path / "p", user="boss") as p:
        before = snapshot(p)
        with pytest.raises(PermissionDeniedError, match="no lead left"):
            p.set_member("boss", "annotator")
        assert snapshot(p) == before
        p.set_member("deputy", "lead")
        p.set_member("boss", "annotator")  # another lead remains: allowed
        assert p.role_of("boss") == "annotator"
    with Project.open(tmp_path / "p", user="deputy") as p:
        with pytest.raises(PermissionDeniedError, match="no lead left"):
            p.set_member("deputy", "annotator")
        assert p.role_of() == "lead"


def test_a_project_without_members_cannot_be_left_without_a_lead(tmp_path: Path) -> None:
    """With no member rows everyone acts as lead; the first role given must not lock all out."""
    with Project.init(tmp_path / "p", user="boss") as p:
        p.db.execute("DELETE FROM member")
    with Project.open(tmp_path / "p", user="anyone") as p:
        with pytest.raises(PermissionDeniedError, match="no lead left"):
            p.set_member("alice", "annotator")
        assert p.members() == []
        p.set_member("anyone", "lead")
        p.set_member("alice", "annotator")
        assert p.members() == [("alice", "annotator"), ("anyone", "lead")]


def test_two_leads_demoting_each_other_at_once_leave_one_lead(tmp_path: Path) -> None:
    """Real processes, released together: the lead count is read under the write lock."""
    import subprocess
    import sys

    root = tmp_path / "p"
    with Project.init(root, user="a") as p:
        p.set_member("b", "lead")
    child = (
        "import sys\n"
        "from labeldesk.core.errors import PermissionDeniedError\n"
        "from labeldesk.core.store.project import Project\n"
        "p = Project.open(sys.argv[1], user=sys.argv[2])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    p.set_member(sys.argv[3], 'annotator')\n"
        "    print('demoted')\n"
        "except PermissionDeniedError as e:\n"
        "    print('refused', e)\n"
    )
    with Project.open(root, user="a") as holder, holder.transaction():
        # Both children open the project and wait; then both go while we hold the write lock,
        # so their BEGIN IMMEDIATEs queue behind ours and run one after the other.
        kids = [
            subprocess.Popen(
                [sys.executable, "-c", child, str(root), me, other],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for me, other in (("a", "b"), ("b", "a"))
        ]
        for k in kids:
            assert k.stdout is not None and k.stdout.readline().strip() == "ready"
        for k in kids:
            assert k.stdin is not None
            k.stdin.write("go\n")
            k.stdin.flush()
    outcomes = sorted(k.communicate()[0].split()[0] for k in kids)
    assert outcomes == ["demoted", "refused"]
    with Project.open(root) as p:
        assert [u for u, r in p.members() if r == "lead"] in (["a"], ["b"])


def test_a_lead_demoted_while_approving_cannot_approve(tmp_path: Path) -> None:
    """The role is read again under the write lock, not only before it is taken.

    A real process (lead ``b``) approves while lead ``a`` holds the write lock and has demoted
    ``b`` in that same, not yet committed, transaction: ``b``'s approval waits for the lock and
    must then see the demotion.
    """
    import subprocess
    import sys
    import time

    root = tmp_path / "p"
    with Project.init(root, user="a") as p:
        p.set_member("b", "lead")
        v1 = add_images(p, [write_image(tmp_path / "a.png", seed=1)]).version
    child = (
        "import sys\n"
        "from labeldesk.core.errors import PermissionDeniedError\n"
        "from labeldesk.core.store.project import Project\n"
        "from labeldesk.core.store.versions import decide\n"
        "p = Project.open(sys.argv[1], user='b')\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    decide(p, sys.argv[2], 'approved', 'ok')\n"
        "    print('approved')\n"
        "except PermissionDeniedError as e:\n"
        "    print('refused', e)\n"
    )
    kid = subprocess.Popen(
        [sys.executable, "-c", child, str(root), v1.id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert kid.stdout is not None and kid.stdout.readline().strip() == "ready"
    with Project.open(root, user="a") as holder, holder.transaction():
        holder.db.execute("UPDATE member SET role = 'annotator' WHERE user = 'b'")
        assert kid.stdin is not None
        kid.stdin.write("go\n")
        kid.stdin.flush()
        # Give the child time to read its role before we commit (the old code read it here,
        # outside the lock, and approved). The fixed code is right however long this takes.
        time.sleep(0.5)
    out = kid.communicate(timeout=120)[0]
    assert out.startswith("refused"), out
    with Project.open(root) as p:
        assert resolve(p.db, v1.id).status != "approved"
