"""COCO object detection: ``instances`` JSON files plus an images folder, both directions.

Import takes one or more annotation files (a split each) and commits one version of kind
``import``. Category ids are kept as class ids, and each image's COCO id and ``file_name`` are
kept in its manifest entry, so an export writes them again and results files made against the
original dataset still match. Boxes are taken in the upright frame (EXIF applied), which is how
the record's ``width``/``height`` describe the image.

Export writes ``images/`` and either ``annotations.json`` (a version without splits) or
``annotations/instances_{train,val,test,unassigned}.json``; ids are unique across the files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from ..boxes import CanonicalSet, imported_set, is_crowd
from ..canonical import round_coord
from ..errors import Problem
from ..images import ImageInfo
from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.importer import Staging, display_path
from ..store.manifest import SPLITS, Entry
from ..store.packed import pack_imported
from ..store.project import Project
from ..store.versions import MAIN
from ..validators import is_int
from .coco_reader import (
    CocoReader,
    ImageRec,
    default_images_dir,
    find_annotation_files,
    split_from_name,
)
from .common import (
    ExportReport,
    ImportOptions,
    ImportReport,
    Problems,
    check_pixel_box,
    main_version,
    map_classes_keep_ids,
    provenance,
)
from .files import ImageJob, OutputFolder, write_files
from .plan import (
    BoxReader,
    ExportPlan,
    PlannedImage,
    load_plan,
    refuse_damage,
    unique_names,
    unknown_classes_error,
)

AUTO = "auto"
UNASSIGNED = "unassigned"

# ---------------------------------------------------------------------------------- import


def _size_problem(rec: ImageRec, info: ImageInfo) -> str | None:
    if (info.width, info.height) == (rec.width, rec.height):
        return None
    text = (
        f"the image is {info.width}x{info.height} as a person sees it but the record says "
        f"{rec.width}x{rec.height}"
    )
    if info.orientation in (5, 6, 7, 8) and (rec.width, rec.height) == (
        info.raw_width,
        info.raw_height,
    ):
        text += (
            f"; its EXIF orientation {info.orientation} turns the stored "
            f"{info.raw_width}x{info.raw_height} pixels, so this record (and its boxes) "
            "describe the stored frame, not the upright one LabelDesk uses"
        )
    return text


def import_coco(
    project: Project,
    annotations: Sequence[Path | str],
    images: Path | str | None = None,
    *,
    split: str | None = AUTO,
    options: ImportOptions | None = None,
    replace: bool = False,
    message: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ImportReport:
    """Import COCO annotation files (and the images they name) as one version on ``main``.

    ``split``: ``"auto"`` takes each file's split from its name (``instances_val2017.json`` is
    val), None imports without splits, or one of train/val/test for all files. With
    ``replace`` the version holds exactly this dataset; otherwise it is added to main.
    Raises :class:`InputError` listing every problem, with the project unchanged.
    """
    options = options or ImportOptions()
    pre = Problems()
    files = find_annotation_files(annotations, pre, follow_links=options.follow_links)
    images_dir = Path(images) if images is not None else default_images_dir(files)
    if images_dir is None and files:
        pre.add(display_path(files[0]), "no images folder beside it; name one with --images")
    elif images_dir is not None and not images_dir.is_dir():
        pre.add(display_path(images_dir), "images folder not found")
    if not files and not pre:
        pre.add("annotations", "no annotation files given")
    if split not in (AUTO, None, *SPLITS):
        raise ValueError(f"split must be 'auto', None or one of {SPLITS}")
    pre.raise_if_any("cannot import COCO")
    assert images_dir is not None
    reader = CocoReader(images_dir, options)
    for f in files:
        check_cancel(cancel)
        reader.read(f, split_from_name(f) if split == AUTO else split)
    main = main_version(project.db)
    existing = main.classes if main else []
    mapping, classes = map_classes_keep_ids(
        existing,
        [(cid, name) for cid, (name, _) in sorted(reader.categories.items())],
        "categories",
        reader.problems,
    )
    reader.problems.raise_if_any("cannot import COCO")

    recs = reader.images
    with Staging(project, progress=progress, cancel=cancel) as staging:
        staged = staging.stage_files(
            list(dict.fromkeys(r.path for r in recs)), what="importing images"
        )
        by_path = {path: (sha, info) for path, sha, info in staged}
        entries: dict[str, Entry] = {}
        annsets: dict[str, CanonicalSet] = {}
        first: dict[str, str] = {}
        n_rows = 0  # boxes and crowd regions of the images kept
        problems = reader.problems
        for rec in recs:
            sha, info = by_path[rec.path]
            if sha is None:
                problems.add(rec.where, f"{display_path(rec.path)}: {info}")
                continue
            assert isinstance(info, ImageInfo)
            if reason := _size_problem(rec, info):
                problems.add(rec.where, reason)
                continue
            if sha in first:
                if options.duplicate_images == "first":
                    reader.note(
                        rec.where,
                        f"same image bytes as {first[sha]}; left out with its "
                        f"{len(rec.boxes)} box(es)",
                    )
                else:
                    problems.add(
                        rec.where,
                        f"same image bytes as {first[sha]} (use "
                        "--duplicate-images first to keep only the first)",
                    )
                continue
            first[sha] = rec.where
            entries[sha] = Entry(
                "",
                rec.split,
                rec.tags,
                (("coco_id", rec.coco_id), ("file_name", rec.name)),
            )
            # The rows were checked by the reader: their canonical set is written straight
            # from the numbers, not through a Box per row (same bytes, see imported_set).
            annsets[sha] = imported_set(
                [(mapping[c], x, y, w, h, crowd, area) for c, x, y, w, h, crowd, area in rec.boxes],
                pack=pack_imported,
            )
            n_rows += len(rec.boxes)
        problems.raise_if_any("cannot import COCO")
        # Crowd regions are kept but are not object boxes: counted apart, as n_boxes is.
        n_boxes = sum(s.n_boxes for s in annsets.values())
        n_crowd = n_rows - n_boxes
        if n_crowd:
            reader.note("annotations", f"{n_crowd} crowd regions (iscrowd 1) kept, not counted")
        repairs = []
        if reader.repairs["clipped"]:
            repairs.append(f"clipped {reader.repairs['clipped']} boxes to the image")
        if reader.repairs["crowd"]:
            repairs.append(f"skipped {reader.repairs['crowd']} crowd regions")
        if len(first) < len(recs):
            repairs.append(f"left out {len(recs) - len(first)} images with duplicate bytes")
        version = staging.commit(
            entries=entries,
            annsets=annsets,
            classes=classes,
            message=message
            or f"Import COCO {', '.join(f.name for f in files)}: {len(entries)} images, "
            f"{n_boxes} boxes",
            provenance={
                **provenance("coco", [display_path(f.absolute()) for f in files], options, repairs),
                "images": display_path(images_dir.absolute()),
            },
            replace_all=replace,
        )
    return ImportReport("coco", version, len(entries), n_boxes, classes, reader.notes)


# ---------------------------------------------------------------------------------- export

_DUMP: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False}
_SPLIT_ORDER = ("train", "val", "test", None)
_CHUNK = 256


def _coco_ids(images: list[PlannedImage], names: dict[str, str]) -> tuple[dict[str, int], int]:
    """Image ids: a dataset's own id where it has one (first claimant in hash order), new ones
    from the highest id + 1 in file-name order. Returns ids and how many were renumbered."""
    ids: dict[str, int] = {}
    taken: set[int] = set()
    renumbered = 0
    for im in sorted(images, key=attrgetter("sha")):
        cid = im.entry.meta_dict.get("coco_id") if im.entry.meta else None
        if is_int(cid) and cid not in taken:
            ids[im.sha] = cid
            taken.add(cid)
        elif cid is not None:
            renumbered += 1
    nxt = max(taken, default=0) + 1
    for sha in sorted((i.sha for i in images if i.sha not in ids), key=names.__getitem__):
        ids[sha] = nxt
        nxt += 1
    return ids, renumbered


#: Public name of the image-id rule, for code that must number images exactly as the export
#: does (evaluation matches results files against exported ids).
coco_image_ids = _coco_ids


def _annotation_files(plan_images: list[PlannedImage]) -> list[tuple[str, str | None]]:
    splits = {im.entry.split for im in plan_images}
    if splits <= {None}:
        return [("annotations.json", None)]
    return [
        (f"annotations/instances_{s or UNASSIGNED}.json", s) for s in _SPLIT_ORDER if s in splits
    ]


def _image_record(im: PlannedImage, coco_id: int, name: str) -> str:
    rec: dict[str, Any] = {"file_name": name, "height": im.height, "id": coco_id, "width": im.width}
    if im.entry.tags:
        rec["tags"] = list(im.entry.tags)
    return json.dumps(rec, **_DUMP)


class _CocoWriter:
    """Streams the annotation files while the images are copied.

    :meth:`chunks` writes each file's header and image records, then the annotations of the
    images chunk by chunk, yielding each chunk's image jobs to :func:`write_files`: JSON is
    produced while the previous chunk's images are being copied, one box at a time, never
    holding the whole dataset's annotations in memory.
    """

    def __init__(
        self,
        project: Project,
        plan: ExportPlan,
        names: dict[str, str],
        ids: dict[str, int],
        damaged: Problems,
        verify: bool = True,
    ) -> None:
        self.plan, self.names, self.ids = plan, names, ids
        self.reader = BoxReader(project, damaged, verify=verify)
        self.known = {c["id"] for c in plan.version.classes}
        self.ann_id = 1
        self.bad: dict[int, int] = {}
        self.clipped = self.dropped = 0
        self.crowd = 0  # crowd regions written (iscrowd 1)

    def chunks(
        self, tmp: Path, files: list[str], cancel: CancelFn | None
    ) -> Iterator[list[ImageJob]]:
        categories = [{"id": c["id"], "name": c["name"]} for c in self.plan.version.classes]
        for rel, split in _annotation_files(self.plan.images):
            group = sorted(
                (im for im in self.plan.images if im.entry.split == split),
                key=lambda i: self.ids[i.sha],
            )
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                # No version id or date here: equal content gives equal bytes, whichever
                # version (or project) it was exported from.
                f.write('{"info":{"description":"Exported by LabelDesk"},\n"licenses":[],\n')
                f.write('"images":[\n')
                f.write(
                    ",\n".join(
                        _image_record(im, self.ids[im.sha], self.names[im.sha]) for im in group
                    )
                )
                f.write('\n],\n"annotations":[\n')
                sep = ""
                for i in range(0, len(group), _CHUNK):
                    check_cancel(cancel)
                    chunk = group[i : i + _CHUNK]
                    self.reader.prefetch(im.entry.annset for im in chunk)
                    lines = [line for im in chunk for line in self._lines(im)]
                    if lines:
                        f.write(sep + ",\n".join(lines))
                        sep = ",\n"
                    yield [
                        ImageJob(
                            im.sha,
                            im.orientation,
                            im.format,
                            f"{tmp}/images/{self.names[im.sha]}",
                            size=im.byte_size,
                        )
                        for im in chunk
                    ]
                f.write('\n],\n"categories":[\n')
                f.write(",\n".join(json.dumps(c, **_DUMP) for c in categories))
                f.write("\n]}\n")
            files.append(rel)

    def _lines(self, im: PlannedImage) -> Iterator[str]:
        image_id, width, height = self.ids[im.sha], im.width, im.height
        for d in self.reader.boxes(im.entry.annset):
            c = d["class"]
            if c not in self.known:
                self.bad[c] = self.bad.get(c, 0) + 1
                continue
            x, y, w, h = d["x"], d["y"], d["w"], d["h"]
            if not (x >= 0 and y >= 0 and x + w <= width and y + h <= height):
                box, _, clipped = check_pixel_box(x, y, w, h, width, height, True)
                if box is None:
                    self.dropped += 1
                    continue
                self.clipped += clipped
                x, y, w, h = (round_coord(v) for v in box)
            # canonical boxes are already rounded to 4 decimals; repr is the shortest exact text.
            # A given area (and iscrowd) is written back as imported: evaluation uses the same.
            area = d["area"] if "area" in d else round(w * h, 4)
            crowd = 1 if is_crowd(d) else 0
            self.crowd += crowd
            yield (
                f'{{"area":{float(area)!r},"bbox":[{x!r},{y!r},{w!r},{h!r}],'
                f'"category_id":{c},"id":{self.ann_id},"image_id":{image_id},'
                f'"iscrowd":{crowd}}}'
            )
            self.ann_id += 1


def export_coco(
    project: Project,
    out: Path | str,
    ref: str = MAIN,
    *,
    link: bool = False,
    upright: bool = True,
    verify: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ExportReport:
    """Write version ``ref`` as a COCO dataset into the new or empty folder ``out``.

    Exporting the same version twice gives byte-identical files. ``link`` hard-links images
    from the store instead of copying (they are then read-only); ``upright=False`` keeps the
    original bytes of EXIF-rotated images (see :mod:`.files`).

    Every row used and every image's bytes are checked against their hashes; damage raises
    :class:`~labeldesk.core.errors.IntegrityError` listing all of it, and ``out`` is left as it
    was. ``verify=False`` skips the checks (only to measure what they cost).
    """
    plan = load_plan(project, ref, cancel, verify=verify)
    version = plan.version
    names, renamed = unique_names(plan.images, key=str.casefold)
    ids, renumbered = _coco_ids(plan.images, names)
    notes = [
        Problem(wanted, f"file name taken by another image; exported as {given}")
        for _, wanted, given in renamed
    ]
    if renumbered:
        notes.append(Problem("images", f"{renumbered} COCO image ids were taken twice; renumbered"))
    damaged = Problems()
    writer = _CocoWriter(project, plan, names, ids, damaged, verify)
    report = ExportReport("coco", Path(out).absolute(), version, len(plan.images), 0, [])
    folder = OutputFolder(out)
    with folder as tmp:
        counts = write_files(
            project,
            writer.chunks(tmp, report.files, cancel),
            len(plan.images),
            link=link,
            upright=upright,
            verify=verify,
            root=tmp,
            progress=progress,
            cancel=cancel,
        )
        refuse_damage(version, damaged, counts)
        if writer.bad:
            raise unknown_classes_error(version, writer.bad)
    report.stale_removed = [(str(t.path), t.pid) for t in folder.removed]
    report.n_boxes = writer.ann_id - 1 - writer.crowd
    if writer.crowd:
        notes.append(Problem("annotations", f"{writer.crowd} crowd regions written (iscrowd 1)"))
    report.finish(counts, notes, clipped=writer.clipped, dropped=writer.dropped)
    return report
