"""Labelled-dataset exchange formats: COCO and YOLO, in both directions.

Why a package of its own: import and export share the hard parts (checking boxes against the
image, mapping classes, naming files uniquely, writing an output folder all or nothing, and
making EXIF-rotated images read the same in every tool), and each format is then a thin
reader/writer over them. docs/formats.md describes the files written and every decision.

- :mod:`.common`: options, reports, itemised problems, box checks and class mapping.
- :mod:`.plan`: what an export holds (entries, sizes, sources) and unique file names.
- :mod:`.files`: the output folder (atomic) and image files (copied, linked or made upright).
- :mod:`.coco`, :mod:`.yolo`: the two formats (import orchestration and export);
  :mod:`.coco_reader`, :mod:`.yolo_reader`: reading and checking their input files.
"""

from __future__ import annotations

from .coco import export_coco, import_coco
from .common import ExportReport, ImportOptions, ImportReport
from .yolo import export_yolo, import_yolo

__all__ = [
    "ExportReport",
    "ImportOptions",
    "ImportReport",
    "export_coco",
    "export_yolo",
    "import_coco",
    "import_yolo",
]
