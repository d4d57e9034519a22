"""Checks of the object store and of the image rows that describe its files."""

from __future__ import annotations

import hashlib
import os

from ...images import BadImageError, probe
from ..integrity import NotARegularFile, read_regular_file
from .base import Context

#: The image row columns after ``sha256``, in the order Context.images gives them.
_IMAGE_FIELDS = (
    "format",
    "width",
    "height",
    "orientation",
    "raw_width",
    "raw_height",
    "mode",
    "byte_size",
)


def check_object_files(ctx: Context) -> None:
    """Every object file is a regular file whose bytes hash to its name.

    Every byte is read (never trusted by name or size); anything but a regular file is refused
    before it is opened, so a FIFO in the store cannot hang fsck. Images are probed with the
    importer's own code while their bytes are in memory, for :func:`check_image_rows` (header
    only: a matching hash already proves these are the bytes that fully decoded on import).
    """
    # Rows before files: objects are written before the rows that name them, so a commit by
    # another process meanwhile can add an unnamed file (rechecked as an orphan) but never a
    # row whose file this listing misses.
    images = ctx.images
    ctx.pending = {r[0] for r in ctx.db.execute("SELECT sha256 FROM pending_object")}
    files = dict(ctx.project.objects.iter_objects())
    ctx.object_files = files
    total = len(files)
    for i, (name, path) in enumerate(sorted(files.items()), start=1):
        ctx.check_cancel()
        try:
            data = read_regular_file(path)
        except FileNotFoundError:
            # Removed since the listing (an import that failed takes back its own objects): if a
            # row still names it, check_image_objects reports it missing.
            del files[name]
            continue
        except NotARegularFile as e:
            ctx.error(f"object {name}: {e}")
            continue
        except OSError as e:
            ctx.error(f"object {name}: unreadable ({e.strerror or e})")
            continue
        size = len(data)
        ctx.report.objects_checked += 1
        ctx.report.bytes_checked += size
        digest = hashlib.sha256(data).hexdigest()
        row = images.get(name)
        if digest != name:
            expected = row[-1] if row else None
            if expected is not None and size < expected:
                ctx.error(f"object {name}: truncated ({size} of {expected} bytes)")
            else:
                ctx.error(f"object {name}: corrupt (content hashes to {digest})")
        else:
            ctx.good_objects[name] = size
            if row is not None:
                try:
                    # The bytes are the imported ones (they hash to their name), and those were
                    # fully decoded on import; the measurements come from the header.
                    ctx.probed[name] = probe(data, decode=False)
                except BadImageError as e:
                    ctx.probed[name] = str(e)
        if ctx.progress:
            ctx.progress(i, total, "re-hashing objects")


def check_orphan_objects(ctx: Context) -> None:
    """Every object file is named by an image row or a model row (the weights of a model
    trained here are an object named by their hash, the model id), or journaled by an import
    in progress."""
    images = ctx.images
    models = {r[0] for r in ctx.db.execute("SELECT id FROM model")}
    for name in sorted(ctx.object_files.keys() - images.keys() - models):
        if ctx.db.execute("SELECT 1 FROM image WHERE sha256 = ?", [name]).fetchone():
            continue  # committed by another process since the rows were read
        if not os.path.lexists(ctx.object_files[name]):
            continue  # taken back by a failed import since the listing
        journaled = ctx.db.execute(
            "SELECT 1 FROM pending_object WHERE sha256 = ?", [name]
        ).fetchone()
        if name in ctx.pending or journaled:
            ctx.note(
                f"object {name}: left by an interrupted import (journaled; removed when "
                "the project is next opened)"
            )
        else:
            ctx.error(f"object {name}: orphan (no image row refers to it)")


def check_temp_files(ctx: Context) -> None:
    """No half-written object is left in the store (a note: they are never read as objects)."""
    for tmp in ctx.project.objects.iter_temp_files():
        ctx.note(f"temporary file {tmp.name} left by an interrupted write")


def check_image_objects(ctx: Context) -> None:
    """Every image row has its object file — except, in a lazy clone, images not fetched yet.

    A lazy clone (``clone --lazy``) has image rows whose bytes stay on the remote until first
    used, and are verified by hash when they arrive: their absence is the design, so it is one
    note with the count, not an error per image. What was fetched is checked like any object.
    """
    absent = sorted(ctx.images.keys() - ctx.object_files.keys())
    lazy = ctx.db.execute("SELECT name, url FROM remote WHERE lazy = 1 LIMIT 1").fetchone()
    if lazy is not None and absent:
        ctx.note(
            f"{len(absent)} image(s) not fetched yet: this is a lazy clone of {lazy[1]} "
            f"(remote {lazy[0]}); each is fetched and verified when first used"
        )
        return
    for sha in absent:
        src = ctx.db.execute(
            "SELECT path FROM image_source WHERE sha256 = ? ORDER BY id LIMIT 1", [sha]
        ).fetchone()
        where = f" (imported from {src[0]})" if src else ""
        ctx.error(f"image {sha}: object file is missing{where}")


def check_image_rows(ctx: Context) -> None:
    """Every image row says what its bytes say: format, size, EXIF orientation, byte size.

    The bytes are probed with the importer's own :func:`labeldesk.core.images.probe`; since they
    hash to their name they are the bytes that were imported, so any difference is a changed
    row (and an export would write a wrong size or rotation).
    """
    for sha, row in sorted(ctx.images.items()):
        info = ctx.probed.get(sha)
        if info is None:
            continue  # object missing or damaged: reported by the checks that read it
        if isinstance(info, str):
            ctx.error(f"image {sha}: its object is not a decodable image ({info})")
            continue
        actual = (
            info.format,
            info.width,
            info.height,
            info.orientation,
            info.raw_width,
            info.raw_height,
            info.mode,
            ctx.good_objects[sha],
        )
        diffs = [
            f"{name} {have!r} (the file says {want!r})"
            for name, have, want in zip(_IMAGE_FIELDS, row, actual, strict=True)
            if have != want
        ]
        if diffs:
            ctx.error(f"image {sha}: row disagrees with its bytes: {', '.join(diffs)}")
