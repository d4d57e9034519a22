"""Finding a YOLO dataset's images and reading its label files, before anything is stored.

The layout is resolved the way Ultralytics resolves it (data.yaml keys, folders or image lists,
label path = last ``/images/`` replaced by ``/labels/``), with the flat layout of ``classes.txt``
and images + labels as a second form. Every row is checked and every problem kept; only the
explicit repairs of :class:`ImportOptions` change anything, and each is noted.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..paths import display_path, lexically_inside, link_problem, walk_files
from ..progress import CancelFn, ProgressFn, check_cancel
from .common import (
    IMAGE_EXTENSIONS,
    UNLABELLED_TAG,
    ImportOptions,
    Notes,
    Problems,
    YamlLimitError,
    fmt_num,
    load_yaml,
    quote,
)

#: Normalised slack pulled onto the edge silently: rounding in 6-decimal label files.
NORM_SLACK = 1e-6
#: data.yaml keys and the split each stands for; ``unassigned`` is LabelDesk's own key for
#: images without a split (Ultralytics ignores keys it does not know).
SPLIT_KEYS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
UNASSIGNED = "unassigned"
_FOLDER_SPLITS: dict[str, str | None] = {"train": "train", "val": "val", "valid": "val"}
_FOLDER_SPLITS |= {"validation": "val", "test": "test", UNASSIGNED: None}
#: Image types Ultralytics lists but LabelDesk cannot import: reported, never skipped silently.
UNSUPPORTED_EXTENSIONS = (".avif", ".heic", ".heif", ".dng", ".jp2", ".mpo")


def unit(v: float) -> float:
    return min(max(v, 0.0), 1.0)


@dataclass
class YoloImage:
    path: Path
    split: str | None
    name: str  # kept as meta file_name: the path below the split's images folder
    label: Path
    scope: Path  # the folder links met on the way to this image or its label may not leave
    keys: list[str] = field(default_factory=list)
    rows: list[tuple[int, int, float, float, float, float]] = field(default_factory=list)
    """(line, class index, x1, y1, x2, y2), normalised."""
    labelled: bool = False


def label_path(image: Path) -> Path:
    """Ultralytics' ``img2label_paths``: last ``/images/`` -> ``/labels/``, extension .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = os.fspath(image.absolute())
    return Path(sb.join(s.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def label_dir(folder: Path) -> Path:
    """The folder Ultralytics' rule puts the labels of ``folder``'s images in."""
    return label_path(folder / "x.jpg").parent


def _is_image_name(name: str) -> bool:
    ext = os.path.splitext(name)[1].lower()
    return ext in IMAGE_EXTENSIONS or ext in UNSUPPORTED_EXTENSIONS


def _walk_images(
    folder: Path,
    problems: Problems,
    scope: Path,
    follow_links: bool,
    note: Callable[[str, str], None],
    skip: Path | None = None,
) -> Iterator[Path]:
    """Image files below ``folder`` in sorted order; hidden ones skipped, as Ultralytics' glob
    does. Image types we cannot read are reported rather than skipped, and so is every link
    that leads out of ``scope`` (the link rule of :mod:`labeldesk.core.paths`); a folder not
    read twice (a loop) is noted."""

    def report(path: Path, reason: str) -> None:
        problems.add(display_path(path), reason)

    def noted(path: Path, reason: str) -> None:
        note(display_path(path), reason)

    for p in walk_files(
        folder,
        report,
        follow_links=follow_links,
        scope=scope,
        skip_hidden=True,
        skip=skip,
        want=_is_image_name,
        note=noted,
    ):
        ext = p.suffix.lower()
        if ext in IMAGE_EXTENSIONS:
            yield p
        else:
            problems.add(display_path(p), f"unsupported image type {ext}")


class YoloReader:
    """Finds a YOLO dataset's images and reads its label files, collecting every problem."""

    def __init__(self, options: ImportOptions) -> None:
        self.options = options
        self.problems = Problems()
        self.notes = Notes()
        self.names: list[str] = []
        self.images: dict[Path, YoloImage] = {}
        self.sources: list[str] = []
        self.repairs = {"clipped": 0, "polygons": 0, "duplicates": 0}
        self.root: Path | None = None  # the dataset root: links may not lead out of it
        self.label_folders: set[Path] = set()  # searched for label files no image claims
        self.listed: set[Path] = set()  # files the layout names (lists, classes.txt): not labels
        self.labels_without_image: list[tuple[str, int]] = []

    def note(self, where: str, text: str) -> None:
        self.notes.add(where, text)

    # -- layout ---------------------------------------------------------------------------
    def _refused_link(self, path: Path, scope: Path) -> bool:
        """Apply the link rule to one file or folder named inside ``scope``; True if refused."""
        reason = link_problem(path, scope, follow_links=self.options.follow_links)
        if reason:
            self.problems.add(display_path(path), reason)
        return reason is not None

    def _scope(self, path: Path) -> Path:
        """Where links met on the way to ``path`` may lead: the dataset root if the layout
        names ``path`` inside it, else ``path`` itself (named explicitly, taken as named)."""
        assert self.root is not None
        return self.root if lexically_inside(path, self.root) else path

    def locate(self, source: Path) -> None:
        shown = display_path(source)
        if source.is_file() and source.suffix.lower() in (".yaml", ".yml"):
            return self._yaml(source)
        if not source.is_dir():
            return self.problems.add(shown, "no such folder (or data.yaml file)")
        for name in ("data.yaml", "data.yml"):
            if (source / name).is_file():
                if self._refused_link(source / name, source):
                    return None
                return self._yaml(source / name)
        yamls = sorted(p for p in source.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
        if len(yamls) == 1:
            if self._refused_link(yamls[0], source):
                return None
            return self._yaml(yamls[0])
        if len(yamls) > 1:
            listed = ", ".join(p.name for p in yamls)
            return self.problems.add(shown, f"several YAML files ({listed}); name the data.yaml")
        if (source / "classes.txt").is_file():
            return self._flat(source)
        self.problems.add(shown, "neither a data.yaml nor a classes.txt here")

    def _yaml(self, path: Path) -> None:
        import yaml

        shown = display_path(path)
        self.sources.append(display_path(path.absolute()))
        try:
            data = load_yaml(path.read_text(encoding="utf-8-sig"))
        except OSError as e:
            return self.problems.add(shown, f"cannot read: {e.strerror or e}")
        except UnicodeDecodeError as e:
            return self.problems.add(shown, f"not UTF-8 text: {e.reason}")
        except YamlLimitError as e:
            return self.problems.add(shown, str(e))
        except RecursionError:
            return self.problems.add(shown, "YAML nested too deeply")
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{shown}:{mark.line + 1}" if mark is not None else shown
            reason = " ".join(
                str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x
            )
            return self.problems.add(where, f"not valid (safe) YAML: {reason or e}")
        if not isinstance(data, dict):
            return self.problems.add(shown, "must be a YAML mapping with names and train/val")
        self._parse_names(data.get("names"), data.get("nc"), shown)
        root = self.root = self._root(data.get("path"), path.parent, shown)
        found = False
        for key in (*SPLIT_KEYS, UNASSIGNED):
            value = data.get(key)
            if value in (None, ""):
                continue
            found = True
            values = value if isinstance(value, list) else [value]
            for v in values:
                if not isinstance(v, str):
                    self.problems.add(shown, f"{key}: {quote(v)} must be a folder or .txt path")
                    continue
                self._add_entry(key, root / v, f"{shown}: {key}: {v}")
        if not found:
            self.problems.add(shown, "lists no train, val or test images")

    def _parse_names(self, value: Any, nc: Any, shown: str) -> None:
        if isinstance(value, dict):
            # Ultralytics takes "0": name as well as 0: name
            value = {
                int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in value.items()
            }
            keys = sorted(value, key=str)
            if sorted(k for k in value if isinstance(k, int)) != list(range(len(value))):
                return self.problems.add(
                    shown, f"names keys must be 0..{len(value) - 1}, got {quote(keys)}"
                )
            value = [value[i] for i in range(len(value))]
        if not isinstance(value, list):
            return self.problems.add(shown, "names must be a list or a mapping index: name")
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name.strip():
                self.problems.add(shown, f"names[{i}] = {quote(name)} is not a name (quote it)")
        texts = [n for n in value if isinstance(n, str)]
        if len(set(texts)) != len(texts):
            self.problems.add(shown, "names has duplicates")
        try:
            nc_ok = nc is None or float(nc) == len(value)  # Ultralytics takes "3" and 3.0
        except (TypeError, ValueError):
            nc_ok = False
        if not nc_ok:
            self.problems.add(shown, f"nc is {quote(nc)} but there are {len(value)} names")
        self.names = [str(n) for n in value]

    def _root(self, value: Any, yaml_dir: Path, shown: str) -> Path:
        """The dataset root. Ultralytics resolves a relative ``path`` against its settings
        folder; the only place we can know is the yaml's folder, which is also what a moved
        export needs."""
        if value is None:
            return yaml_dir
        if not isinstance(value, str):
            self.problems.add(shown, f"path must be a string, got {quote(value)}")
            return yaml_dir
        p = Path(value)
        candidate = p if p.is_absolute() else yaml_dir / p
        if candidate.is_dir():
            return candidate
        self.note(shown, f"path {value!r} not found; using the folder of the data.yaml")
        return yaml_dir

    def _add_entry(self, key: str, target: Path, where: str) -> None:
        split = SPLIT_KEYS.get(key)
        scope = self._scope(target)
        follow = self.options.follow_links
        try:
            exists, is_dir, is_file = target.exists(), target.is_dir(), target.is_file()
        except OSError as e:  # a name too long, a folder we may not enter
            return self.problems.add(where, f"cannot read: {e.strerror or e}")
        if exists and self._refused_link(target, scope):
            return None
        if is_dir:
            self.label_folders.add(label_dir(target))
            for p in _walk_images(target, self.problems, scope, follow, self.note):
                self._add(p, split, key, p.relative_to(target).as_posix(), scope)
        elif is_file and target.suffix.lower() == ".txt":
            self.listed.add(target.absolute())
            try:
                lines = target.read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                return self.problems.add(where, f"cannot read the image list: {e}")
            for n, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                p = Path(line)
                if not p.is_absolute():
                    p = target.parent / p  # Ultralytics: "./x" is relative to the list
                if not p.is_file():
                    self.problems.add(f"{display_path(target)}:{n}", f"image not found: {line}")
                    continue
                image_scope = self._scope(p)
                if image_scope == p:  # named outside the root: its own folder is its scope
                    image_scope = p.parent
                elif self._refused_link(p, image_scope):
                    continue
                self.label_folders.add(label_path(p).parent)
                self._add(p, split, key, p.name, image_scope)
        else:
            self.problems.add(where, "folder or image list not found")

    def _flat(self, folder: Path) -> None:
        shown = display_path(folder / "classes.txt")
        self.sources.append(display_path(folder.absolute()))
        self.root = folder
        self.listed.add((folder / "classes.txt").absolute())
        if self._refused_link(folder / "classes.txt", folder):
            return
        try:
            lines = (folder / "classes.txt").read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            return self.problems.add(shown, f"cannot read: {e}")
        while lines and not lines[-1].strip():
            lines.pop()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                self.problems.add(f"{shown}:{n}", "empty class name")
        names = [line.strip() for line in lines]
        if len(set(names)) != len(names):
            self.problems.add(shown, "duplicate class names")
        self.names = names
        images = folder / "images" if (folder / "images").is_dir() else folder
        if images != folder and self._refused_link(images, folder):
            return
        skip = folder / "labels" if images == folder else None
        self.label_folders.add(label_dir(images))
        follow = self.options.follow_links
        for p in _walk_images(images, self.problems, folder, follow, self.note, skip):
            rel = p.relative_to(images)
            first = rel.parts[0].lower() if len(rel.parts) > 1 else ""
            if first in _FOLDER_SPLITS:
                split = _FOLDER_SPLITS[first]
                self._add(p, split, first, PurePosixPath(*rel.parts[1:]).as_posix(), folder)
            else:
                self._add(p, None, "", rel.as_posix(), folder)

    def _add(self, path: Path, split: str | None, key: str, name: str, scope: Path) -> None:
        path = path.absolute()
        img = self.images.get(path)
        if img is None:
            self.images[path] = YoloImage(path, split, name, label_path(path), scope, [key])
            return
        img.keys.append(key)
        # One file listed under several keys: LabelDesk's own "unassigned" wins, then the key
        # named like the folder (an export points train and val at one folder when a split is
        # empty), then train, val, test.
        folder = path.parent.name.lower()
        if UNASSIGNED in img.keys:
            img.split = None
        elif folder in img.keys:
            img.split = SPLIT_KEYS.get(folder)
        else:
            img.split = SPLIT_KEYS.get(img.keys[0])
            self.note(
                display_path(path), f"listed under {', '.join(img.keys)}; imported as {img.split}"
            )

    # -- labels -----------------------------------------------------------------------------
    def read_labels(self, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        by_label: dict[Path, Path] = {}
        folders_checked: dict[tuple[str, str], tuple[Path, bool, str | None]] = {}
        images = list(self.images.values())
        for n, img in enumerate(images, 1):
            if n % 1000 == 0:
                check_cancel(cancel)
                if progress:
                    progress(n, len(images), "reading labels")
            if img.label in by_label:
                self.problems.add(
                    display_path(img.path),
                    f"shares its label file {display_path(img.label)} with "
                    f"{display_path(by_label[img.label])}",
                )
                continue
            by_label[img.label] = img.path
            state = self._label_state(img, folders_checked)
            if state == "refused":
                continue
            if state == "missing":
                self.note(
                    display_path(img.path),
                    "no label file: imported as unlabelled "
                    f"(tag {UNLABELLED_TAG!r}), not as background",
                )
                continue
            img.labelled = True
            self._read_label(img)
        self._find_labels_without_image(set(by_label))

    def _label_state(
        self, img: YoloImage, folders: dict[tuple[str, str], tuple[Path, bool, str | None]]
    ) -> str:
        """``"file"``, ``"missing"``, or ``"refused"`` (reported) by the link rule: a label file
        inside the dataset root may not lead out of it; one beside an image named elsewhere, not
        out of that image's label folder. One ``lstat`` per label; each folder is judged once
        (``folders`` caches it), so a large dataset costs no more system calls than before."""
        label = img.label
        try:
            mode = os.lstat(label).st_mode
        except OSError:
            return "missing"
        key = (os.path.dirname(label), os.fspath(img.scope))  # strings: cheap to hash
        if key not in folders:
            assert self.root is not None
            inside = lexically_inside(label.parent, self.root)
            scope = self.root if inside else label_dir(img.scope)
            explicit = not lexically_inside(label.parent, scope)  # an image list's own path
            reason = None
            if not explicit:
                follow = self.options.follow_links
                reason = link_problem(label.parent, scope, follow_links=follow)
            folders[key] = (scope, explicit, reason)
        scope, explicit, reason = folders[key]
        if reason:
            self.problems.add(display_path(label), reason)
            return "refused"
        if stat.S_ISLNK(mode):
            if not explicit and self._refused_link(label, scope):
                return "refused"
            return "file" if label.is_file() else "missing"
        if stat.S_ISREG(mode):
            return "file"
        if stat.S_ISDIR(mode):
            return "missing"
        self.problems.add(display_path(label), "not a regular file")  # a FIFO would block
        return "refused"

    def _find_labels_without_image(self, claimed: set[Path]) -> None:
        """Report every label file that no image claims, with its number of rows: Ultralytics
        never reads them, so their boxes would be lost without a word (an image deleted, or
        saved in a format it does not list, such as .gif).

        Plain strings and ``os.walk``: this lists every label file of the dataset once more, and
        a Path per file would cost more than the listing. Only the few orphans found are read,
        under the link rule; a linked folder is not searched (said in a note)."""
        taken = {os.fspath(p) for p in claimed} | {os.fspath(p) for p in self.listed}
        found: set[str] = set()
        follow = self.options.follow_links
        for folder in sorted(self.label_folders):
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=follow):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                if not follow:
                    for d in dirnames:
                        if os.path.islink(os.path.join(dirpath, d)):
                            self.note(
                                display_path(os.path.join(dirpath, d)),
                                "linked folder not searched for label files without an image "
                                "(use --follow-links to search it)",
                            )
                for f in filenames:
                    if f.lower().endswith(".txt") and not f.startswith("."):
                        full = os.path.join(dirpath, f)
                        if full not in taken:
                            found.add(full)
        for full in sorted(found):
            p = Path(full)
            shown = display_path(p)
            assert self.root is not None
            scope = self.root if lexically_inside(p, self.root) else p.parent
            if reason := link_problem(p, scope, follow_links=follow):
                self.note(shown, f"label file without an image, not read: {reason}")
                continue
            try:
                text = p.read_bytes().decode("utf-8-sig", "replace") if p.is_file() else ""
            except OSError as e:
                self.note(shown, f"label file without an image; cannot read: {e.strerror or e}")
                continue
            rows = sum(1 for line in text.splitlines() if line.strip())
            self.labels_without_image.append((shown, rows))
            self.note(shown, f"label file without an image: its {rows} box(es) were not imported")

    def _read_label(self, img: YoloImage) -> None:
        shown = display_path(img.label)
        try:
            text = img.label.read_bytes().decode("utf-8-sig")
        except OSError as e:
            return self.problems.add(shown, f"cannot read: {e.strerror or e}")
        except UnicodeDecodeError as e:
            return self.problems.add(shown, f"not UTF-8 text: {e.reason}")
        seen: dict[tuple[float, ...], int] = {}
        for n, line in enumerate(text.splitlines(), 1):
            tokens = line.split()
            if not tokens:
                continue
            where = f"{shown}:{n}"
            row = self._row(tokens, where)
            if row is None:
                continue
            key = tuple(float(t) for t in tokens)  # the row as written, like Ultralytics
            if key in seen:
                if self.options.drop_duplicate_rows:
                    self.repairs["duplicates"] += 1
                    self.note(where, f"duplicate of line {seen[key]}; dropped")
                else:
                    self.problems.add(
                        where,
                        f"duplicate of line {seen[key]} (use --drop-duplicate-rows to keep one)",
                    )
                continue
            seen[key] = n
            img.rows.append((n, *row))

    def _row(self, tokens: list[str], where: str) -> tuple[int, float, float, float, float] | None:
        n = len(tokens)
        polygon = n >= 7 and n % 2 == 1
        if n != 5 and not polygon:
            hint = "; a sixth column looks like a confidence score" if n == 6 else ""
            self.problems.add(where, f"{n} columns; expected 5 (class cx cy w h){hint}")
            return None
        try:
            vals = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            self.problems.add(where, f"not a number: {bad!r}")
            return None
        if not all(math.isfinite(v) for v in vals):
            self.problems.add(where, "coordinates must be finite numbers")
            return None
        c = vals[0]
        if not c.is_integer() or c < 0:
            self.problems.add(where, f"class must be a whole number >= 0, got {tokens[0]}")
            return None
        if c >= len(self.names):
            self.problems.add(
                where,
                f"class {int(c)} is beyond the {len(self.names)} names (0-{len(self.names) - 1})"
                if self.names
                else f"class {int(c)}: no names",
            )
            return None
        coords = vals[1:]
        clip = self.options.clip
        outside = [v for v in coords if v < 0 or v > 1]
        if outside and not clip:
            shown = ", ".join(fmt_num(v) for v in outside)
            self.problems.add(
                where, f"coordinates outside [0, 1]: {shown} (use --clip to clip the box)"
            )
            return None
        if polygon:
            if self.options.polygons != "extent":
                self.problems.add(
                    where,
                    f"polygon (segmentation) row with {(n - 1) // 2} points; LabelDesk keeps "
                    "boxes: use --polygons extent to import its bounding box",
                )
                return None
            xs, ys = coords[0::2], coords[1::2]
            x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
            self.repairs["polygons"] += 1
            self.note(where, "polygon imported as its bounding box")
        else:
            cx, cy, w, h = coords
            if w <= 0 or h <= 0:
                self.problems.add(
                    where, f"zero-sized or negative box (w={fmt_num(w)}, h={fmt_num(h)})"
                )
                return None
            x1, x2, y1, y2 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
        beyond = min(x1, y1) < -NORM_SLACK or max(x2, y2) > 1 + NORM_SLACK
        if beyond and not clip:
            self.problems.add(
                where,
                f"box reaches outside the image (x {fmt_num(x1)}..{fmt_num(x2)}, "
                f"y {fmt_num(y1)}..{fmt_num(y2)}); use --clip to clip it",
            )
            return None
        x1, y1, x2, y2 = unit(x1), unit(y1), unit(x2), unit(y2)
        if x2 <= x1 or y2 <= y1:
            self.problems.add(where, "zero-sized box (after clipping to the image)")
            return None
        if beyond or outside:
            self.repairs["clipped"] += 1
            self.note(where, "box clipped to the image")
        return (int(c), x1, y1, x2, y2)


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True
