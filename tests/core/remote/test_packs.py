"""Packs of records on a real S3 server: tamper evidence, several packs, remotes without packs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import snapshot
from remote_helpers import images_of, make_project, remote_problems, review

from labeldesk.core.remote import layout as L
from labeldesk.core.remote.client import Bucket, RemoteError
from labeldesk.core.remote.config import add_remote
from labeldesk.core.remote.merge import pull
from labeldesk.core.remote.sync import clone, fetch, open_remote, push
from labeldesk.core.store.fsck import fsck
from labeldesk.core.store.project import Project
from labeldesk.core.store.versions import all_versions, head


def packs_of(bucket: Bucket) -> list[tuple[str, dict]]:
    """(pack key, its index) for every indexed pack on the remote."""
    out = []
    for key in sorted(k for k in bucket.list(L.PACKS) if k.endswith(".idx")):
        index = json.loads(bucket.get(key)[0])
        out.append((L.pack_key(index["pack"]), index))
    return out


def unpack_to_loose(bucket: Bucket) -> int:
    """Rewrite the remote as a client from before packs wrote it: every record loose under its
    key (the same bytes), no pack, no index. How many records."""
    n = 0
    for pack, index in packs_of(bucket):
        data = bucket.get(pack)[0]
        for key, offset, length in index["entries"]:
            bucket.create(key, data[offset : offset + length])
            n += 1
        bucket.delete(pack)
        bucket.delete(L.index_key(index["pack"]))
    return n


def test_a_push_packs_its_records_and_a_clone_reads_them(tmp_path: Path, remote_url: str):
    a = make_project(tmp_path, "a", n=6)
    review(a, images_of(a)[:2], 1.0)
    add_remote(a, "origin", remote_url)
    r = push(a)
    assert r.sent["packs"] == 1 and r.sent["versions"] == 2
    bucket = Bucket(remote_url)
    assert not [k for k in bucket.list("records/") if not k.startswith(L.DECISIONS)]
    ((pack, index),) = packs_of(bucket)
    assert len(index["entries"]) == sum(r.sent[k] for k in r.sent if k not in ("objects", "packs"))
    b, fr = clone(remote_url, str(tmp_path / "b"))
    assert head(b.db) == head(a.db) and len(fr.versions) == 2
    assert fsck(b).ok
    a.close()
    b.close()


def test_a_large_push_writes_several_packs_in_order(
    tmp_path: Path, remote_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labeldesk.core.remote.packs as packs

    monkeypatch.setattr(packs, "PACK_BYTES", 1500)  # a few records a pack
    a = make_project(tmp_path, "a", n=12)
    review(a, images_of(a)[:5], 1.0)
    add_remote(a, "origin", remote_url)
    r = push(a)
    bucket = Bucket(remote_url)
    assert r.sent["packs"] == len(packs_of(bucket)) > 2
    assert remote_problems(bucket) == []
    b, _ = clone(remote_url, str(tmp_path / "b"))
    assert {v.id for v in all_versions(b.db)} == {v.id for v in all_versions(a.db)}
    assert fsck(b).ok
    a.close()
    b.close()


def _tamper(data: bytes, offset: int, length: int) -> bytes:
    """The pack with one hex digit changed inside the record's text (same length)."""
    entry = data[offset : offset + length]
    at = entry.index(b'"text":"') + len(b'"text":"')
    while entry[at : at + 1] not in b"0123456789abcdef":
        at += 1
    swapped = b"1" if entry[at : at + 1] != b"1" else b"2"
    return data[: offset + at] + swapped + data[offset + at + 1 :]


def test_a_tampered_pack_is_refused_itemised_and_nothing_is_written(
    tmp_path: Path, remote_url: str
) -> None:
    a = make_project(tmp_path, "a", n=6)
    review(a, images_of(a)[:2], 1.0)
    add_remote(a, "origin", remote_url)
    push(a)
    bucket = Bucket(remote_url)
    ((pack, index),) = packs_of(bucket)
    data = bucket.get(pack)[0]
    tampered = [e for e in index["entries"] if e[0].startswith("records/bucket/")][:2]
    for _, offset, length in tampered:
        data = _tamper(data, offset, length)
    bucket.delete(pack)  # as someone with write access to the bucket could
    assert bucket.create(pack, data)

    with pytest.raises(RemoteError) as e:
        clone(remote_url, str(tmp_path / "b"))
    message = str(e.value)
    assert "2 record(s) on the remote do not match their names" in message
    for key, _, _ in tampered:
        assert f"{pack}: {key} on the remote does not hash to its name" in message
    assert not (tmp_path / "b").exists()  # a failed clone leaves no project

    c = Project.init(tmp_path / "c", user="carol")
    add_remote(c, "origin", remote_url)
    open_remote(c, None)  # the probe, recorded once
    before = snapshot(c)
    with pytest.raises(RemoteError, match="do not match their names"):
        fetch(c)
    assert snapshot(c) == before  # not one row, not one object
    a.close()
    c.close()


def test_a_remote_written_before_packs_still_clones_and_pulls(
    tmp_path: Path, remote_url: str
) -> None:
    a = make_project(tmp_path, "a", n=8)
    review(a, images_of(a)[:2], 1.0)
    add_remote(a, "origin", remote_url)
    push(a)
    bucket = Bucket(remote_url)
    assert unpack_to_loose(bucket) > 0 and packs_of(bucket) == []
    b, fr = clone(remote_url, str(tmp_path / "b"), user="bob")
    assert head(b.db) == head(a.db) and len(fr.versions) == 2
    assert fsck(b).ok
    # a new push packs its records next to the loose ones; both are read
    review(a, images_of(a)[2:4], 2.0, "after")
    assert push(a).sent["packs"] == 1
    assert pull(b).action == "fast-forward"
    assert head(b.db) == head(a.db)
    fresh, _ = clone(remote_url, str(tmp_path / "fresh"))
    assert {v.id for v in all_versions(fresh.db)} == {v.id for v in all_versions(a.db)}
    assert fsck(fresh).ok
    assert remote_problems(bucket) == []
    for p in (a, b, fresh):
        p.close()
