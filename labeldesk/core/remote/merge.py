"""``pull``: fetch, then merge the remote's ``main`` into the local one, image by image.

The rules are the review sessions' (core/sessions.py): an image changed on one side only is
taken from that side; changed identically on both is fine; changed differently on both is a
:class:`~labeldesk.core.errors.Conflict`, and the merge is refused (nothing written) unless a
resolution says which side wins for it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Conflict, LabelDeskError, MergeConflictError
from ..progress import CancelFn
from ..store.annotation_sets import load_annotation_set, put_annotation_set
from ..store.manifest import Entry, ManifestStore
from ..store.project import Project
from ..store.sessions import Resolution
from ..store.versions import MAIN, get_version, head, set_ref, write_version
from .sync import FetchResult, Progress, fetch


@dataclass
class PullResult:
    fetched: FetchResult
    action: str  # up-to-date, fast-forward, merge, ahead
    main: str | None
    taken: int = 0
    conflicts: list[Conflict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched.to_json(),
            "action": self.action,
            "main": self.main,
            "taken": self.taken,
        }


def _depths(project: Project, start: str) -> dict[str, int]:
    out: dict[str, int] = {}
    todo = deque([(start, 0)])
    while todo:
        vid, d = todo.popleft()
        if vid in out:
            continue
        out[vid] = d
        row = project.db.execute("SELECT parents FROM version WHERE id = ?", [vid]).fetchone()
        for p in json.loads(row[0]) if row else []:
            todo.append((p, d + 1))
    return out


def merge_base(project: Project, a: str, b: str) -> str | None:
    """The common ancestor of ``a`` and ``b`` nearest to both."""
    da, db_ = _depths(project, a), _depths(project, b)
    common = set(da) & set(db_)
    if not common:
        return None
    return min(common, key=lambda v: (max(da[v], db_[v]), da[v] + db_[v], v))


def _merge_classes(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Our classes plus theirs by name; maps their ids to the merged ones."""
    classes = [dict(c) for c in ours]
    by_name = {c["name"]: c["id"] for c in classes}
    used = set(by_name.values())
    mapping: dict[int, int] = {}
    for c in sorted(theirs, key=lambda c: c["id"]):
        if c["name"] in by_name:
            mapping[c["id"]] = by_name[c["name"]]
            continue
        new_id = c["id"] if c["id"] not in used else max(used, default=0) + 1
        classes.append({"id": new_id, "name": c["name"]})
        by_name[c["name"]] = new_id
        used.add(new_id)
        mapping[c["id"]] = new_id
    return classes, mapping


def pull(
    project: Project,
    name: str | None = None,
    *,
    resolutions: Mapping[str, Resolution] | None = None,
    default: Resolution | None = None,
    progress: Progress | None = None,
    cancel: CancelFn | None = None,
) -> PullResult:
    """Fetch, then bring the remote's ``main`` into the local one (fast-forward or merge).

    Raises :class:`MergeConflictError` listing the images changed differently on both sides
    (after the fetch, which is kept; ``main`` is unchanged). ``resolutions`` chooses a side
    per image, ``default`` for every conflict not named there.
    """
    fetched = fetch(project, name, progress, cancel)
    db = project.db
    theirs_id = fetched.main
    resolutions = dict(resolutions or {})
    with project.transaction():
        ours_id = head(db)
        if theirs_id is None or ours_id == theirs_id:
            return PullResult(fetched, "up-to-date", ours_id)
        if ours_id is None:
            set_ref(db, MAIN, theirs_id, None, kind="branch", user=project.user)
            return PullResult(fetched, "fast-forward", theirs_id)
        ours_anc = _depths(project, ours_id)
        if theirs_id in ours_anc:
            return PullResult(fetched, "ahead", ours_id)
        if ours_id in _depths(project, theirs_id):
            set_ref(db, MAIN, theirs_id, ours_id, kind="branch", user=project.user)
            return PullResult(fetched, "fast-forward", theirs_id)

        base_id = merge_base(project, ours_id, theirs_id)
        store = ManifestStore(db)
        ours_v, theirs_v = get_version(db, ours_id), get_version(db, theirs_id)
        ours_t, theirs_t = store.tree(ours_v.tree), store.tree(theirs_v.tree)
        base_t = store.tree(get_version(db, base_id).tree) if base_id else None
        classes, cls_map = _merge_classes(ours_v.classes, theirs_v.classes)

        def entry(tree: Any, image: str) -> Entry | None:
            return store.entry(tree, image) if tree is not None else None

        # Only buckets that differ between the sides can hold a changed image.
        prefixes = set(ours_t.buckets) | set(theirs_t.buckets)
        changes: dict[str, Entry | None] = {}
        conflicts: list[Conflict] = []
        for prefix in sorted(prefixes):
            if ours_t.buckets.get(prefix) == theirs_t.buckets.get(prefix):
                continue
            images: set[str] = set()
            for tree in (ours_t, theirs_t):
                h = tree.buckets.get(prefix)
                if h:
                    images.update(store.bucket(h))
            for image in sorted(images):
                o, t = entry(ours_t, image), entry(theirs_t, image)
                if o == t:
                    continue
                b = entry(base_t, image)
                if t == b:
                    continue  # only we changed it: ours stays
                if o == b:
                    changes[image] = _remapped(project, t, cls_map)  # only they changed it
                    continue
                choice = resolutions.get(image, default)
                if choice == "ours":
                    continue
                if choice == "theirs":
                    changes[image] = _remapped(project, t, cls_map)
                    continue
                conflicts.append(
                    Conflict(
                        image,
                        b.annset if b else None,
                        t.annset if t else None,
                        o.annset if o else None,
                    )
                )
        if conflicts:
            raise PullConflictError(conflicts, fetched)
        tree = store.apply(ours_t, changes)
        version = write_version(
            project,
            tree=tree,
            classes=classes,
            parents=[ours_id, theirs_id],
            kind="merge",
            message=f"Merge {fetched.remote}/main {theirs_id[:12]}",
            provenance={"method": "manual", "merged": theirs_id, "base": base_id},
            move_main_from=ours_id,
        )
    return PullResult(fetched, "merge", version.id, taken=len(changes))


def _remapped(project: Project, entry: Entry | None, cls_map: dict[int, int]) -> Entry | None:
    """Their entry with class ids renumbered into the merged class list (if needed)."""
    if entry is None or all(k == v for k, v in cls_map.items()):
        return entry
    boxes = load_annotation_set(project.db, entry.annset)
    moved = [b.with_(cls=cls_map.get(b.cls, b.cls)) for b in boxes]
    return entry.with_annset(put_annotation_set(project.db, moved))


class PullConflictError(MergeConflictError):
    """Images changed differently here and on the remote; the fetch is kept, main unchanged."""

    def __init__(self, conflicts: list[Conflict], fetched: FetchResult) -> None:
        self.fetched = fetched
        LabelDeskError.__init__(
            self,
            f"{len(conflicts)} image(s) were changed differently here and on "
            f"{fetched.remote}/main; main is unchanged. Choose a side for each "
            "(`labeldesk pull --ours` / `--theirs`, or `--resolve IMAGE=ours|theirs`): "
            + ", ".join(c.image[:12] for c in conflicts[:10])
            + (f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""),
        )
        self.conflicts = conflicts
