"""What changed between two versions: images added, removed and changed, boxes and classes.

Built from the manifest diff (only the buckets that differ are read) and the boxes of the sets
that changed, read in batches.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from .annotation_sets import annotation_set_texts
from .db import ProjectDatabase as Database
from .manifest import Entry, EntryChange, ManifestStore, diff_trees
from .project import Project
from .versions import Version, resolve


@dataclass(frozen=True)
class ImageDiff:
    image: str
    kind: str  # added / removed / changed
    boxes_added: int
    boxes_removed: int
    split_changed: bool
    tags_changed: bool
    old_annset: str | None
    new_annset: str | None
    meta_changed: tuple[str, ...] = ()  # the image-metadata fields that changed (file_name, …)

    def what_changed(self) -> list[str]:
        """The changes in words: ``boxes +1 -0``, ``split``, ``tags``, ``file_name``."""
        out = []
        if self.boxes_added or self.boxes_removed:
            out.append(f"boxes +{self.boxes_added} -{self.boxes_removed}")
        elif self.kind == "changed" and self.old_annset != self.new_annset:
            out.append("box attributes")  # same geometry and classes, other states/authors
        if self.split_changed:
            out.append("split")
        if self.tags_changed:
            out.append("tags")
        out.extend(self.meta_changed)
        return out


def _meta_changed(old: Entry | None, new: Entry | None) -> tuple[str, ...]:
    if old is None or new is None or old.meta == new.meta:
        return ()
    a, b = dict(old.meta), dict(new.meta)
    return tuple(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))


@dataclass(frozen=True)
class VersionDiff:
    a: Version
    b: Version
    images: list[ImageDiff]
    classes_added: list[str]
    classes_removed: list[str]

    def classes_text(self) -> str:
        """``added truck, van; removed cat`` (empty when the class lists are the same)."""
        parts = []
        if self.classes_added:
            parts.append("added " + ", ".join(self.classes_added))
        if self.classes_removed:
            parts.append("removed " + ", ".join(self.classes_removed))
        return "; ".join(parts)

    def counts(self) -> dict[str, int]:
        c = {
            "images_added": 0,
            "images_removed": 0,
            "images_changed": 0,
            "boxes_added": 0,
            "boxes_removed": 0,
        }
        for d in self.images:
            c[f"images_{d.kind}"] += 1
            c["boxes_added"] += d.boxes_added
            c["boxes_removed"] += d.boxes_removed
        return c


def _annotation_sets(db: Database, hashes: set[str]) -> dict[str, list[tuple]]:
    """Box keys (class, geometry, crowd flag, given area) of many annotation sets, read in a
    few batched queries: a box that became a crowd region, or whose area changed, is a change."""
    return {
        h: [
            (d["class"], d["x"], d["y"], d["w"], d["h"], d.get("iscrowd", 0), d.get("area"))
            for d in json.loads(text)
        ]
        for h, text in annotation_set_texts(db, hashes)
    }


def _box_changes(sets: dict[str, list[tuple]], change: EntryChange) -> tuple[int, int]:
    """Boxes added and removed by one entry change; a moved box counts as one of each."""
    if change.old and change.new and change.old.annset == change.new.annset:
        return 0, 0
    old = sets[change.old.annset] if change.old else []
    new = sets[change.new.annset] if change.new else []
    co, cn = Counter(old), Counter(new)
    return sum((cn - co).values()), sum((co - cn).values())


def diff(project: Project, ref_a: str, ref_b: str) -> VersionDiff:
    db = project.db
    a, b = resolve(db, ref_a), resolve(db, ref_b)
    store = ManifestStore(db)
    changes = diff_trees(store, store.tree(a.tree), store.tree(b.tree))
    sets = _annotation_sets(
        db, {e.annset for ch in changes for e in (ch.old, ch.new) if e is not None}
    )
    images = []
    for ch in changes:
        added, removed = _box_changes(sets, ch)
        images.append(
            ImageDiff(
                image=ch.image,
                kind=ch.kind,
                boxes_added=added,
                boxes_removed=removed,
                split_changed=bool(ch.old and ch.new and ch.old.split != ch.new.split),
                tags_changed=bool(ch.old and ch.new and ch.old.tags != ch.new.tags),
                old_annset=ch.old.annset if ch.old else None,
                new_annset=ch.new.annset if ch.new else None,
                meta_changed=_meta_changed(ch.old, ch.new),
            )
        )
    names_a = {c["name"] for c in a.classes}
    names_b = {c["name"] for c in b.classes}
    return VersionDiff(a, b, images, sorted(names_b - names_a), sorted(names_a - names_b))
