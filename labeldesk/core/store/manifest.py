"""Version manifests as a two-level Merkle tree.

A manifest maps image hash -> (annotation-set hash, split, tags). Entries are grouped into
buckets by the first ``PREFIX_LEN`` hex digits of the image hash; each bucket is stored once by
the hash of its canonical JSON, and a version's tree is the map prefix -> bucket hash. Changing
k images rewrites at most k buckets plus the tree, and two trees are diffed by comparing bucket
hashes first, so commit and diff cost grows with what changed, not with the dataset (the idea of
git trees and DVC ``.dir`` objects).

With 3 hex digits there are 4096 buckets: a 100,000-image dataset has ~24 entries a bucket, so a
1% change touches ~20% of the buckets (~2% of the manifest bytes), and the tree itself is a
few hundred kB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..canonical import hash_json
from .db import ProjectDatabase as Database

PREFIX_LEN = 3
SPLITS = ("train", "val", "test")


class _EntryFields(NamedTuple):
    annset: str
    split: str | None = None
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, Any], ...] = ()


class Entry(_EntryFields):
    """One image in a version.

    ``meta`` holds per-version facts about the image that formats need to round-trip, such as
    the file name and image id it had in an imported COCO dataset (``file_name``, ``coco_id``).

    A NamedTuple (immutable, compared and hashed by its fields) rather than a frozen
    dataclass: every export, evaluation and diff reads all of a version's entries, and a
    tuple is built in a third of the time. Build one with ``Entry(...)``, which normalises
    and checks; ``_replace`` would skip that, so use :meth:`with_annset` or ``Entry(...)``.
    """

    __slots__ = ()

    def __new__(
        cls,
        annset: str,
        split: str | None = None,
        tags: Iterable[str] = (),
        meta: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    ) -> Entry:
        # Tags are a set and meta a mapping; keep both sorted so equal entries compare equal.
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        items = meta.items() if isinstance(meta, Mapping) else meta
        return _new_entry(cls, (annset, split, tuple(sorted(set(tags))), tuple(sorted(items))))

    @property
    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)

    def with_annset(self, annset: str) -> Entry:
        # Not Entry(...): that sorts tags and meta that are sorted already, and an import calls
        # this once per image.
        return _new_entry(Entry, (annset, self.split, self.tags, self.meta))

    def to_json(self) -> list:
        out: list = [self.annset, self.split, list(self.tags)]
        if self.meta:
            out.append(dict(self.meta))
        return out

    @classmethod
    def from_json(cls, value: list) -> Entry:
        if len(value) == 3 and value[2] == [] and (value[1] is None or value[1] in SPLITS):
            # Most entries (no tags, no meta): nothing to sort or check beyond the split, and
            # every evaluation and export reads all of a version's entries.
            return _new_entry(Entry, (value[0], value[1], (), ()))
        meta = tuple(value[3].items()) if len(value) > 3 else ()
        return cls(value[0], value[1], tuple(value[2]), meta)


#: the tuple constructor itself, for entries whose fields are known to be normalised already
_new_entry = tuple.__new__


def prefix_of(image: str) -> str:
    return image[:PREFIX_LEN]


@dataclass(frozen=True)
class Tree:
    hash: str
    buckets: dict[str, str]  # prefix -> bucket hash
    n_images: int
    n_boxes: int


class ManifestStore:
    """Reads and writes buckets and trees; callers own the transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._bucket_cache: dict[str, dict[str, Entry]] = {}

    # -- reading -----------------------------------------------------------------------------
    def tree(self, tree_hash: str) -> Tree:
        row = self.db.execute(
            "SELECT buckets, n_images, n_boxes FROM manifest_tree WHERE hash = ?", [tree_hash]
        ).fetchone()
        if row is None:
            raise KeyError(f"manifest tree {tree_hash} is missing")
        return Tree(tree_hash, json.loads(row[0]), row[1], row[2])

    def raw_bucket(self, bucket_hash: str) -> dict[str, list]:
        """A bucket as stored: image -> entry JSON (cheap to compare, nothing constructed)."""
        row = self.db.execute(
            "SELECT entries FROM manifest_bucket WHERE hash = ?", [bucket_hash]
        ).fetchone()
        if row is None:
            raise KeyError(f"manifest bucket {bucket_hash} is missing")
        return json.loads(row[0])

    def bucket(self, bucket_hash: str) -> dict[str, Entry]:
        cached = self._bucket_cache.get(bucket_hash)
        if cached is not None:
            return cached
        entries = {k: Entry.from_json(v) for k, v in self.raw_bucket(bucket_hash).items()}
        if len(self._bucket_cache) > 8192:
            self._bucket_cache.clear()
        self._bucket_cache[bucket_hash] = entries
        return entries

    def entry(self, tree: Tree, image: str) -> Entry | None:
        bh = tree.buckets.get(prefix_of(image))
        if bh is None:
            return None
        return self.bucket(bh).get(image)

    def entries(self, tree: Tree) -> Iterator[tuple[str, Entry]]:
        """All entries in image-hash order."""
        for prefix in sorted(tree.buckets):
            bucket = self.bucket(tree.buckets[prefix])
            for image in sorted(bucket):
                yield image, bucket[image]

    def n_boxes_of(self, annsets: Iterable[str]) -> dict[str, int]:
        wanted = list(set(annsets))
        out: dict[str, int] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for h, n in self.db.execute(
                f"SELECT hash, n_boxes FROM annotation_set WHERE hash IN ({marks})", chunk
            ):
                out[h] = n
        missing = set(wanted) - out.keys()
        if missing:
            raise KeyError(f"annotation sets missing: {sorted(missing)[:3]}")
        return out

    # -- writing -----------------------------------------------------------------------------
    _PUT_BUCKET = (
        "INSERT OR IGNORE INTO manifest_bucket (hash, entries, n_images, n_boxes) "
        "VALUES (?, ?, ?, ?)"
    )

    @staticmethod
    def _bucket_row(entries: Mapping[str, Entry], n_boxes: int) -> tuple[str, str, int, int]:
        h, text = hash_json({k: e.to_json() for k, e in entries.items()})
        return h, text, len(entries), n_boxes

    def put_bucket(self, entries: Mapping[str, Entry], n_boxes: int) -> str:
        row = self._bucket_row(entries, n_boxes)
        self.db.execute(self._PUT_BUCKET, list(row))
        return row[0]

    def put_tree(self, buckets: Mapping[str, str], n_images: int, n_boxes: int) -> Tree:
        h, text = hash_json(dict(buckets))
        self.db.execute(
            "INSERT OR IGNORE INTO manifest_tree (hash, buckets, n_images, n_boxes) "
            "VALUES (?, ?, ?, ?)",
            [h, text, n_images, n_boxes],
        )
        return Tree(h, dict(buckets), n_images, n_boxes)

    def bucket_counts(self, bucket_hash: str) -> tuple[int, int]:
        row = self.db.execute(
            "SELECT n_images, n_boxes FROM manifest_bucket WHERE hash = ?", [bucket_hash]
        ).fetchone()
        return int(row[0]), int(row[1])

    def apply(
        self,
        base: Tree | None,
        changes: Mapping[str, Entry | None],
        known_counts: Mapping[str, int] | None = None,
    ) -> Tree:
        """A new tree: ``base`` with ``changes`` applied (``None`` removes an image).

        Only the buckets that hold a changed image are read and rewritten, all with one
        statement. ``known_counts`` (annotation-set hash -> n_boxes), when the caller has just
        made those sets, saves looking their counts up again.
        """
        buckets = dict(base.buckets) if base else {}
        n_images = base.n_images if base else 0
        n_boxes = base.n_boxes if base else 0
        by_prefix: dict[str, dict[str, Entry | None]] = {}
        for image, entry in changes.items():
            by_prefix.setdefault(prefix_of(image), {})[image] = entry
        touched_annsets: set[str] = set()
        old_buckets: dict[str, dict[str, Entry]] = {}
        for prefix, group in by_prefix.items():
            old = dict(self.bucket(buckets[prefix])) if prefix in buckets else {}
            old_buckets[prefix] = old
            touched_annsets.update(e.annset for e in old.values())
            touched_annsets.update(e.annset for e in group.values() if e is not None)
        counts = dict(known_counts or {})
        counts.update(self.n_boxes_of(touched_annsets - counts.keys()))
        rows: list[tuple[str, str, int, int]] = []
        for prefix, group in by_prefix.items():
            old = old_buckets[prefix]
            new = dict(old)
            for image, entry in group.items():
                if entry is None:
                    new.pop(image, None)
                else:
                    new[image] = entry
            old_boxes = sum(counts[e.annset] for e in old.values())
            new_boxes = sum(counts[e.annset] for e in new.values())
            n_images += len(new) - len(old)
            n_boxes += new_boxes - old_boxes
            if new:
                row = self._bucket_row(new, new_boxes)
                rows.append(row)
                buckets[prefix] = row[0]
            else:
                buckets.pop(prefix, None)
        # One executemany for every bucket: an import touches thousands of them, and a
        # statement each was a good part of its commit.
        self.db.conn.executemany(self._PUT_BUCKET, rows)
        return self.put_tree(buckets, n_images, n_boxes)


@dataclass(frozen=True)
class EntryChange:
    image: str
    old: Entry | None
    new: Entry | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"


def diff_trees(store: ManifestStore, a: Tree, b: Tree) -> list[EntryChange]:
    """Entries that differ between two trees, in image-hash order; equal buckets are skipped."""
    if a.hash == b.hash:
        return []
    out: list[EntryChange] = []
    for prefix in sorted(a.buckets.keys() | b.buckets.keys()):
        ha, hb = a.buckets.get(prefix), b.buckets.get(prefix)
        if ha == hb:
            continue
        # Compare the stored JSON; build entries only for the images that differ.
        ea = store.raw_bucket(ha) if ha else {}
        eb = store.raw_bucket(hb) if hb else {}
        for image in sorted(ea.keys() | eb.keys()):
            old, new = ea.get(image), eb.get(image)
            if old != new:
                out.append(
                    EntryChange(
                        image,
                        Entry.from_json(old) if old is not None else None,
                        Entry.from_json(new) if new is not None else None,
                    )
                )
    return out
