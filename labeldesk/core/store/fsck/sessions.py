"""Checks of review sessions: the edits a reviewer saved, before and after they were committed."""

from __future__ import annotations

from ..integrity import box_problems
from ..manifest import ManifestStore
from .base import Context, loads

SHORT = 12


def check_session_edits(ctx: Context) -> None:
    """Every saved review edit holds valid boxes of classes its session knows.

    The session knows its base version's classes and the ones it added (provisional negative
    ids); boxes need finite coordinates and a positive size, and the image must be in the base
    version. Committing such an edit would fail or write labels nobody can export.
    """
    classes_of: dict[str, set[object]] = {}
    for v in ctx.versions:
        value, _bad = loads(v["classes"])
        if isinstance(value, list):
            classes_of[v["id"]] = {c.get("id") for c in value if isinstance(c, dict)}
    trees = {v["id"]: v["tree"] for v in ctx.versions}
    store = ManifestStore(ctx.db)
    sessions = ctx.db.execute("SELECT id, base, new_classes FROM review_session").fetchall()
    for sid, base, new_classes in sessions:
        new, bad = loads(new_classes)
        if bad or not isinstance(new, list):
            ctx.error(f"review session {sid}: new_classes is malformed ({bad or new_classes})")
            new = []
        known: set[object] = classes_of.get(base, set()) | {-i for i in range(1, len(new) + 1)}
        tree = None
        if base in trees:
            try:
                tree = store.tree(trees[base])
            except (KeyError, ValueError):
                tree = None  # a missing or broken base tree is the version checks' finding
        for image, text in ctx.db.execute(
            "SELECT image, boxes FROM session_edit WHERE session = ? ORDER BY seq", [sid]
        ):
            ctx.check_cancel()
            where = f"review session {sid}, image {image[:SHORT]}"
            value, bad = loads(text)
            if bad:
                ctx.error(f"{where}: boxes are {bad}")
                continue
            for p in box_problems(value):
                ctx.error(f"{where}: {p}")
            if isinstance(value, list):
                used = {d.get("class") for d in value if isinstance(d, dict)}
                unknown = used - known
                if unknown:
                    ctx.error(
                        f"{where}: boxes use class id(s) {sorted(unknown, key=repr)} the "
                        f"session does not know (known: {sorted(known, key=repr)})"
                    )
            if tree is not None:
                try:
                    present = store.entry(tree, image) is not None
                except (KeyError, ValueError):
                    continue
                if not present:
                    ctx.error(f"{where}: the image is not in the session's base version")
