"""Push, fetch, pull and clone against a real S3 server (SeaweedFS from its wheel, loopback)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import write_image
from remote_helpers import images_of, make_project, remote_problems, review
from s3server import PUSH_FORK_SERVER, HeaderDroppingProxy, SeaweedS3

from labeldesk.core.errors import MergeConflictError
from labeldesk.core.remote import layout as L
from labeldesk.core.remote.client import Bucket, RemoteUnavailableError
from labeldesk.core.remote.config import add_remote, list_remotes, remove_remote
from labeldesk.core.remote.merge import pull
from labeldesk.core.remote.probe import CapabilityError, probe
from labeldesk.core.remote.sync import RemoteMovedError, clone, fetch, push
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.manifest import ManifestStore
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import all_versions, decide, get_version, head, tag

ROOT = Path(__file__).resolve().parents[3]


# -- the server and the probe -------------------------------------------------------------------


def test_seaweedfs_honours_conditional_writes(remote_url: str) -> None:
    b = Bucket(remote_url)
    assert b.create("k", b"1") is True
    assert b.create("k", b"2") is False  # If-None-Match: * refused the second create
    _, etag = b.get("k")
    new = b.replace("k", b"3", etag)
    from labeldesk.core.remote.client import PreconditionFailed

    with pytest.raises(PreconditionFailed):
        b.replace("k", b"4", etag)  # stale etag: If-Match refused
    assert b.get("k") == (b"3", new)
    probe(b)  # and the probe passes


def test_probe_refuses_a_bucket_that_ignores_conditions(tmp_path: Path, s3_env) -> None:
    # A server without identities behind a proxy that drops If-None-Match / If-Match: the
    # conditions are signed headers, so an authenticating server would refuse the rewrite.
    p = make_project(tmp_path, "a", n=2)
    url = "s3://labeldesk-test/ignored"
    with SeaweedS3(tmp_path / "anon-s3", auth=False) as srv, HeaderDroppingProxy(srv.port) as proxy:
        assert Bucket(url, srv.endpoint).create("x", b"1")  # the server itself is fine
        with pytest.raises(CapabilityError, match="ignores If-None-Match"):
            probe(Bucket(url, proxy.endpoint))
        add_remote(p, "origin", url, proxy.endpoint)
        with pytest.raises(CapabilityError, match=proxy.endpoint):
            push(p)
        assert Bucket(url, srv.endpoint).get(L.MAIN_REF) is None  # nothing published
    assert list_remotes(p)[0].probed_at is None
    p.close()


# -- config -------------------------------------------------------------------------------------


def test_remote_add_list_remove_stores_no_credentials(tmp_path: Path, remote_url: str) -> None:
    p = make_project(tmp_path, "a", n=1)
    add_remote(p, "origin", remote_url, "http://127.0.0.1:9")
    assert [r.name for r in list_remotes(p)] == ["origin"]
    with pytest.raises(Exception, match="exists"):
        add_remote(p, "origin", remote_url)
    with pytest.raises(Exception, match="not an S3 URL"):
        add_remote(p, "other", "http://example/bucket")
    with pytest.raises(Exception, match="credentials"):
        add_remote(p, "other", remote_url, "http://key:secret@127.0.0.1:9")
    p.close()
    raw = (tmp_path / "a" / "labeldesk.db").read_bytes()
    assert os.environ["AWS_SECRET_ACCESS_KEY"].encode() not in raw
    assert os.environ["AWS_ACCESS_KEY_ID"].encode() not in raw
    p = Project.open(tmp_path / "a")
    remove_remote(p, "origin")
    assert list_remotes(p) == []
    p.close()


# -- push, clone, fetch -------------------------------------------------------------------------


def test_push_then_clone_is_the_same_history_and_fsck_clean(tmp_path: Path, remote_url: str):
    a = make_project(tmp_path, "a")
    imgs = images_of(a)
    review(a, imgs[:2], 1.0)
    tag(a, "v1", "main")
    decide(a, "v1", "approved", "ok")
    add_remote(a, "origin", remote_url)
    r = push(a)
    assert r.moved and r.sent["objects"] == 6 and r.tags_pushed == ["v1"]
    b, fr = clone(remote_url, str(tmp_path / "b"), user="other")
    assert fr.main == head(a.db) == head(b.db)
    assert {v.id for v in all_versions(b.db)} == {v.id for v in all_versions(a.db)}
    assert get_version(b.db, head(b.db)).status == "approved"
    assert get_version(b.db, head(b.db)).tags == ["v1"]
    report = fsck(b)
    assert report.ok, report.findings
    # the clone holds the packed copies the review queue reads, the same as the source's
    copies = "SELECT hash, packed FROM annotation_set_packed ORDER BY hash"
    assert b.db.execute(copies).fetchall() == a.db.execute(copies).fetchall() != []
    # a second push sends nothing and fetch brings nothing new
    assert push(a).sent == {}
    assert fetch(b).versions == []
    a.close()
    b.close()


def test_incremental_push_sends_only_the_changed_rows(tmp_path: Path, remote_url: str) -> None:
    a = make_project(tmp_path, "a", n=30)
    add_remote(a, "origin", remote_url)
    push(a)
    review(a, images_of(a)[:1], 2.0)
    r = push(a)
    # one image reviewed: one annotation set, one bucket, one tree, one version, in one pack;
    # no bytes
    assert r.sent == {"annotation sets": 1, "buckets": 1, "trees": 1, "versions": 1, "packs": 1}
    a.close()


def test_push_refused_when_remote_main_moved_then_pull_merges(tmp_path: Path, remote_url: str):
    a = make_project(tmp_path, "a")
    add_remote(a, "origin", remote_url)
    push(a)
    b, _ = clone(remote_url, str(tmp_path / "b"), user="bob")
    imgs = images_of(a)
    review(a, imgs[:1], 1.0, "alice")
    review(b, imgs[1:2], 2.0, "bob")
    push(a)
    with pytest.raises(RemoteMovedError, match="fetch and merge first"):
        push(b)
    r = pull(b)
    assert r.action == "merge" and r.taken == 1
    push(b)
    assert pull(a).action == "fast-forward"
    assert head(a.db) == head(b.db)
    # both reviews are in the merged main
    store = ManifestStore(a.db)
    tree = store.tree(get_version(a.db, head(a.db)).tree)
    assert store.entry(tree, imgs[0]).annset != store.entry(tree, imgs[2]).annset
    assert store.entry(tree, imgs[1]).annset != store.entry(tree, imgs[2]).annset
    a.close()
    b.close()


def test_pull_lists_conflicts_and_changes_nothing(tmp_path: Path, remote_url: str) -> None:
    a = make_project(tmp_path, "a")
    add_remote(a, "origin", remote_url)
    push(a)
    b, _ = clone(remote_url, str(tmp_path / "b"), user="bob")
    imgs = images_of(a)
    review(a, imgs[:1], 1.0)
    review(b, imgs[:1], 3.0)
    push(a)
    before = head(b.db)
    with pytest.raises(MergeConflictError) as e:
        pull(b)
    assert [c.image for c in e.value.conflicts] == [imgs[0]]
    assert head(b.db) == before
    assert pull(b, default="theirs").action == "merge"
    push(b)
    a.close()
    b.close()


def test_two_projects_racing_pushes_lose_nothing(tmp_path: Path, remote_url: str) -> None:
    a = make_project(tmp_path, "a", n=8)
    add_remote(a, "origin", remote_url)
    push(a)
    b, _ = clone(remote_url, str(tmp_path / "b"), user="bob")
    imgs = images_of(a)
    made: set[str] = set()
    for rnd in range(4):  # bounded
        made.add(review(a, [imgs[rnd]], 1.0 + rnd, f"a{rnd}"))
        made.add(review(b, [imgs[4 + rnd]], 1.0 + rnd, f"b{rnd}"))
        barrier = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def go(
            name: str, p: Project, barrier: threading.Barrier = barrier, outcome=outcome
        ) -> None:
            # each thread has its own connection: SQLite objects stay in their thread
            mine = Project.open(p.root, user=name)
            barrier.wait()
            try:
                push(mine)
                outcome[name] = "won"
            except RemoteMovedError:
                outcome[name] = "refused"
            finally:
                mine.close()

        ts = [threading.Thread(target=go, args=(n, p)) for n, p in (("a", a), ("b", b))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(outcome.values()) == ["refused", "won"], outcome
        loser = a if outcome["a"] == "refused" else b
        pull(loser)
        push(loser)
        pull(a if loser is b else b)
    fresh, _ = clone(remote_url, str(tmp_path / "fresh"))
    reachable = {v.id for v in all_versions(fresh.db)}
    assert made <= reachable
    assert fsck(fresh).ok
    for p in (a, b, fresh):
        p.close()


_PUSHER = """
import json, sys
from labeldesk.core.boxes import Box
from labeldesk.core.store.project import Project
from labeldesk.core.remote.merge import pull
from labeldesk.core.remote.packs import RecordReader
from labeldesk.core.remote.sync import RemoteMovedError
from labeldesk.core.remote.sync import push
from labeldesk.core.store.sessions import ReviewSession
root, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
images = json.loads(sys.argv[4])
made, refused = [], 0
p = Project.open(root, user=f"u{me}")
for rnd in range(rounds):
    s = ReviewSession.start(p)
    names = {v: k for k, v in s.classes().items()}
    cid = names["cat"] if "cat" in names else s.add_class("cat")
    s.set_boxes(images[me], [Box(cid, 1.0 + rnd, 1.0, 5.0, 5.0)])
    made.append(s.commit(f"u{me} round {rnd}").id)
    for attempt in range(20):  # bounded
        try:
            push(p)
            break
        except RemoteMovedError:
            refused += 1
            pull(p)
    else:
        raise SystemExit("never got a push through")
print(json.dumps({"made": made, "refused": refused}))
"""


@pytest.mark.timeout(300)
def test_four_processes_pushing_at_once_lose_no_version(tmp_path: Path, remote_url: str) -> None:
    a = make_project(tmp_path, "a", n=8)
    add_remote(a, "origin", remote_url)
    push(a)
    imgs = images_of(a)
    a.close()
    roots = []
    for i in range(4):
        c, _ = clone(remote_url, str(tmp_path / f"c{i}"), user=f"u{i}")
        roots.append(c.root)
        c.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PUSHER, str(r), str(i), "3", json.dumps(imgs)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, r in enumerate(roots)
    ]
    results = []
    for pr in procs:
        out, _ = pr.communicate(timeout=240)
        assert pr.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    print("refused pushes:", [r["refused"] for r in results])
    made = {v for r in results for v in r["made"]}
    assert len(made) == 12
    fresh, _ = clone(remote_url, str(tmp_path / "fresh"))
    assert made <= {v.id for v in all_versions(fresh.db)}
    from labeldesk.core.remote.sync import is_ancestor

    assert all(is_ancestor(fresh, v, head(fresh.db)) for v in made)  # all reachable from main
    # every process's last label is in the final main: no update lost in a merge
    store = ManifestStore(fresh.db)
    tree = store.tree(get_version(fresh.db, head(fresh.db)).tree)
    from labeldesk.core.store.annotation_sets import load_annotation_set

    for i in range(4):
        (box,) = load_annotation_set(fresh.db, store.entry(tree, imgs[i]).annset)
        assert box.x == 3.0
    report = fsck(fresh)
    assert report.ok, report.findings
    fresh.close()


# -- killed pushes, a stopped server ------------------------------------------------------------


@pytest.mark.timeout(300)
def test_push_killed_at_random_moments_never_publishes_a_missing_object(
    tmp_path: Path, remote_url: str
) -> None:
    a = make_project(tmp_path, "a", n=20)
    add_remote(a, "origin", remote_url)
    push(a)  # the probe and the first bytes, once
    bucket = Bucket(remote_url)
    imgs = images_of(a)
    rng = random.Random(15)
    server = subprocess.Popen(
        [sys.executable, "-c", PUSH_FORK_SERVER, str(a.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    kills = completed = 0
    whole: set[str] = set()
    src = tmp_path / "more"
    # The kill lands at a random moment within the time a push has been seen to take, so it
    # falls inside a push however fast or loaded the machine is (not on a fixed clock).
    window = 0.1
    try:
        for rnd in range(400):  # bounded: stops at 50 kills in the middle of a push
            if kills >= 50:
                break
            # something new to push every round: a review, now and then new image bytes
            review(a, [imgs[rnd % len(imgs)]], 1.0 + rnd)
            if rnd % 10 == 0:
                write_image(src / f"new{rnd}.png", seed=9000 + rnd)
                add_images(a, [src / f"new{rnd}.png"])
            server.stdin.write("fork\n")
            server.stdin.flush()
            word, pid = server.stdout.readline().split()
            assert word == "ready"
            started = time.monotonic()
            os.kill(int(pid), signal.SIGUSR1)
            time.sleep(rng.uniform(0.0, window))  # the random moment, not a wait for anything
            os.kill(int(pid), signal.SIGKILL)  # still ours: a child waits to be killed
            lines = []
            while not (line := server.stdout.readline()).startswith("exit"):
                lines.append(line.strip())
            if lines == ["done"]:
                completed += 1
                window = 0.8 * (time.monotonic() - started)  # a push took at most this long
            else:
                assert lines == [], lines  # killed mid-push, or a push that failed: say which
                kills += 1
            assert remote_problems(bucket, whole) == []
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        server.stdout.close()
    assert kills >= 50
    push(a)  # and the next push completes
    assert json.loads(bucket.get(L.MAIN_REF)[0])["version"] == head(a.db)
    assert remote_problems(bucket) == []
    fresh, _ = clone(remote_url, str(tmp_path / "fresh"))
    assert fsck(fresh).ok
    fresh.close()
    a.close()


def test_server_stopped_mid_push_clear_error_then_resumes(tmp_path: Path, monkeypatch) -> None:
    srv = SeaweedS3(tmp_path / "own-s3").start()
    try:
        for k, v in srv.env().items():
            monkeypatch.setenv(k, v)
        url = "s3://labeldesk-test/stopped"
        a = make_project(tmp_path, "a", n=12)
        add_remote(a, "origin", url, srv.endpoint)
        calls = {"n": 0}

        def stop_after_some(done: int, total: int, what: str) -> None:
            calls["n"] += 1
            if what == "objects":
                srv.stop()  # the server goes away once the bytes are up

        import labeldesk.core.remote.push as push_module

        monkeypatch.setattr(push_module, "CHUNK", 4)
        with pytest.raises(RemoteUnavailableError, match="cannot reach"):
            push(a, progress=stop_after_some)
        srv.restart()
        assert Bucket(url, srv.endpoint).get(L.MAIN_REF) is None  # nothing half-published
        r = push(a)
        assert r.moved
        assert "objects" not in r.sent or r.sent["objects"] < 12  # resumed, not restarted
        assert remote_problems(Bucket(url, srv.endpoint)) == []
        a.close()
    finally:
        srv.stop()


def test_lazy_clone_fetches_on_demand_then_reviews_commits_and_pushes(
    tmp_path: Path, remote_url: str
) -> None:
    a = make_project(tmp_path, "a", n=5)
    add_remote(a, "origin", remote_url)
    push(a)
    b, r = clone(remote_url, str(tmp_path / "b"), lazy=True, user="bob")
    assert r.objects == 0
    imgs = images_of(b)
    assert not any(b.objects.has_file(s) for s in imgs)
    b.close()
    b = Project.open(tmp_path / "b", user="bob")  # reopened: still lazy
    data = b.objects.path(imgs[0]).read_bytes()  # what the window and export do
    assert data == a.objects.path(imgs[0]).read_bytes()
    assert b.objects.has_file(imgs[0]) and not b.objects.has_file(imgs[1])
    # fsck of a healthy lazy clone: what is not fetched yet is a note, not missing; nothing
    # is fetched by checking
    report = fsck(b)
    assert report.errors == [], report.errors
    assert any("4 image(s) not fetched yet" in n for n in report.notes), report.notes
    assert not b.objects.has_file(imgs[1])
    with pytest.raises(Exception, match="not fetched yet"):
        remove_remote(b, "origin")  # the only source of 4 images' bytes
    review(b, [imgs[0]], 4.0, "lazy review")
    push(b)
    pull(a)
    assert head(a.db) == head(b.db)
    a.close()
    b.close()


def test_fetch_cancelled_midway_leaves_the_project_unchanged(
    tmp_path: Path, remote_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import snapshot

    import labeldesk.core.remote.fetch as fetch_module
    import labeldesk.core.remote.sync as sync
    from labeldesk.core.errors import CancelledError

    a = make_project(tmp_path, "a", n=12)
    add_remote(a, "origin", remote_url)
    push(a)
    b = Project.init(tmp_path / "b", user="bob")
    add_remote(b, "origin", remote_url)
    sync.open_remote(b, None)  # the probe, recorded once
    before = snapshot(b)
    monkeypatch.setattr(fetch_module, "CHUNK", 4)
    seen: list[int] = []

    def progress(done: int, total: int, what: str) -> None:
        if what == "objects":
            seen.append(done)

    with pytest.raises(CancelledError):
        fetch(b, progress=progress, cancel=lambda: bool(seen))
    assert seen == [4]  # one chunk of bytes had arrived
    assert snapshot(b) == before  # and was taken away again: no orphan, no row
    assert fsck(b).ok
    assert len(fetch(b).versions) == 1  # a later fetch completes
    a.close()
    b.close()


def test_push_cancelled_publishes_nothing_and_resumes(tmp_path: Path, remote_url: str) -> None:
    from labeldesk.core.errors import CancelledError

    a = make_project(tmp_path, "a", n=6)
    add_remote(a, "origin", remote_url)
    calls: list[str] = []
    with pytest.raises(CancelledError, match="nothing was published"):
        push(a, progress=lambda d, t, what: calls.append(what), cancel=lambda: bool(calls))
    assert Bucket(remote_url).get(L.MAIN_REF) is None
    r = push(a)
    assert r.moved and "objects" not in r.sent  # the bytes went up the first time
    a.close()
