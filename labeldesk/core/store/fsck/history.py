"""Checks of the history: version ids, their trees, classes and parents, decisions and refs.

A version *verifies* when its id recomputes from its content, its tree (and every bucket and
annotation set under it) verifies, its classes cover its boxes, and every parent verifies. The
id covers the parents' ids, so the history is a Merkle chain: an approved version that verifies
is exactly what was approved, all the way back.
"""

from __future__ import annotations

from ..integrity import version_id_of_row
from .base import Context, loads

SHORT = 12


def _mark(ctx: Context, vid: str, why: str) -> None:
    ctx.bad_versions.setdefault(vid, why)


def check_version_ids(ctx: Context) -> None:
    """Every version id is the hash of its content: tree, classes, parents and metadata.

    Computed with :func:`labeldesk.core.store.integrity.version_id`, the function that made the id,
    so a version whose tree, classes, parents, message or provenance were rewritten (by an
    UPDATE with triggers dropped, or an ``INSERT OR REPLACE`` keeping the id) is found.
    """
    ctx.report.versions_checked = len(ctx.versions)
    for v in ctx.versions:
        vid = v["id"]
        try:
            actual = version_id_of_row(
                v["tree"],
                v["classes"],
                v["parents"],
                v["kind"],
                v["author"],
                v["message"],
                v["created"],
                v["provenance"],
            )
        except (TypeError, ValueError) as e:
            ctx.error(f"version {vid}: its content is not readable ({e})")
            _mark(ctx, vid, "its content is not readable")
            continue
        if actual != vid:
            ctx.error(
                f"version {vid}: id does not match its content (tree, classes, parents, "
                f"metadata recompute to {actual[:SHORT]}): changed after it was committed"
            )
            _mark(ctx, vid, "its id does not match its content")


def check_version_trees(ctx: Context) -> None:
    """Every version's manifest tree exists and verifies, and its counts are the tree's."""
    for v in ctx.versions:
        vid, tree, n_images, n_boxes = v["id"], v["tree"], v["n_images"], v["n_boxes"]
        if tree not in ctx.tree_counts:
            ctx.error(f"version {vid}: manifest tree {tree} is missing")
            _mark(ctx, vid, f"its manifest tree {tree[:SHORT]} is missing")
            continue
        if ctx.tree_counts[tree] != (n_images, n_boxes):
            ctx.error(f"version {vid}: counts do not match its manifest")
            _mark(ctx, vid, "its counts do not match its manifest")
        if tree in ctx.bad_trees:
            _mark(ctx, vid, f"its manifest tree {tree[:SHORT]} does not verify")


def check_version_classes(ctx: Context) -> None:
    """Every version's class list is well formed and names every class its boxes use."""
    for v in ctx.versions:
        vid, tree, classes = v["id"], v["tree"], v["classes"]
        value, bad = loads(classes)
        ok = isinstance(value, list) and all(
            isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str)
            for c in value
        )
        if bad or not ok:
            ctx.error(f"version {vid}: class list is malformed ({bad or classes[:80]})")
            _mark(ctx, vid, "its class list is malformed")
            continue
        ids = [c["id"] for c in value]
        names = [c["name"] for c in value]
        if ids != sorted(set(ids)) or len(set(names)) != len(names):
            ctx.error(f"version {vid}: class list has duplicate or unsorted ids or names")
            _mark(ctx, vid, "its class list is malformed")
        used: set = set()
        for bh in ctx.tree_buckets.get(tree, []):
            used |= ctx.bucket_classes.get(bh, set())
        unknown = used - set(ids)
        if unknown:
            shown = sorted(unknown, key=repr)[:10]
            ctx.error(f"version {vid}: boxes use class id(s) {shown} not in its class list")
            _mark(ctx, vid, "its boxes use classes it does not list")


def check_version_parents(ctx: Context) -> None:
    """Every parent link leads to a version committed before it (so history has no cycles)."""
    seqs = {v["id"]: v["seq"] for v in ctx.versions}
    for v in ctx.versions:
        vid, seq, parents = v["id"], v["seq"], v["parents"]
        value, bad = loads(parents)
        if bad or not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            ctx.error(f"version {vid}: parents are malformed ({bad or parents[:80]})")
            _mark(ctx, vid, "its parents are malformed")
            continue
        for p in value:
            if p not in seqs:
                ctx.error(f"version {vid}: parent {p} is missing")
                _mark(ctx, vid, f"its parent {p[:SHORT]} is missing")
            elif seqs[p] >= seq:
                ctx.error(f"version {vid}: parent {p} was committed after it (seq {seqs[p]})")
                _mark(ctx, vid, "its parents are out of order")


def verified(ctx: Context) -> dict[str, str | None]:
    """version -> None if it and all its ancestors verify, else why not (computed once)."""
    if ctx.verified is not None:
        return ctx.verified
    out: dict[str, str | None] = {}
    for v in ctx.versions:  # in commit order: parents come first
        vid, parents = v["id"], v["parents"]
        why = ctx.bad_versions.get(vid)
        if why is None:
            value, _bad = loads(parents)
            for p in value if isinstance(value, list) else []:
                if out.get(p, "missing") is not None:
                    why = f"its ancestor {str(p)[:SHORT]} does not verify"
                    break
        out[vid] = why
    ctx.verified = out
    return out


def check_decisions(ctx: Context) -> None:
    """Every version's status is what its decisions say, and the decisions are consistent.

    An approved or rejected version's status, ``status_by`` and ``status_at`` are those of its
    latest decision; a committed one has none; nothing follows an approval (it is final); every
    decision names an existing version. A status set to ``approved`` without a decision, or a
    decision row added without the status, is a forged approval. Approvals by someone who is
    not a lead today are noted (roles may have changed since).
    """
    decisions: dict[str, list[tuple]] = {}
    for did, version, decision, by, at in ctx.db.execute(
        "SELECT id, version, decision, by, at FROM decision ORDER BY id"
    ):
        decisions.setdefault(version, []).append((did, decision, by, at))
    known = ctx.version_ids()
    for version in sorted(decisions.keys() - known):
        ctx.error(f"decision(s) {[d[0] for d in decisions[version]]}: version {version} is missing")
    leads = {r[0] for r in ctx.db.execute("SELECT user FROM member WHERE role = 'lead'")}
    for v in ctx.versions:
        vid, status, status_by, status_at = v["id"], v["status"], v["status_by"], v["status_at"]
        mine = decisions.get(vid, [])
        if status == "committed":
            if mine:
                ctx.error(
                    f"version {vid}: status is committed but decision {mine[-1][0]} says "
                    f"{mine[-1][1]} (forged decision?)"
                )
            continue
        if not mine:
            ctx.error(
                f"version {vid}: status is {status} but no decision records it (forged "
                f"{'approval' if status == 'approved' else 'decision'}?)"
            )
            continue
        did, decision, by, at = mine[-1]
        if (decision, by, at) != (status, status_by, status_at):
            ctx.error(
                f"version {vid}: status {status} by {status_by} at {status_at} but its latest "
                f"decision {did} is {decision} by {by} at {at}"
            )
        for earlier in mine[:-1]:
            if earlier[1] == "approved":
                ctx.error(
                    f"version {vid}: decision {earlier[0]} approved it, yet decision(s) follow "
                    "(an approval is final)"
                )
                break
        for d_id, d, d_by, _at in mine:
            if d == "approved" and leads and d_by not in leads:
                ctx.note(f"version {vid}: approved (decision {d_id}) by {d_by}, not a lead now")


def check_releases(ctx: Context) -> None:
    """Every approved version, and every version a tag names, verifies with all its ancestors.

    These are the releases people export by name; one that does not verify is not what was
    approved or tagged.
    """
    ok = verified(ctx)
    for v in ctx.versions:
        vid = v["id"]
        if v["status"] == "approved" and ok.get(vid) is not None:
            ctx.error(f"approved version {vid} does not verify: {ok[vid]}")
    for name, target in ctx.db.execute(
        "SELECT name, version FROM ref WHERE kind = 'tag' ORDER BY name"
    ):
        if target in ok and ok[target] is not None:
            ctx.error(f"tag {name} names version {target}, which does not verify: {ok[target]}")


def check_refs(ctx: Context) -> None:
    """Every ref names an existing version, and a project with versions has ``main``."""
    known = ctx.version_ids()
    names = set()
    for name, target in ctx.db.execute("SELECT name, version FROM ref ORDER BY name"):
        names.add(name)
        if target not in known:
            ctx.error(f"ref {name}: points at missing version {target}")
    if known and "main" not in names:
        ctx.error("ref main is missing although the project has versions")
