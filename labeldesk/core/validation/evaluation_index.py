"""The images of a version as the COCO export names them, and their labels as it writes them.

Split out of :mod:`.evaluation` (which re-exports both names): every evaluation starts here,
and both steps are read column-wise because they run over every image and every box of the
version on each ``labeldesk validate`` (see ``bench/eval.py --validate``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from ..boxes import ORIGINS, STATES
from ..progress import CancelFn, check_cancel
from ..store.manifest import Entry
from ..store.project import Project
from ..store.versions import Version
from . import json_columns
from .per_image import PerImage

_BATCH = 500
#: annotation sets whose texts are read at a time: few enough to hold their texts, enough that
#: the per-batch work (the column-wise read) is not paid 200 times per 100,000 images
_GT_BATCH = 2000


_Flat = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class GroundTruthArrays(PerImage[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
    """image hash -> (boxes xywh, classes, areas, iscrowd), cut from ``flat`` when asked for.

    ``flat`` holds the boxes of ``images`` laid end to end in that order (counts an image,
    boxes, classes, areas, iscrowd): the engine's columns for all of them, which a subset of
    every image takes as they are (see :mod:`.per_image`).
    """

    def __init__(self, images: Sequence[str], flat: _Flat) -> None:
        super().__init__(images, flat[0])
        self.flat = flat

    def _cut(self, s: int, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        _, box, cls, area, crowd = self.flat
        return box[s:e], cls[s:e], area[s:e], crowd[s:e]


@dataclass(frozen=True)
class ImageIndex:
    """The images of one version with the ids and file names ``labeldesk export coco`` gives.

    ``aliases`` are other names a results file may use for an image: the ``file_name`` it had in
    an imported dataset, the base name and the path of each file it was imported from. An alias
    shared by two images maps to ``None`` (ambiguous) and is refused when used. They are read
    the first time they are asked for: a results file numbered by image id never needs them.
    """

    version: Version
    shas: list[str]  # image-hash order
    entries: dict[str, Entry]
    sizes: dict[str, tuple[int, int]]  # upright width, height
    coco_ids: dict[str, int]
    names: dict[str, str]
    plan: Any = field(repr=False)  # the formats ExportPlan the ids were derived from
    project: Project | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, project: Project, ref: str, cancel: CancelFn | None = None) -> ImageIndex:
        # The numbering must be the exporter's own, not a copy of it that could drift apart.
        from ..formats.coco import coco_image_ids
        from ..formats.plan import load_plan, unique_names

        plan = load_plan(project, ref, cancel)
        names, _ = unique_names(plan.images, key=str.casefold)
        ids, _ = coco_image_ids(plan.images, names)
        return cls(
            version=plan.version,
            shas=[im.sha for im in plan.images],
            entries={im.sha: im.entry for im in plan.images},
            sizes={im.sha: (im.width, im.height) for im in plan.images},
            coco_ids=ids,
            names=names,
            plan=plan,
            project=project,
        )

    @cached_property
    def aliases(self) -> dict[str, str | None]:
        aliases: dict[str, str | None] = {}
        exported = set(self.names.values())

        def alias(name: str, sha: str) -> None:
            if name and name not in exported:
                aliases[name] = sha if aliases.get(name, sha) == sha else None

        for im in self.plan.images:
            meta_name = im.entry.meta_dict.get("file_name")
            if isinstance(meta_name, str):
                alias(meta_name, im.sha)
        if self.project is not None:
            from pathlib import Path

            for sha, path in _sources(self.project, self.shas):
                alias(path, sha)
                alias(Path(path).name, sha)
        return aliases

    def _by_id(self) -> dict[int, str]:
        return {i: sha for sha, i in self.coco_ids.items()}

    def _by_name(self) -> tuple[dict[str, str], dict[str, str]]:
        exact = {n: sha for sha, n in self.names.items()}
        folded = {n.casefold(): sha for sha, n in self.names.items()}
        return exact, folded


def _sources(project: Project, shas: list[str]) -> Iterable[tuple[str, str]]:
    for i in range(0, len(shas), _BATCH):
        chunk = shas[i : i + _BATCH]
        marks = ",".join("?" * len(chunk))
        yield from project.db.execute(
            f"SELECT sha256, path FROM image_source WHERE sha256 IN ({marks}) ORDER BY id", chunk
        )


def ground_truth(
    project: Project, index: ImageIndex, cancel: CancelFn | None = None
) -> GroundTruthArrays:
    """image hash -> (boxes xywh, classes, areas, iscrowd): the labels as the COCO export
    writes them.

    As the exporter: a box reaching outside its image is clipped to it, one entirely outside
    is left out, ``area`` is the one the dataset gave (a segmentation's, kept through import)
    or else w*h rounded to 4 decimals, and crowd regions are kept with ``iscrowd`` set, so
    the engine treats them as COCOeval does (detections on them are ignored, never missed).
    Classes missing from the version's class list are left out of the evaluation by the
    engine.

    Each annotation set is verified against its hash and read straight from its canonical
    text into columns (:func:`_set_columns`); only boxes that reach outside their image go
    through the exporter's clipping one by one.
    """
    from ..formats.plan import BoxReader

    annsets = [index.entries[s].annset for s in index.shas]
    position: dict[str, int] = {}  # set hash -> its place in the sets read
    parts = []
    # each set once (images share the empty set and copies), _GT_BATCH texts at a time; the
    # columns of all sets are far smaller than their texts
    for texts in BoxReader(project).text_batches(annsets, _GT_BATCH):
        check_cancel(cancel)
        position.update(zip(texts, range(len(position), len(position) + len(texts)), strict=True))
        parts.append(_set_columns(list(texts.values())))
    if len(parts) != 1:  # none (a version without images), or several batches: one table
        parts = [_set_columns([]), *parts]
        sets = _Sets(*map(np.concatenate, zip(*parts, strict=True)))
    else:
        sets = parts[0]
    flat = _image_columns(index.shas, [position[a] for a in annsets], sets, index.sizes)
    return GroundTruthArrays(index.shas, flat)


# One box of a canonical set: keys in sorted order, the optional ones where they sort. Numbers
# are taken as text and converted by numpy, as json would convert them.
_JSTR = r'"(?:[^"\\]|\\.)*"'
_BOX_RE = re.compile(
    r'\{(?:"area":([^,]+),)?(?:"author":' + _JSTR + r',)?"class":(-?\d+),"h":([^,]+),'
    r'(?:"iscrowd":(\d+),)?(?:"model":' + _JSTR + r',)?"origin":"\w+",(?:"score":[^,]+,)?'
    r'"state":"(\w+)","w":([^,]+),"x":([^,]+),"y":([^,}]+)\}'
)


class _Sets(NamedTuple):
    """The boxes of some annotation sets laid end to end (``counts`` per set)."""

    counts: np.ndarray
    boxes: np.ndarray  # (N, 4) xywh
    classes: np.ndarray
    areas: np.ndarray  # NaN: none given (w*h)
    crowd: np.ndarray
    live: np.ndarray  # False: a rejected pre-label, not a label


def _set_columns(texts: list[str]) -> _Sets:
    """Verified canonical set texts as columns: column-wise (:func:`_plain_sets`) when every box
    has only the keys a label without extras has, else with one pattern (a JSON parse builds one
    dict per box: half the metric engine's time on 37,000 boxes); ``json`` reads them instead
    when the pattern does not account for every box (a key it does not know)."""
    text = "\x1e".join(texts)
    plain = _plain_sets(text, len(texts))
    if plain is not None:
        return plain
    return _pattern_sets(texts, text, np.array([t.count('"class":') for t in texts], np.intp))


def _pattern_sets(texts: list[str], text: str, counts: np.ndarray) -> _Sets:
    """:func:`_set_columns` with the pattern (``text``: the texts joined by U+001E, ``counts``
    boxes each), or ``json`` when it does not account for every box."""
    found = _BOX_RE.findall(text)
    n = len(found)
    if n == counts.sum():
        # Each match holds one "class" key (a JSON string cannot hold `"class":` unescaped, so
        # every occurrence is a key) and matches do not overlap, so as many matches as keys
        # means every box matched exactly once, in order.
        area, cls, h, crowd, state, w, x, y = zip(*found, strict=True) if found else [()] * 8
        # Most sets have no given area, crowd region or rejected pre-label: skip those columns.
        return _Sets(
            counts,
            np.array([x, y, w, h], np.float64).T.reshape(-1, 4),
            np.array(cls, np.int64),
            np.array([v or "nan" for v in area], np.float64)
            if '"area":' in text
            else np.full(n, np.nan),
            np.array([v not in ("", "0") for v in crowd], bool)
            if '"iscrowd":' in text
            else np.zeros(n, bool),
            np.array([v != "rejected" for v in state], bool)
            if '"rejected"' in text
            else np.ones(n, bool),
        )
    dicts = [d for t in texts for d in json.loads(t)]
    return _Sets(
        np.array([len(json.loads(t)) for t in texts], np.intp),
        np.array([(d["x"], d["y"], d["w"], d["h"]) for d in dicts], np.float64).reshape(-1, 4),
        np.array([d["class"] for d in dicts], np.int64),
        np.array([d.get("area", np.nan) for d in dicts], np.float64),
        np.array([bool(d.get("iscrowd", 0)) for d in dicts], bool),
        np.array([d.get("state") != "rejected" for d in dicts], bool),
    )


# A canonical box with only the keys every label has (no area, author, crowd flag, model or
# score): its skeleton with the numbers taken out, one per origin and state. Its 5 value slots
# (class, h, w, x, y) are exactly the places where a ":" is followed by "," or "}" (the others
# are followed by a quote), also in the framing "[", ",", "]" and U+001E between sets.
_PLAIN_BOXES = {
    f'{{"class":,"h":,"origin":"{o}","state":"{s}","w":,"x":,"y":}}'.encode(): s != "rejected"
    for o in ORIGINS
    for s in STATES
}


def _plain_sets(text: str, n_sets: int) -> _Sets | None:
    """The ``n_sets`` sets of ``text`` (their canonical texts joined by U+001E) as columns, read
    with :mod:`.json_columns` if every box is a plain one (``_PLAIN_BOXES``): what the pattern
    and ``json`` give, without a string per number. None otherwise."""
    raw = text.encode()
    if len(raw) != len(text):  # not ASCII: a name or a string the plain boxes do not have
        return None
    bare = json_columns.skeleton(raw)
    found = _one_kind(bare, n_sets) or _marked(bare, n_sets)
    if found is None:
        return None
    counts, live = found
    read = json_columns.numbers(raw, b":", b",}")
    n = int(counts.sum())
    if read is None or len(read[0]) != 5 * n or not read[1][0::5].all():  # class: an integer
        return None
    cls, h, w, x, y = read[0].reshape(n, 5).T
    return _Sets(
        counts,
        np.column_stack([x, y, w, h]),
        cls.astype(np.int64),
        np.full(n, np.nan),
        np.zeros(n, bool),
        np.full(n, live) if isinstance(live, bool) else live,
    )


def _one_kind(bare: bytes, n_sets: int) -> tuple[np.ndarray, bool] | None:
    """(boxes a set, whether they are labels) when every box of the skeleton ``bare`` is the
    same plain box, as a version's sets mostly are: the skeleton is then rebuilt from the
    counts and compared, without marking 37,000 boxes one by one."""
    box = bare[bare.find(b"{") : bare.find(b"}") + 1]
    live = _PLAIN_BOXES.get(box)
    if live is None:
        return None
    parts = bare.split(b"\x1e")
    # a set of c boxes is "[" + c boxes joined by "," + "]": c * (len(box) + 1) + 1 bytes
    counts = [(len(p) - 1) // (len(box) + 1) for p in parts]
    frames = {c: b"[" + b",".join([box] * c) + b"]" for c in set(counts)}
    if len(parts) != n_sets or bare != b"\x1e".join([frames[c] for c in counts]):
        return None
    return np.array(counts, np.intp), live


def _marked(bare: bytes, n_sets: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(boxes a set, whether each box is a label) when every box of the skeleton ``bare`` is
    one of the plain boxes, in any mix; None otherwise."""
    for box, live in _PLAIN_BOXES.items():  # a box at a time, marked # (a label) or ! (not)
        if b"{" not in bare:  # every box is marked: the other kinds need no search
            break
        bare = bare.replace(box, b"#" if live else b"!")
    # what is left must be each set's boxes as marks: "[#,!,#]", "[]", joined by U+001E
    marks = bare.replace(b"!", b"#")
    sets = marks.split(b"\x1e")
    counts = np.fromiter(((len(p) - 1) // 2 for p in sets), np.intp, len(sets))
    framing = b"\x1e".join(b"[" + b",".join([b"#"] * int(c)) + b"]" for c in counts)
    if len(sets) != n_sets or marks != framing:
        return None
    return counts, np.frombuffer(bare.translate(None, b"[],\x1e"), np.uint8) == ord("#")


def _image_columns(
    shas: list[str], set_of: list[int], sets: _Sets, sizes: dict[str, tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The live boxes of images ``shas``, clipped to their image, with their COCO area, laid
    end to end: (boxes an image, boxes, classes, areas, iscrowd); ``set_of`` is each image's
    position in ``sets``."""
    which = np.array(set_of, np.intp)
    counts = sets.counts[which]
    starts = (np.cumsum(sets.counts) - sets.counts)[which]
    take = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
    box, cls, area = sets.boxes[take], sets.classes[take], sets.areas[take]
    crowd, keep = sets.crowd[take], sets.live[take]
    size = np.repeat(np.array([sizes[s] for s in shas], np.float64).reshape(-1, 2), counts, 0)
    x, y, w, h = box.T
    inside = (x >= 0) & (y >= 0) & (x + w <= size[:, 0]) & (y + h <= size[:, 1])
    for k in np.flatnonzero(~inside & keep):
        clipped = _clip(box[k], size[k])
        if clipped is None:
            keep[k] = False
        else:
            box[k] = clipped
    unset = np.flatnonzero(np.isnan(area))
    area[unset] = _default_areas(box[unset, 2] * box[unset, 3])
    if not keep.all():
        owner = np.repeat(np.arange(len(shas)), counts)[keep]
        box, cls, crowd, area = box[keep], cls[keep], crowd[keep], area[keep]
        counts = np.bincount(owner, minlength=len(shas))
    return counts, box, cls, area, crowd


def _default_areas(wh: np.ndarray) -> np.ndarray:
    """:func:`.boxes.default_area` of many boxes: ``round(w * h, 4)`` as Python rounds.

    The area decides small, medium or large at exactly 32**2 and 96**2, so it must be the
    exporter's to the last bit. numpy's ``round`` (scale, round half to even, unscale) gives the
    same double except where the scaled value lies within rounding error of a tie; those few
    are rounded by Python.
    """
    scaled = wh * 1e4
    out = np.rint(scaled) / 1e4
    near_tie = np.abs(scaled - np.floor(scaled) - 0.5) <= 1e-6 + 8 * np.spacing(scaled)
    for k in np.flatnonzero(near_tie | ~np.isfinite(scaled)):
        out[k] = round(float(wh[k]), 4)
    return out


def _clip(box: np.ndarray, size: np.ndarray) -> tuple[float, ...] | None:
    """A box reaching outside its image clipped as the exporter clips it (None: nothing left)."""
    from ..canonical import round_coord
    from ..formats.common import check_pixel_box

    x, y, w, h = (float(v) for v in box)
    clipped, _, _ = check_pixel_box(x, y, w, h, int(size[0]), int(size[1]), True)
    if clipped is None:
        return None
    return tuple(round_coord(v) for v in clipped)
