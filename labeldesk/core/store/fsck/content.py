"""Checks of the content-addressed rows: annotation sets, manifest buckets, manifest trees, and
the packed copies of boxes derived from them (and from prediction rows).

Each row is re-hashed from its JSON (with the functions of :mod:`labeldesk.core.store.integrity`),
and a row that verifies but names one that does not is marked bad too, so that "this version
verifies" means every row under it does.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...boxes import count_boxes
from ..integrity import box_problems, row_hash_problem
from ..manifest import PREFIX_LEN
from ..packed import pack_labels, pack_predictions
from .base import Context, loads


def check_annotation_sets(ctx: Context) -> None:
    """Every annotation set hashes to its name, counts its boxes right, and holds valid boxes.

    A valid box has finite coordinates and a positive width and height: NaN or a negative size
    hashes as well as anything else, so only this check finds it.
    """
    for h, text, n in ctx.db.execute("SELECT hash, boxes, n_boxes FROM annotation_set"):
        ctx.check_cancel()
        problem = row_hash_problem("annotation set", h, text)
        value, bad_json = loads(text)
        if problem:
            ctx.error(problem)
            ctx.bad_annsets.add(h)
        if bad_json:
            continue
        for p in box_problems(value):
            ctx.error(f"annotation set {h}: {p}")
            ctx.bad_annsets.add(h)
        # n_boxes counts object boxes, not crowd regions (boxes.count_boxes)
        size = (
            count_boxes(d for d in value if isinstance(d, dict)) if isinstance(value, list) else 0
        )
        if size != n:
            ctx.error(f"annotation set {h}: n_boxes {n} but holds {size}")
            ctx.bad_annsets.add(h)
        ctx.annset_sizes[h] = size
        if isinstance(value, list):
            ctx.annset_classes[h] = {d.get("class") for d in value if isinstance(d, dict)}


def _manifest_rows(
    ctx: Context, kind: str, sql: str, bad: set[str]
) -> Iterator[tuple[str, dict, int, int]]:
    """``(hash, parsed object, n_images, n_boxes)`` of each bucket or tree row: its text hashed
    against its name (a mismatch reported, the row marked ``bad``); a row whose text is no JSON
    object is marked bad and not yielded, as nothing in it can be checked."""
    for h, text, n_images, n_boxes in ctx.db.execute(sql):
        ctx.check_cancel()
        problem = row_hash_problem(kind, h, text)
        if problem:
            ctx.error(problem)
            bad.add(h)
        value, bad_json = loads(text)
        if bad_json or not isinstance(value, dict):
            bad.add(h)
            continue
        yield h, value, n_images, n_boxes


def check_buckets(ctx: Context) -> None:
    """Every manifest bucket hashes to its name, counts right, and names only rows that exist.

    Its images need image rows and its entries existing annotation sets; a bucket holding a
    set that does not verify does not verify either.
    """
    images = ctx.images
    sizes = ctx.annset_sizes
    for h, value, n_images, n_boxes in _manifest_rows(
        ctx,
        "manifest bucket",
        "SELECT hash, entries, n_images, n_boxes FROM manifest_bucket",
        ctx.bad_buckets,
    ):
        boxes = 0
        classes: set = set()
        for image, entry in value.items():
            annset = str(entry[0]) if isinstance(entry, list) and entry else "(none)"
            if image not in images:
                ctx.error(f"manifest bucket {h}: image {image} has no image row")
                ctx.bad_buckets.add(h)
            if annset not in sizes:
                ctx.error(f"manifest bucket {h}: annotation set {annset} is missing")
                ctx.bad_buckets.add(h)
            elif annset in ctx.bad_annsets:
                ctx.bad_buckets.add(h)
            boxes += sizes.get(annset, 0)
            classes |= ctx.annset_classes.get(annset, set())
        if (len(value), boxes) != (n_images, n_boxes):
            ctx.error(
                f"manifest bucket {h}: counts ({n_images}, {n_boxes}) but holds "
                f"({len(value)}, {boxes})"
            )
            ctx.bad_buckets.add(h)
        ctx.bucket_counts[h] = (len(value), boxes)
        ctx.bucket_prefixes[h] = {image[:PREFIX_LEN] for image in value}
        ctx.bucket_classes[h] = classes


def check_trees(ctx: Context) -> None:
    """Every manifest tree hashes to its name, counts right, and holds buckets that exist.

    Each bucket must sit under the prefix of the images it holds; a tree holding a bucket that
    does not verify does not verify either.
    """
    buckets = ctx.bucket_counts
    for h, value, n_images, n_boxes in _manifest_rows(
        ctx,
        "manifest tree",
        "SELECT hash, buckets, n_images, n_boxes FROM manifest_tree",
        ctx.bad_trees,
    ):
        ni = nb = 0
        for prefix, bh in value.items():
            if bh not in buckets:
                ctx.error(f"manifest tree {h}: bucket {bh} ({prefix}) is missing")
                ctx.bad_trees.add(h)
                continue
            if bh in ctx.bad_buckets:
                ctx.bad_trees.add(h)
            if ctx.bucket_prefixes[bh] - {prefix}:
                ctx.error(f"manifest tree {h}: bucket {bh} holds images outside prefix {prefix}")
                ctx.bad_trees.add(h)
            ni += buckets[bh][0]
            nb += buckets[bh][1]
        if (ni, nb) != (n_images, n_boxes):
            ctx.error(f"manifest tree {h}: counts ({n_images}, {n_boxes}) but holds ({ni}, {nb})")
            ctx.bad_trees.add(h)
        ctx.tree_counts[h] = (ni, nb)
        ctx.tree_buckets[h] = list(value.values())


def check_packed_boxes(ctx: Context) -> None:
    """Every packed copy of boxes (core.packed: what the review queue ranks by) is the one its
    JSON gives, and belongs to a row that exists.

    A copy is derived data: changed behind LabelDesk's back it would make the queue rank boxes
    the labels do not hold, so each one is recomputed from its JSON and compared byte for byte.
    A set or prediction row without a copy is fine (readers derive it from the JSON).
    """
    texts = dict(ctx.db.execute("SELECT hash, boxes FROM annotation_set"))
    for h, blob in ctx.db.execute("SELECT hash, packed FROM annotation_set_packed"):
        ctx.check_cancel()
        if h not in texts:
            ctx.error(f"packed copy of annotation set {h}: the annotation set is missing")
        elif blob != pack_labels(texts[h]):
            ctx.error(f"packed copy of annotation set {h} does not match its boxes")
    for model, params, image, text, blob, names in ctx.db.execute(
        "SELECT model, params, image, boxes, packed, packed_names FROM prediction "
        "WHERE packed IS NOT NULL OR packed_names IS NOT NULL"
    ):
        ctx.check_cancel()
        if (blob, names) != (pack_predictions(text) or (None, None)):
            ctx.error(
                f"packed copy of the predictions of model {model[:12]} ({params}) on image "
                f"{image} does not match them"
            )
