"""Crash safety and concurrent writers, done for real: processes are SIGKILLed at random moments
and two processes commit at once."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import write_image

from labeldesk.core.boxes import Box, annotation_set, live_boxes
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import MAIN, head, resolve

KILLS = 200


def _commit_forever(root: Path, scratch: Path, wfd: int, seed: int) -> None:
    """Child process body: commit imports and review sessions until killed."""
    rng = random.Random(seed)
    project = Project.open(root, user=f"crasher{seed}")
    store = ManifestStore(project.db)
    i = 0
    while True:
        i += 1
        if rng.random() < 0.3:
            folder = scratch / f"{seed}-{i}"
            for k in range(rng.randint(1, 3)):
                write_image(folder / f"{k}.png", seed=seed * 1000 + i * 10 + k, size=(24, 16))
            version = add_images(project, [folder], workers=1).version
        else:
            s = ReviewSession.start(project)
            cid = s.add_class("thing")
            entries = list(store.entries(store.tree(s.base.tree)))
            for image, _ in rng.sample(entries, min(len(entries), rng.randint(1, 3))):
                boxes = [
                    Box(cid, rng.uniform(0, 10), rng.uniform(0, 10), 1 + rng.random(), 2)
                    for _ in range(rng.randint(0, 3))
                ]
                s.set_boxes(image, boxes)
            version = s.commit(f"commit {i}")
        assert version is not None
        os.write(wfd, f"{version.id}\n".encode())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_moments_never_breaks_the_project(project, images, tmp_path) -> None:
    add_images(project, images)
    root = project.root
    project.close()
    scratch = tmp_path / "scratch"
    reported: set[str] = set()
    rng = random.Random(1234)
    for n in range(KILLS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            try:
                _commit_forever(root, scratch, w, seed=n + 1)
            finally:
                os._exit(1)
        os.close(w)
        with os.fdopen(r) as f:
            # Wait (however long a loaded machine takes) until the child has committed at least
            # one version, then kill it a random moment later: inside its next commit, between
            # two, or anywhere in between. Waiting on its report instead of on the clock makes
            # every kill land after real work, whatever the machine's speed.
            first = f.readline().strip()
            assert first, f"child {n} died before committing anything"
            time.sleep(rng.uniform(0.0, 0.05))
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status), f"child {n} ended by itself: {status}"
            reported.add(first)
            reported.update(line.strip() for line in f if line.strip())

        conn = sqlite3.connect(root / "labeldesk.db")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()
        with Project.open(root) as p:
            report = fsck(p)
            assert report.ok, (n, report.errors)
            ids = {row[0] for row in p.db.execute("SELECT id FROM version")}
            missing = reported - ids
            assert not missing, f"kill {n}: reported versions lost: {missing}"
            assert head(p.db) in ids
    with Project.open(root) as p:
        n_versions = p.db.execute("SELECT COUNT(*) FROM version").fetchone()[0]
    # every child committed before its kill, so every round tested a kill after real work
    assert len(reported) >= KILLS
    assert n_versions >= len(reported) + 1


WRITER = textwrap.dedent(
    """
    import json, random, sys, time
    from pathlib import Path
    from labeldesk.core.boxes import Box
    from labeldesk.core.errors import MergeConflictError
    from labeldesk.core.store.project import Project
    from labeldesk.core.store.sessions import ReviewSession
    from labeldesk.core.store.manifest import ManifestStore

    root, who, go, n = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(who)
    p = Project.open(root, user=who)
    store = ManifestStore(p.db)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for i in range(n):
        s = ReviewSession.start(p)
        images = [img for img, _ in store.entries(store.tree(s.base.tree))]
        for img in rng.sample(images, rng.randint(1, 2)):
            s.set_boxes(img, [Box(1, rng.randint(0, 30), rng.randint(0, 30), 3, 3,
                                  author=who)])
        time.sleep(rng.uniform(0, 0.004))
        try:
            v = s.commit(f"{who} {i}")
            print(json.dumps({"session": s.id, "outcome": "version", "version": v.id}))
        except MergeConflictError as e:
            s.abandon()
            print(json.dumps({"session": s.id, "outcome": "conflict",
                              "images": [c.image for c in e.conflicts]}))
        sys.stdout.flush()
    """
)


@pytest.mark.slow
def test_two_processes_committing_at_once(project, tmp_path) -> None:
    imgs = [write_image(tmp_path / "src" / f"{i}.png", seed=i, size=(16, 16)) for i in range(12)]
    add_images(project, imgs)
    s = ReviewSession.start(project)
    assert s.add_class("obj") < 0
    first = sorted(
        img
        for img, _ in ManifestStore(project.db).entries(ManifestStore(project.db).tree(s.base.tree))
    )[0]
    s.set_boxes(first, [Box(-1, 0, 0, 1, 1)])
    start = s.commit("classes")
    root = project.root
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), who, str(go), "100"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("alice", "bob")
    ]
    # Both children have opened the project before either may start: a start line, not a sleep.
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    go.touch()
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "locked" not in err.lower()
        outcomes += [json.loads(line) for line in out.splitlines()]
    assert len(outcomes) == 200
    assert {o["outcome"] for o in outcomes} <= {"version", "conflict"}
    n_versions = sum(o["outcome"] == "version" for o in outcomes)
    assert n_versions > 100  # most commits merge; conflicts only where both sides touched

    # Replay every committed session in commit order on top of the starting state: the result
    # must be exactly what main holds.
    db = project.db
    store = ManifestStore(db)
    state = {img: e.annset for img, e in store.entries(store.tree(start.tree))}
    committed = db.execute(
        "SELECT v.id, s.id, s.base FROM version v JOIN review_session s ON s.version = v.id "
        "WHERE v.seq > ? ORDER BY v.seq",
        [start.seq],
    ).fetchall()
    assert {c[0] for c in committed} == {
        o["version"] for o in outcomes if o["outcome"] == "version"
    }
    # The two really ran at once: some session was committed after main had moved past its base
    # (so it was merged), which cannot happen if one child ran after the other.
    parents = {
        vid: (json.loads(p) or [None])[0]
        for vid, p in db.execute("SELECT id, parents FROM version")
    }
    assert any(parents[vid] != base_id for vid, _sid, base_id in committed)
    for _vid, sid, base_id in committed:
        base_tree = store.tree(resolve(db, base_id).tree)
        for img, boxes in ReviewSession(project, sid).edits().items():
            ours = annotation_set(live_boxes(boxes))[0]
            if ours != store.entry(base_tree, img).annset:
                state[img] = ours
    final = {img: e.annset for img, e in store.entries(store.tree(resolve(db, MAIN).tree))}
    assert final == state
    assert fsck(project).ok
