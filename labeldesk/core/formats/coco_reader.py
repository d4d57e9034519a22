"""Reading and checking COCO annotation files, before anything is stored.

Every record is checked (keys, types, ids, category and image references, file names, boxes
against the image size the record declares, image files present) and every problem is kept, so
the user sees the whole list at once. Only the explicit repairs of :class:`ImportOptions` change
anything, and each is noted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..paths import display_path, link_problem
from ..validators import is_int, is_number
from .common import (
    ImportOptions,
    Notes,
    Problems,
    check_pixel_box,
    check_relative_name,
    fmt_num,
    normalise_name,
    quote,
)

_SPLIT_WORD = re.compile(r"(?:^|[^a-z])(train|val|valid|validation|test)(?:\d*)(?:$|[^a-z])")
_SPLIT_ALIASES = {"valid": "val", "validation": "val"}


@dataclass
class ImageRec:
    where: str
    coco_id: int
    name: str
    width: int
    height: int
    split: str | None
    tags: tuple[str, ...]
    path: Path
    # (category id, x, y, w, h, iscrowd, area as given or None)
    boxes: list[tuple[int, float, float, float, float, bool, float | None]] = field(
        default_factory=list
    )


def split_from_name(path: Path) -> str | None:
    """``instances_train2017.json`` -> train; ``instances_unassigned.json`` (or anything
    without a split word) -> None."""
    m = _SPLIT_WORD.search(path.stem.lower())
    if not m:
        return None
    return _SPLIT_ALIASES.get(m.group(1), m.group(1))


def find_annotation_files(
    paths: Sequence[Path | str], problems: Problems, *, follow_links: bool = False
) -> list[Path]:
    """JSON files named on the command line; a folder means a COCO export's layout (whose
    files follow the link rule of :mod:`labeldesk.core.paths`: none may lead out of it)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [p / "annotations.json"] if (p / "annotations.json").is_file() else []
            found = found or sorted((p / "annotations").glob("*.json"))
            if not found:
                problems.add(display_path(p), "no annotations.json or annotations/*.json here")
            for f in found:
                if reason := link_problem(f, p, follow_links=follow_links):
                    problems.add(display_path(f), reason)
                else:
                    out.append(f)
        elif p.is_file():
            out.append(p)
        else:
            problems.add(display_path(p), "no such file or folder")
    return out


def default_images_dir(files: list[Path]) -> Path | None:
    for f in files[:1]:
        for candidate in (f.parent / "images", f.parent.parent / "images"):
            if candidate.is_dir():
                return candidate
    return None


def _load_json(path: Path, problems: Problems) -> Any:
    shown = display_path(path)
    try:
        return json.loads(path.read_bytes())
    except OSError as e:
        problems.add(shown, f"cannot read: {e.strerror or e}")
    except json.JSONDecodeError as e:
        problems.add(f"{shown}:{e.lineno}:{e.colno}", f"malformed JSON: {e.msg}")
    except UnicodeDecodeError as e:
        problems.add(shown, f"not UTF-8 text: {e.reason}")
    except RecursionError:
        problems.add(shown, "JSON nested too deeply")
    return None


def _missing(rec: dict, keys: Sequence[str]) -> list[str]:
    return [k for k in keys if k not in rec]


class CocoReader:
    """Reads and checks COCO files, collecting every problem before anything is stored."""

    def __init__(self, images_dir: Path, options: ImportOptions) -> None:
        self.images_dir = images_dir
        self.options = options
        self.problems = Problems()
        self.notes = Notes()
        self.repairs = {"clipped": 0, "crowd": 0}
        self.categories: dict[int, tuple[str, str]] = {}  # id -> (name, where)
        self.category_ids: dict[str, tuple[int, str]] = {}  # name -> (id, where)
        self.images: list[ImageRec] = []
        self.by_id: dict[int, str] = {}
        self.by_name: dict[str, str] = {}

    def note(self, where: str, text: str) -> None:
        self.notes.add(where, text)

    def read(self, path: Path, split: str | None) -> None:
        shown = display_path(path)
        data = _load_json(path, self.problems)
        if data is None:
            return
        if not isinstance(data, dict):
            self.problems.add(
                shown, "top level must be a JSON object with images, annotations, categories"
            )
            return
        lists = {}
        for key in ("images", "annotations", "categories"):
            if key not in data:
                self.problems.add(shown, f"missing key {key!r}")
            elif not isinstance(data[key], list):
                self.problems.add(shown, f"{key!r} must be a list")
            else:
                lists[key] = data[key]
        cats = self._categories(shown, lists.get("categories", []))
        images, mentioned = self._images(shown, lists.get("images", []), split)
        self._annotations(shown, lists.get("annotations", []), images, mentioned, cats)

    def _categories(self, shown: str, records: list) -> set[int]:
        ids: set[int] = set()
        names: dict[str, int] = {}
        for i, rec in enumerate(records):
            where = f"{shown}: categories[{i}]"
            if not isinstance(rec, dict):
                self.problems.add(where, "must be an object")
                continue
            if miss := _missing(rec, ("id", "name")):
                self.problems.add(where, f"missing key(s) {', '.join(map(repr, miss))}")
                continue
            cid, name = rec["id"], rec["name"]
            if not is_int(cid):
                self.problems.add(where, f"id must be an integer, got {quote(cid)}")
                continue
            if not isinstance(name, str) or not name.strip():
                self.problems.add(where, f"name must be a non-empty string, got {quote(name)}")
                continue
            where = f"{where} (id {cid})"
            if cid in ids:
                self.problems.add(where, f"duplicate category id {cid}")
                continue
            if name in names:
                self.problems.add(
                    where, f"duplicate category name {name!r} (also id {names[name]})"
                )
                continue
            ids.add(cid)
            names[name] = cid
            if cid in self.categories and self.categories[cid][0] != name:
                other, at = self.categories[cid]
                self.problems.add(where, f"category {cid} is {name!r} here but {other!r} in {at}")
                continue
            if name in self.category_ids and self.category_ids[name][0] != cid:
                other_id, at = self.category_ids[name]
                self.problems.add(
                    where, f"category {name!r} has id {cid} here but {other_id} in {at}"
                )
                continue
            self.categories.setdefault(cid, (name, where))
            self.category_ids.setdefault(name, (cid, where))
        return ids

    def _images(
        self, shown: str, records: list, split: str | None
    ) -> tuple[dict[int, ImageRec], set[Any]]:
        """Valid image records by id, and every id the file mentions (valid or not)."""
        out: dict[int, ImageRec] = {}
        mentioned: set[Any] = set()
        for i, rec in enumerate(records):
            where = f"{shown}: images[{i}]"
            if not isinstance(rec, dict):
                self.problems.add(where, "must be an object")
                continue
            if is_int(rec.get("id")):
                mentioned.add(rec["id"])
                where = f"{where} (id {rec['id']})"
            if miss := _missing(rec, ("id", "file_name", "width", "height")):
                self.problems.add(where, f"missing key(s) {', '.join(map(repr, miss))}")
                continue
            iid, name, w, h = rec["id"], rec["file_name"], rec["width"], rec["height"]
            bad = False
            if not is_int(iid):
                self.problems.add(where, f"id must be an integer, got {quote(iid)}")
                bad = True
            if reason := check_relative_name(name):
                self.problems.add(where, reason)
                bad = True
            for key, v in (("width", w), ("height", h)):
                if not is_int(v) or v <= 0:
                    self.problems.add(where, f"{key} must be a positive integer, got {quote(v)}")
                    bad = True
            tags = rec.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                self.problems.add(where, "tags must be a list of strings")
                bad = True
            if bad:
                continue
            name = normalise_name(name)
            if iid in self.by_id:
                self.problems.add(where, f"duplicate image id {iid} (also {self.by_id[iid]})")
                continue
            if name in self.by_name:
                self.problems.add(
                    where, f"duplicate file_name {name!r} (also {self.by_name[name]})"
                )
                continue
            self.by_id[iid], self.by_name[name] = where, where
            path = self.images_dir / name
            # file_name cannot climb out (checked above), but a link on its way still could
            if reason := link_problem(
                path, self.images_dir, follow_links=self.options.follow_links
            ):
                self.problems.add(where, f"{display_path(path)}: {reason}")
                continue
            if not path.is_file():
                self.problems.add(where, f"image file not found: {display_path(path)}")
                continue
            out[iid] = ImageRec(where, iid, name, w, h, split, tuple(tags), path)
        self.images.extend(out.values())
        return out, mentioned

    def _annotations(
        self,
        shown: str,
        records: list,
        images: dict[int, ImageRec],
        mentioned: set[Any],
        cats: set[int],
    ) -> None:
        seen: dict[int, int] = {}
        for i, rec in enumerate(records):
            where = f"{shown}: annotations[{i}]"
            if not isinstance(rec, dict):
                self.problems.add(where, "must be an object")
                continue
            if is_int(rec.get("id")):
                where = f"{where} (id {rec['id']})"
            if miss := _missing(rec, ("id", "image_id", "category_id", "bbox")):
                self.problems.add(where, f"missing key(s) {', '.join(map(repr, miss))}")
                continue
            aid, iid, cid, bbox = rec["id"], rec["image_id"], rec["category_id"], rec["bbox"]
            if not is_int(aid):
                self.problems.add(where, f"id must be an integer, got {aid!r}")
                continue
            if aid in seen:
                self.problems.add(
                    where, f"duplicate annotation id {aid} (also annotations[{seen[aid]}])"
                )
                continue
            seen[aid] = i
            if rec.get("iscrowd", 0) not in (0, 1, False, True):
                self.problems.add(where, f"iscrowd must be 0 or 1, got {rec['iscrowd']!r}")
                continue
            crowd = bool(rec.get("iscrowd", 0))
            if crowd and self.options.skip_crowd:
                self.repairs["crowd"] += 1
                self.note(where, "crowd region (iscrowd 1) skipped")
                continue
            # COCO's area (of the segmentation, usually) sorts labels into small/medium/large
            # for evaluation, so it is kept as given; None means w*h.
            area = rec.get("area")
            if area is not None and (not is_number(area) or area < 0):
                self.problems.add(where, f"area must be a finite number >= 0, got {area!r}")
                continue
            if not is_int(cid) or cid not in cats:
                self.problems.add(where, f"category_id {cid!r} is not in categories")
                continue
            if not is_int(iid) or iid not in images:
                if not is_int(iid) or iid not in mentioned:
                    self.problems.add(where, f"image_id {iid!r} is not in images")
                continue  # otherwise its image record was reported already
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
                self.problems.add(
                    where, f"bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}"
                )
                continue
            img = images[iid]
            x, y, w, h = bbox
            box, reason, clipped = check_pixel_box(
                x, y, w, h, img.width, img.height, self.options.clip
            )
            if box is None:
                self.problems.add(where, str(reason))
                continue
            if clipped:
                self.repairs["clipped"] += 1
                self.note(
                    where,
                    f"box [{', '.join(fmt_num(v) for v in bbox)}] clipped to the "
                    f"{img.width}x{img.height} image",
                )
            img.boxes.append((cid, *box, crowd, area))
