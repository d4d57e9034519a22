"""Assign train/val/test splits to a version's images, as a new version.

Splits are part of a version (each manifest entry carries one), so assigning them is a change
like any other: a new version on ``main`` that can be diffed, reverted and approved. Images that
already have a split keep it unless ``reassign`` is given, so adding a batch and splitting again
never moves an image out of the val set a model was judged on.

The assignment is deterministic: an image goes to val when sha256(seed:image) falls in the
first ``val`` fraction of the hash space, to test in the next ``test`` fraction, else to train.
The same images, fractions and seed always give the same split on any machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import InputError, NothingToCommitError, Problem
from .manifest import Entry, ManifestStore
from .project import Project
from .versions import Version, get_version, head, write_version


@dataclass
class SplitReport:
    version: Version
    assigned: dict[str, int]  # split -> images newly assigned to it
    kept: int  # images that kept the split they had


def _u(seed: int, image: str) -> float:
    digest = hashlib.sha256(f"{seed}:{image}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    project: Project,
    *,
    val: float,
    test: float = 0.0,
    seed: int = 0,
    reassign: bool = False,
    message: str | None = None,
) -> SplitReport:
    """Commit a version on ``main`` in which every image (without a split) has one."""
    problems = []
    for name, v in (("--val", val), ("--test", test)):
        if not 0 <= v < 1:
            problems.append(Problem(name, f"must be a fraction in [0, 1), got {v}"))
    if val + test >= 1:
        problems.append(Problem("--val/--test", "leave some images for training"))
    if problems:
        raise InputError("invalid split", problems)
    db = project.db
    with project.transaction():
        current = head(db)
        if current is None:
            raise NothingToCommitError("this project has no versions yet")
        base = get_version(db, current)
        store = ManifestStore(db)
        tree = store.tree(base.tree)
        todo: list[tuple[float, str, Entry]] = []
        kept = 0
        for image, entry in store.entries(tree):
            if entry.split is not None and not reassign:
                kept += 1
            else:
                todo.append((_u(seed, image), image, entry))
        if not todo:
            raise NothingToCommitError("every image already has a split")
        wanted = {}
        for u, image, _ in todo:
            wanted[image] = "val" if u < val else "test" if u < val + test else "train"
        # A tiny dataset can draw no val image at all: the lowest draw goes to val then.
        if val > 0 and "val" not in wanted.values() and len(todo) > 1:
            wanted[min(todo)[1]] = "val"
        changes = {
            image: Entry(entry.annset, wanted[image], entry.tags, entry.meta)
            for _, image, entry in todo
            if entry.split != wanted[image]
        }
        if not changes:
            raise NothingToCommitError("the splits are already as asked")
        counts: dict[str, int] = {}
        for e in changes.values():
            counts[e.split or ""] = counts.get(e.split or "", 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        version = write_version(
            project,
            tree=store.apply(tree, changes),
            classes=base.classes,
            parents=[current],
            kind="review",
            message=message or f"Assign splits: {parts}",
            provenance={
                "method": "manual",
                "splits": {"val": val, "test": test, "seed": seed, "rule": "sha256(seed:image)"},
            },
            move_main_from=current,
        )
    return SplitReport(version, counts, kept)
