"""``labeldesk import coco|yolo`` and ``labeldesk export coco|yolo``.

Only argparse is imported here; the handlers import core when they run, so building the parser
for ``labeldesk --help`` stays instant and never loads torch.
"""

from __future__ import annotations

import argparse
import sys

IMPORT_EPILOG = """\
Bad input is refused with a list of every problem (file, line or record, reason) and nothing is
committed. Repairs happen only when asked for, and each one is reported.

Examples:
  labeldesk import coco instances_train2017.json instances_val2017.json --images coco/images
  labeldesk import yolo datasets/shapes          (a folder with data.yaml, or images/ labels/
                                                  classes.txt)
"""

EXPORT_EPILOG = """\
OUT must not exist or be empty; the export appears there complete or not at all. Exporting the
same version twice gives byte-identical files. Images with an EXIF orientation are written with
upright pixels (see docs/formats.md); other images are copied byte for byte. Every image and
every row used is checked against its hash: damage refuses the export with each item listed
(then run `labeldesk fsck`). Temporary folders of killed exports beside OUT are removed.

Examples:
  labeldesk export coco --out exports/coco-v1 --version v1.0
  labeldesk export yolo --out exports/yolo-v1 && yolo train data=exports/yolo-v1/data.yaml
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``import`` and ``export`` (each with ``coco`` and ``yolo``) on ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    imp = sub.add_parser(
        "import",
        help="import a labelled COCO or YOLO dataset as a new version",
        epilog=IMPORT_EPILOG,
        formatter_class=raw,
    )
    isub = imp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    s = isub.add_parser("coco", help="COCO instances JSON file(s) plus an images folder")
    s.add_argument(
        "annotations",
        nargs="+",
        metavar="ANNOTATIONS",
        help="COCO JSON files (one per split), or a folder exported by LabelDesk",
    )
    s.add_argument(
        "--images",
        metavar="DIR",
        help="folder the file_name entries are relative to (default: images/ beside the JSON)",
    )
    s.add_argument(
        "--split",
        default="auto",
        choices=("auto", "none", "train", "val", "test"),
        help="split of the images: auto takes it from each file name (instances_val2017.json "
        "is val); none imports without splits (default: auto)",
    )
    s.add_argument(
        "--skip-crowd",
        action="store_true",
        help="leave out crowd regions (iscrowd 1) instead of keeping them; each is reported",
    )
    _common_import_args(s)
    s.set_defaults(handler=cmd_import_coco)

    s = isub.add_parser("yolo", help="YOLO dataset folder (data.yaml, or classes.txt)")
    s.add_argument("source", metavar="DIR", help="dataset folder, or its data.yaml")
    s.add_argument(
        "--polygons",
        choices=("reject", "extent"),
        default="reject",
        help="segmentation rows: refuse them, or import each as its bounding box (reported)",
    )
    s.add_argument(
        "--drop-duplicate-rows",
        action="store_true",
        help="keep one of several identical label rows instead of refusing them (reported)",
    )
    _common_import_args(s)
    s.set_defaults(handler=cmd_import_yolo)

    exp = sub.add_parser(
        "export",
        help="export a version as a COCO or YOLO dataset",
        epilog=EXPORT_EPILOG,
        formatter_class=raw,
    )
    esub = exp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    for name, helptext, handler in (
        ("coco", "COCO: images/ and annotations JSON", cmd_export_coco),
        (
            "yolo",
            "YOLO (Ultralytics): data.yaml, images/<split>/, labels/<split>/",
            cmd_export_yolo,
        ),
    ):
        s = esub.add_parser(name, help=helptext)
        s.add_argument("--out", required=True, metavar="DIR", help="new or empty output folder")
        s.add_argument(
            "--version",
            dest="ref",
            default="main",
            metavar="REF",
            help="version to export (default: main)",
        )
        s.add_argument(
            "--link",
            action="store_true",
            help="hard-link images from the project store instead of copying (read-only files; "
            "falls back to copying across file systems)",
        )
        s.add_argument(
            "--keep-orientation",
            action="store_true",
            help="write EXIF-rotated images byte for byte instead of upright pixels; only for "
            "readers that apply EXIF orientation",
        )
        if name == "yolo":
            s.add_argument(
                "--portable",
                action="store_true",
                help="leave 'path' out of data.yaml (Ultralytics then uses the yaml's folder), "
                "so the export is byte-identical wherever it is written",
            )
        s.add_argument("--json", action="store_true", help="print the report as JSON")
        s.set_defaults(handler=handler)


def _common_import_args(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--clip",
        action="store_true",
        help="clip boxes that reach outside the image instead of refusing them; each clip is "
        "reported",
    )
    s.add_argument(
        "--duplicate-images",
        choices=("reject", "first"),
        default="reject",
        help="images whose bytes are identical: refuse, or keep the first and report the others",
    )
    s.add_argument(
        "--follow-links",
        action="store_true",
        help="also read symbolic links that lead outside the dataset (default: refuse them, "
        "itemised)",
    )
    s.add_argument(
        "--replace",
        action="store_true",
        help="the new version holds exactly this dataset (default: add it to main)",
    )
    s.add_argument("-m", "--message", help="version message")
    s.add_argument("--json", action="store_true", help="print the report as JSON")


# -- handlers ---------------------------------------------------------------------------------


def _options(args: argparse.Namespace):
    from labeldesk.core.formats.common import ImportOptions

    return ImportOptions(
        clip=args.clip,
        polygons=getattr(args, "polygons", "reject"),
        skip_crowd=getattr(args, "skip_crowd", False),
        drop_duplicate_rows=getattr(args, "drop_duplicate_rows", False),
        duplicate_images=args.duplicate_images,
        follow_links=args.follow_links,
    )


def _print_notes(notes: list, limit: int = 20) -> None:
    if not notes:
        return
    print(f"notes ({len(notes)}):")
    for n in notes[:limit]:
        print(f"  {n.where}: {n.reason}")
    if len(notes) > limit:
        print(f"  … and {len(notes) - limit} more (use --json for all)")


def _print_import(args: argparse.Namespace, report) -> int:
    from .verbs import _after_commit

    code = _show_import(report, args.json)
    _after_commit(args, report.version)
    return code


def _show_import(report, as_json: bool) -> int:
    from .output import emit_json

    if as_json:
        emit_json(report.to_json())
        return 0
    print(f"{report.format}: {report.n_images} images, {report.n_boxes} boxes")
    _print_notes(report.notes)
    if report.version:
        v = report.version
        print(f'committed version {v.short} "{v.message}" ({v.n_images} images, {v.n_boxes} boxes)')
    else:
        print("nothing new to commit: main already holds this dataset")
    return 0


def _import(args: argparse.Namespace, fmt: str) -> int:
    from .output import ProgressBar
    from .verbs import _open

    with _open(args) as project, ProgressBar() as bar:
        common = dict(options=_options(args), replace=args.replace, message=args.message)
        if fmt == "coco":
            from labeldesk.core.formats.coco import import_coco

            split = None if args.split == "none" else args.split
            report = import_coco(
                project, args.annotations, args.images, split=split, progress=bar, **common
            )
        else:
            from labeldesk.core.formats.yolo import import_yolo

            report = import_yolo(project, args.source, progress=bar, **common)
    return _print_import(args, report)


def cmd_import_coco(args: argparse.Namespace) -> int:
    return _import(args, "coco")


def cmd_import_yolo(args: argparse.Namespace) -> int:
    return _import(args, "yolo")


def _export(args: argparse.Namespace, fmt: str) -> int:
    from .output import ProgressBar, emit_json
    from .verbs import _open

    if fmt == "coco":
        from labeldesk.core.formats.coco import export_coco as export

        extra = {}
    else:
        from labeldesk.core.formats.yolo import export_yolo as export

        extra = {"portable": args.portable}
    with _open(args) as project, ProgressBar() as bar:
        report = export(
            project,
            args.out,
            args.ref,
            link=args.link,
            upright=not args.keep_orientation,
            progress=bar,
            **extra,
        )
    shown = sys.stderr if args.json else sys.stdout  # under --json stdout is one document
    for path, pid in report.stale_removed:
        shown.write(
            f"removed stale temp folder {path} (left by an export that was killed: "
            f"process {pid} is gone)\n"
        )
    if args.json:
        emit_json(report.to_json())
        return 0
    v = report.version
    print(
        f"exported version {v.short} as {fmt}: {report.n_images} images, {report.n_boxes} boxes "
        f"to {report.out}"
    )
    how = f"copied {report.copied}, linked {report.linked}, upright re-encoded {report.reencoded}"
    print(f"images: {how}")
    print(f"files: {', '.join(report.files)}")
    _print_notes(report.notes)
    return 0


def cmd_export_coco(args: argparse.Namespace) -> int:
    return _export(args, "coco")


def cmd_export_yolo(args: argparse.Namespace) -> int:
    return _export(args, "yolo")
