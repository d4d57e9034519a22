"""The Merkle manifest: commits and diffs cost in proportion to what changed."""

from __future__ import annotations

import hashlib

from labeldesk.core.boxes import EMPTY_SET_HASH, EMPTY_SET_JSON, Box
from labeldesk.core.store.annotation_sets import put_annotation_set
from labeldesk.core.store.manifest import Entry, ManifestStore, diff_trees


def _fake_images(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


def _count(db, table: str) -> int:
    return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_changing_one_image_writes_one_bucket_and_one_tree(project) -> None:
    db = project.db
    store = ManifestStore(db)
    images = _fake_images(3000)
    with project.transaction():
        db.execute("INSERT INTO annotation_set VALUES (?, ?, 0)", [EMPTY_SET_HASH, EMPTY_SET_JSON])
        base = store.apply(None, {i: Entry(EMPTY_SET_HASH) for i in images})
    assert base.n_images == 3000 and base.n_boxes == 0
    buckets_before, trees_before = _count(db, "manifest_bucket"), _count(db, "manifest_tree")
    assert buckets_before == len(base.buckets) > 1000

    with project.transaction():
        two = put_annotation_set(db, [Box(1, 0, 0, 5, 5), Box(2, 1, 1, 3, 3)])
        new = store.apply(base, {images[42]: Entry(two, "train", ("night",))})
    assert _count(db, "manifest_bucket") == buckets_before + 1
    assert _count(db, "manifest_tree") == trees_before + 1
    assert (new.n_images, new.n_boxes) == (3000, 2)
    changed = [p for p in base.buckets if base.buckets[p] != new.buckets[p]]
    assert changed == [images[42][:3]]

    (change,) = diff_trees(store, base, new)
    assert change.image == images[42] and change.kind == "changed"
    assert change.new == Entry(two, "train", ("night",))
    assert diff_trees(store, base, base) == []

    with project.transaction():
        removed = store.apply(new, {images[42]: None, images[7]: None})
    assert (removed.n_images, removed.n_boxes) == (2998, 0)
    kinds = sorted(c.kind for c in diff_trees(store, new, removed))
    assert kinds == ["removed", "removed"]


def test_equal_content_gives_equal_tree_hash(project) -> None:
    db = project.db
    store = ManifestStore(db)
    images = _fake_images(50)
    with project.transaction():
        db.execute("INSERT INTO annotation_set VALUES (?, ?, 0)", [EMPTY_SET_HASH, EMPTY_SET_JSON])
        a = store.apply(None, {i: Entry(EMPTY_SET_HASH, tags=("b", "a")) for i in images})
        b = store.apply(
            None, {i: Entry(EMPTY_SET_HASH, tags=("a", "b", "a")) for i in reversed(images)}
        )
    assert a.hash == b.hash
