"""``labeldesk fsck``: prove the project is whole by reading every byte.

Every object file is re-hashed (never trusted by its name or size), and every row is cross-checked
against the files and the other rows: images against objects, versions against trees, trees
against buckets, buckets against annotation sets, refs against versions. Content-addressed rows
are re-hashed too. Leftovers of an interrupted import are listed as notes, not errors: they are
journaled and removed the next time the project is opened for writing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .canonical import hash_json
from .manifest import PREFIX_LEN
from .objects import hash_file
from .progress import CancelFn, ProgressFn, check_cancel
from .project import Project


@dataclass
class FsckReport:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    objects_checked: int = 0
    bytes_checked: int = 0
    versions_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "notes": self.notes,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "versions_checked": self.versions_checked,
        }


def fsck(
    project: Project, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None
) -> FsckReport:
    db = project.db
    report = FsckReport()
    err = report.errors.append

    integrity = [r[0] for r in db.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        err(f"database integrity_check failed: {'; '.join(integrity[:5])}")

    images = {sha: size for sha, size in db.execute("SELECT sha256, byte_size FROM image")}
    # Weights of models trained here are objects too (named by their hash, the model id).
    model_objects = {r[0] for r in db.execute("SELECT id FROM model")}
    pending = {r[0] for r in db.execute("SELECT sha256 FROM pending_object")}
    files = dict(project.objects.iter_objects())
    total = len(files)

    # 1. every object file: re-hash it and check something accounts for it
    for i, (name, path) in enumerate(sorted(files.items()), start=1):
        check_cancel(cancel)
        try:
            digest, size = hash_file(path)
        except OSError as e:
            err(f"object {name}: unreadable ({e.strerror or e})")
            continue
        report.objects_checked += 1
        report.bytes_checked += size
        if digest != name:
            expected = images.get(name)
            if expected is not None and size < expected:
                err(f"object {name}: truncated ({size} of {expected} bytes)")
            else:
                err(f"object {name}: corrupt (content hashes to {digest})")
        elif name in images and images[name] != size:
            err(f"object {name}: size {size} but the image row says {images[name]}")
        if name not in images and name not in model_objects:
            if name in pending:
                report.notes.append(
                    f"object {name}: left by an interrupted import (journaled; removed when "
                    "the project is next opened)"
                )
            else:
                err(f"object {name}: orphan (no image row refers to it)")
        if progress:
            progress(i, total, "re-hashing objects")
    for tmp in project.objects.iter_temp_files():
        report.notes.append(f"temporary file {tmp.name} left by an interrupted write")

    # 2. every image row has its object
    for sha in sorted(images.keys() - files.keys()):
        src = db.execute(
            "SELECT path FROM image_source WHERE sha256 = ? ORDER BY id LIMIT 1", [sha]
        ).fetchone()
        where = f" (imported from {src[0]})" if src else ""
        err(f"image {sha}: object file is missing{where}")

    # 3. content-addressed rows hash to their names
    annsets: dict[str, int] = {}
    for h, text, n in db.execute("SELECT hash, boxes, n_boxes FROM annotation_set"):
        check_cancel(cancel)
        value = json.loads(text)
        if hash_json(value)[0] != h:
            err(f"annotation set {h}: content does not match its hash")
        if len(value) != n:
            err(f"annotation set {h}: n_boxes {n} but holds {len(value)}")
        annsets[h] = len(value)
    buckets: dict[str, tuple[int, int]] = {}
    bucket_prefixes: dict[str, set[str]] = {}
    for h, text, n_images, n_boxes in db.execute(
        "SELECT hash, entries, n_images, n_boxes FROM manifest_bucket"
    ):
        check_cancel(cancel)
        value = json.loads(text)
        if hash_json(value)[0] != h:
            err(f"manifest bucket {h}: content does not match its hash")
        boxes = 0
        for image, (annset, *_rest) in value.items():
            if image not in images:
                err(f"manifest bucket {h}: image {image} has no image row")
            if annset not in annsets:
                err(f"manifest bucket {h}: annotation set {annset} is missing")
            boxes += annsets.get(annset, 0)
        if (len(value), boxes) != (n_images, n_boxes):
            err(
                f"manifest bucket {h}: counts ({n_images}, {n_boxes}) but holds "
                f"({len(value)}, {boxes})"
            )
        buckets[h] = (len(value), boxes)
        bucket_prefixes[h] = {image[:PREFIX_LEN] for image in value}
    trees: dict[str, tuple[int, int]] = {}
    for h, text, n_images, n_boxes in db.execute(
        "SELECT hash, buckets, n_images, n_boxes FROM manifest_tree"
    ):
        value = json.loads(text)
        if hash_json(value)[0] != h:
            err(f"manifest tree {h}: content does not match its hash")
        ni = nb = 0
        for prefix, bh in value.items():
            if bh not in buckets:
                err(f"manifest tree {h}: bucket {bh} ({prefix}) is missing")
                continue
            if bucket_prefixes[bh] - {prefix}:
                err(f"manifest tree {h}: bucket {bh} holds images outside prefix {prefix}")
            ni += buckets[bh][0]
            nb += buckets[bh][1]
        if (ni, nb) != (n_images, n_boxes):
            err(f"manifest tree {h}: counts ({n_images}, {n_boxes}) but holds ({ni}, {nb})")
        trees[h] = (ni, nb)

    # 4. versions, refs, sessions
    version_ids = {r[0] for r in db.execute("SELECT id FROM version")}
    for vid, parents, tree, n_images, n_boxes in db.execute(
        "SELECT id, parents, tree, n_images, n_boxes FROM version ORDER BY seq"
    ):
        report.versions_checked += 1
        if tree not in trees:
            err(f"version {vid}: manifest tree {tree} is missing")
        elif trees[tree] != (n_images, n_boxes):
            err(f"version {vid}: counts do not match its manifest")
        for p in json.loads(parents):
            if p not in version_ids:
                err(f"version {vid}: parent {p} is missing")
    for name, target in db.execute("SELECT name, version FROM ref"):
        if target not in version_ids:
            err(f"ref {name}: points at missing version {target}")
    return report
