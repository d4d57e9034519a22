"""YOLO detection datasets as Ultralytics reads them, both directions.

Layout: ``data.yaml`` (``path``, ``train``/``val``/``test``, ``names``), images under
``images/<split>/`` and one label file per image under ``labels/<split>/`` with rows
``class cx cy w h`` normalised to the upright image size. Import also takes the flat layout of
``images/`` + ``labels/`` (or images and labels side by side) + ``classes.txt``.

Label paths follow Ultralytics' own rule (the last ``/images/`` becomes ``/labels/``, the
extension ``.txt``), so a dataset imports exactly as Ultralytics would train on it. YOLO class
index i becomes class id i + 1 in a project without classes; export writes the classes in id
order as indices 0..n-1. Coordinates are written with 10 decimals: enough that an import of the
export gives back every box to the 1e-4 px canonical precision for images up to 600,000 px.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..boxes import CanonicalSet, ImportedRow, imported_set, is_crowd
from ..errors import Problem
from ..images import ImageInfo
from ..progress import CancelFn, ProgressFn, check_cancel
from ..store.importer import Staging, display_path
from ..store.manifest import Entry
from ..store.packed import pack_imported
from ..store.project import Project
from ..store.versions import MAIN, Version
from .common import (
    FORMAT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    UNLABELLED_TAG,
    ExportReport,
    ImportOptions,
    ImportReport,
    Problems,
    check_pixel_box,
    main_version,
    map_classes_by_name,
    provenance,
)
from .files import ImageJob, OutputFolder, write_files
from .plan import (
    BoxReader,
    PlannedImage,
    load_plan,
    refuse_damage,
    unique_names,
    unknown_classes_error,
)
from .yolo_reader import UNASSIGNED, YoloImage, YoloReader

DECIMALS = 10
_CHUNK = 256
FOLDERS: dict[str | None, str] = {"train": "train", "val": "val", "test": "test", None: UNASSIGNED}

# ---------------------------------------------------------------------------------- export


def yolo_name(name: str, im: PlannedImage) -> str:
    """A name Ultralytics finds and pairs with the right label file.

    Its glob skips hidden files, it pairs by replacing the *last* ``/images/`` in the path, and it
    lists only files with an image extension; a name is adjusted so none of those bite.
    """
    parts = name.split("/")
    fixed = []
    for i, part in enumerate(parts):
        if part.startswith("."):
            part = "_" + part
        if part == "images" and i < len(parts) - 1:
            part = "images_"
        fixed.append(part)
    out = "/".join(fixed)
    if PurePosixPath(out).suffix.lower() not in IMAGE_EXTENSIONS:
        out += FORMAT_EXTENSIONS.get(im.format, ".img")
    return out


def _stem(name: str) -> str:
    """``a/b.jpg`` -> ``a/b``: how Ultralytics turns an image path into its label path (names
    always end in an image extension here, see :func:`yolo_name`)."""
    return name.rsplit(".", 1)[0]


def _stem_key(name: str) -> str:
    """Two images whose names differ only in extension (or case) would share a label file."""
    return _stem(name).casefold()


_ROW = f"%d %.{DECIMALS}f %.{DECIMALS}f %.{DECIMALS}f %.{DECIMALS}f\n"


def label_text(
    boxes: list[dict[str, Any]], index: dict[int, int], width: int, height: int
) -> tuple[str, int, int, dict[int, int]]:
    """Label file text for one image; returns ``(text, clipped, dropped, unknown classes)``."""
    lines = []
    clipped = dropped = 0
    bad: dict[int, int] = {}
    for d in boxes:
        c = d["class"]
        if c not in index:
            bad[c] = bad.get(c, 0) + 1
            continue
        x, y, w, h = d["x"], d["y"], d["w"], d["h"]
        if not (x >= 0 and y >= 0 and x + w <= width and y + h <= height):
            box, _, was_clipped = check_pixel_box(x, y, w, h, width, height, True)
            if box is None:
                dropped += 1
                continue
            clipped += was_clipped
            x, y, w, h = box
        # inside the image, so every value is in [0, 1] already
        lines.append(
            _ROW % (index[c], (x + w / 2) / width, (y + h / 2) / height, w / width, h / height)
        )
    return "".join(lines), clipped, dropped, bad


def data_yaml(version: Version, root: Path | None, folders: set[str]) -> str:
    """data.yaml text. Ultralytics needs ``train`` and ``val``: when a split is missing they
    point at the folder there is. Strings are JSON-quoted, which is valid YAML."""

    def pick(*options: str) -> str:
        return f"images/{next((o for o in options if o in folders), options[0])}"

    train = pick("train", UNASSIGNED, "val", "test")
    val = "images/val" if "val" in folders else train
    lines = ["# Exported by LabelDesk"]  # no version id: equal content gives equal bytes
    if root is not None:
        lines.append(f"path: {json.dumps(str(root), ensure_ascii=False)}")
    lines += [f"train: {train}", f"val: {val}"]
    if "test" in folders:
        lines.append("test: images/test")
    if UNASSIGNED in folders:
        lines.append(f"{UNASSIGNED}: images/{UNASSIGNED}")
    classes = sorted(version.classes, key=lambda c: c["id"])
    if classes:
        lines.append("names:")
        lines += [
            f"  {i}: {json.dumps(c['name'], ensure_ascii=False)}" for i, c in enumerate(classes)
        ]
    else:
        lines.append("names: {}")
    return "\n".join(lines) + "\n"


def export_yolo(
    project: Project,
    out: Path | str,
    ref: str = MAIN,
    *,
    link: bool = False,
    upright: bool = True,
    portable: bool = False,
    verify: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ExportReport:
    """Write version ``ref`` as an Ultralytics YOLO dataset into the new or empty ``out``.

    ``data.yaml`` carries the absolute ``path`` of ``out`` so it trains from any working
    folder; ``portable`` leaves ``path`` out (Ultralytics then uses the yaml's own folder) and
    makes every file independent of where the export was written.

    As :func:`~.coco.export_coco`, every row and image is checked against its hash and damage
    is refused with an itemised :class:`~labeldesk.core.errors.IntegrityError`.
    """
    plan = load_plan(project, ref, cancel, verify=verify)
    version = plan.version
    index = {cid: i for i, cid in enumerate(plan.class_ids)}
    groups: dict[str, list[PlannedImage]] = {}
    for im in plan.images:
        groups.setdefault(FOLDERS[im.entry.split], []).append(im)
    names: dict[str, str] = {}
    notes: list[Problem] = []
    for images in groups.values():
        got, renamed = unique_names(images, key=_stem_key, adjust=yolo_name)
        names.update(got)
        notes += [
            Problem(wanted, f"name taken by another image; exported as {given}")
            for _, wanted, given in renamed
        ]
    folder_of = {im.sha: FOLDERS[im.entry.split] for im in plan.images}
    ordered = sorted(plan.images, key=lambda i: (folder_of[i.sha], names[i.sha]))
    damaged = Problems()
    reader = BoxReader(project, damaged, verify=verify)
    root = Path(out).absolute()
    report = ExportReport("yolo", root, version, len(plan.images), 0, ["data.yaml"])
    stats = {"clipped": 0, "dropped": 0, "unlabelled": 0, "crowd": 0}
    bad: dict[int, int] = {}

    def chunks(tmp: Path) -> Iterator[list[ImageJob]]:
        """Label text for each chunk of images, made while the previous chunk is written."""
        for i in range(0, len(ordered), _CHUNK):
            check_cancel(cancel)
            chunk = ordered[i : i + _CHUNK]
            reader.prefetch(im.entry.annset for im in chunk)
            jobs = []
            for im in chunk:
                folder, name = folder_of[im.sha], names[im.sha]
                dest = f"{tmp}/images/{folder}/{name}"
                boxes = reader.boxes(im.entry.annset)
                # YOLO has no crowd regions: a row would be trained on as one object.
                objects = [d for d in boxes if not is_crowd(d)]
                stats["crowd"] += len(boxes) - len(objects)
                boxes = objects
                if not boxes and UNLABELLED_TAG in im.entry.tags:
                    stats["unlabelled"] += 1  # not known to be background: no label file
                    job = ImageJob(im.sha, im.orientation, im.format, dest, size=im.byte_size)
                else:
                    text, c, d, b = label_text(boxes, index, im.width, im.height)
                    stats["clipped"] += c
                    stats["dropped"] += d
                    for k, n in b.items():
                        bad[k] = bad.get(k, 0) + n
                    report.n_boxes += len(boxes) - d - sum(b.values())
                    label = f"{tmp}/labels/{folder}/{_stem(name)}.txt"
                    job = ImageJob(
                        im.sha, im.orientation, im.format, dest, label, text, im.byte_size
                    )
                jobs.append(job)
            yield jobs

    folder = OutputFolder(out)
    with folder as tmp:
        counts = write_files(
            project,
            chunks(tmp),
            len(ordered),
            link=link,
            upright=upright,
            verify=verify,
            root=tmp,
            progress=progress,
            cancel=cancel,
        )
        refuse_damage(version, damaged, counts)
        if bad:
            raise unknown_classes_error(version, bad)
        (tmp / "data.yaml").write_text(
            data_yaml(version, None if portable else root, set(groups)),
            encoding="utf-8",
            newline="\n",
        )
    if unlabelled := stats["unlabelled"]:
        notes.append(
            Problem("images", f"{unlabelled} images tagged {UNLABELLED_TAG!r}: no label file")
        )
    if crowd := stats["crowd"]:
        notes.append(Problem("boxes", f"{crowd} crowd regions (iscrowd 1) left out: YOLO has none"))
    report.stale_removed = [(str(t.path), t.pid) for t in folder.removed]
    report.finish(counts, notes, clipped=stats["clipped"], dropped=stats["dropped"])
    return report


# ---------------------------------------------------------------------------------- import


def _pixel_boxes(
    img: YoloImage, info: ImageInfo, mapping: dict[int, int], problems: Problems
) -> CanonicalSet:
    """The canonical set of one image's label rows, in pixels of the upright image; each row
    that is not a box there is reported in ``problems``. Written straight from the checked
    numbers (:func:`imported_set`), not through a Box per row: same bytes, a fraction of the
    cost at a few hundred thousand boxes."""
    rows: list[ImportedRow] = []
    label = display_path(img.label)
    for line, c, x1, y1, x2, y2 in img.rows:
        box, reason, _ = check_pixel_box(
            x1 * info.width,
            y1 * info.height,
            (x2 - x1) * info.width,
            (y2 - y1) * info.height,
            info.width,
            info.height,
            clip=True,  # only slack is left to clip: rows were checked in [0, 1]
        )
        if box is None:
            problems.add(f"{label}:{line}", str(reason))
            continue
        rows.append((mapping[c], *box, False, None))
    return imported_set(rows, pack=pack_imported)


def import_yolo(
    project: Project,
    source: Path | str,
    *,
    options: ImportOptions | None = None,
    replace: bool = False,
    message: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ImportReport:
    """Import a YOLO dataset folder (or its data.yaml) as one version on ``main``.

    Splits come from the data.yaml keys (or ``images/<split>/`` folders in the flat layout).
    An image without a label file is imported with no boxes and the tag ``unlabelled``, and
    reported; so is a label file without an image (its boxes are not imported). A link that
    leads out of the dataset is refused unless ``options.follow_links``. Raises
    :class:`InputError` listing every problem, with the project unchanged.
    """
    options = options or ImportOptions()
    source = Path(source)
    reader = YoloReader(options)
    reader.locate(source)
    reader.problems.raise_if_any("cannot import YOLO")
    if not reader.images:
        reader.problems.add(display_path(source), "no images found")
    reader.read_labels(progress, cancel)
    reader.problems.raise_if_any("cannot import YOLO")
    main = main_version(project.db)
    mapping, classes = map_classes_by_name(main.classes if main else [], reader.names)
    images = list(reader.images.values())
    problems = reader.problems
    with Staging(project, progress=progress, cancel=cancel) as staging:
        staged = staging.stage_files([img.path for img in images], what="importing images")
        entries: dict[str, Entry] = {}
        annsets: dict[str, CanonicalSet] = {}
        first: dict[str, str] = {}
        for img, (_, sha, info) in zip(images, staged, strict=True):
            shown = display_path(img.path)
            if sha is None:
                problems.add(shown, str(info))
                continue
            assert isinstance(info, ImageInfo)
            if sha in first:
                if options.duplicate_images == "first":
                    reader.note(
                        shown,
                        f"same image bytes as {first[sha]}; left out with its "
                        f"{len(img.rows)} box(es)",
                    )
                else:
                    problems.add(
                        shown,
                        f"same image bytes as {first[sha]} (use "
                        "--duplicate-images first to keep only the first)",
                    )
                continue
            first[sha] = shown
            tags = () if img.labelled else (UNLABELLED_TAG,)
            entries[sha] = Entry("", img.split, tags, (("file_name", img.name),))
            annsets[sha] = _pixel_boxes(img, info, mapping, problems)
        problems.raise_if_any("cannot import YOLO")
        n_boxes = sum(s.n_boxes for s in annsets.values())
        repairs = [
            text.format(n)
            for key, text in (
                ("clipped", "clipped {} boxes to the image"),
                ("polygons", "converted {} polygons to their bounding box"),
                ("duplicates", "dropped {} duplicate label rows"),
            )
            if (n := reader.repairs[key])
        ]
        if len(first) < len(images):
            repairs.append(f"left out {len(images) - len(first)} images with duplicate bytes")
        version = staging.commit(
            entries=entries,
            annsets=annsets,
            classes=classes,
            message=message or f"Import YOLO {source.name}: {len(entries)} images, {n_boxes} boxes",
            provenance=provenance("yolo", reader.sources, options, repairs),
            replace_all=replace,
        )
    return ImportReport(
        "yolo", version, len(entries), n_boxes, classes, reader.notes, reader.labels_without_image
    )
