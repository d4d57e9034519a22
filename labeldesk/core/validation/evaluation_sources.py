"""Where an evaluation's detections come from: a COCO results file, or a model (see
:mod:`.model_eval`), tied to the images of a version by hash.

Split out of :mod:`.evaluation` (which re-exports these names). A results file is checked in
full before anything is evaluated, and every bad entry is listed; a file without any is read
column-wise (the per-entry checks ran 40,000 times per ``validate`` and cost twice the metric
engine's time), the entries being checked one by one only to list what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import InputError, Problem, capped
from ..validators import is_int, is_number
from . import json_columns
from .per_image import PerImage

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .evaluation_index import ImageIndex

#: image hash -> (boxes (N, 4) xywh, classes (N,), scores (N,))
Detections = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


class FlatDetections(PerImage[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Detections read column-wise, which keep their columns: ``flat`` is (the images that
    have detections, in index order; detections an image; boxes; classes; scores), taken as
    they are by the engine; an image's own arrays are cut when asked for (:mod:`.per_image`)."""

    def __init__(
        self,
        images: Sequence[str],
        counts: np.ndarray,
        box: np.ndarray,
        cls: np.ndarray,
        score: np.ndarray,
    ) -> None:
        super().__init__(images, counts)
        self.flat = (self.images, counts, box, cls, score)

    def _cut(self, s: int, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, _, box, cls, score = self.flat
        return box[s:e], cls[s:e], score[s:e]


def read_results_file(path: Path | str) -> tuple[list[Any], str]:
    """A COCO results file: its entries and the sha256 of its bytes (the source's identity)."""
    path = Path(path)
    data, digest = _read_bytes(path)
    return _parse_results(path, data), digest


def _read_bytes(path: Path) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(
            f"cannot read predictions file {path}", [Problem(str(path), e.strerror or str(e))]
        ) from None
    return data, hashlib.sha256(data).hexdigest()


def _parse_results(path: Path, data: bytes) -> list[Any]:
    try:
        results = json.loads(data)
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path} is not a COCO results file", [Problem(str(path), f"not UTF-8 text: {e}")]
        ) from None
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path} is not a COCO results file",
            [Problem(f"{path}:{e.lineno}:{e.colno}", f"malformed JSON: {e.msg}")],
        ) from None
    if not isinstance(results, list):
        raise InputError(
            f"{path} is not a COCO results file",
            [
                Problem(
                    str(path),
                    f"expected a JSON list of detections, found a {type(results).__name__}",
                )
            ],
        )
    return results


# The layout ``json.dumps`` writes a list of COCO results in (default separators, and compact
# ones): one entry's skeleton with its numbers taken out, the separator between entries, and the
# bytes before a value slot. In these skeletons exactly the 7 value slots of an entry (image_id,
# category_id, the 4 bbox numbers, score) sit between a byte of ``before`` and one of ",]}"
# (json_columns, check 2): elsewhere a separator is followed by a quote, "[" or "{".
_LAYOUTS = tuple(
    (
        b'{"image_id"' + colon + comma + b'"category_id"' + colon + comma + b'"bbox"' + colon
        + b"[" + comma * 3 + b"]" + comma + b'"score"' + colon + b"}",
        comma,
        colon[-1:] + b"[" + comma[-1:],
    )
    for colon, comma in ((b": ", b", "), (b":", b","))
)  # fmt: skip


def _plain_results(data: bytes) -> tuple[np.ndarray, ...] | None:
    """(image ids, category ids, boxes, scores) of a results file in the layout ``json.dumps``
    writes, read column-wise (:mod:`.json_columns`): what ``json.loads`` and :func:`_columns`
    give for it, without a Python object per entry. None for any other text (the caller then
    parses it with json: other key orders, file names, extra keys, exponents, bad entries)."""
    text = data.strip(b" \t\n\r")
    bare = json_columns.skeleton(text)
    n, layout = 0, None
    for entry, comma, before in _LAYOUTS:
        # n entries take 2 + n * len(entry) + (n - 1) * len(comma) bytes of skeleton
        n, extra = divmod(len(bare) - 2 + len(comma), len(entry) + len(comma))
        if n and not extra and bare == b"[" + comma.join([entry] * n) + b"]":
            layout = before
            break
    if layout is None:
        return None
    read = json_columns.numbers(text, layout, b",]}")
    if read is None or len(read[0]) != 7 * n:
        return None
    values, ints = read[0].reshape(n, 7), read[1].reshape(n, 7)
    if not (ints[:, 0].all() and ints[:, 1].all()):  # ids written as 3.0: json's float
        return None
    return (
        values[:, 0].astype(np.int64),
        values[:, 1].astype(np.int64),
        np.ascontiguousarray(values[:, 2:6]),
        np.ascontiguousarray(values[:, 6]),
    )


def detections_from_results(
    index: ImageIndex, results: Sequence[Any], where: str = "results"
) -> Detections:
    """Turn COCO results into detections per image hash, or list every bad entry.

    An entry names its image by ``image_id``: an integer is the id ``labeldesk export coco``
    gives the image in this version (a COCO-imported image keeps its original id); a string is
    a file name, as is a ``file_name`` key (the exported name, else an alias, see
    :class:`ImageIndex`). ``category_id`` is a class id of the version, ``bbox`` is
    ``[x, y, w, h]`` in pixels of the upright image, ``score`` a finite number
    (:mod:`.validators`: not a bool, not NaN).
    """
    found = _columns(index, results)
    return found if found is not None else _one_by_one(index, results, where)


# Exactly the types json.loads gives for numbers; anything else (a bool, a numpy scalar from a
# model adapter, a string) sends the file through the entry-by-entry checks.
_NUMBER_TYPES = frozenset((int, float))


def _columns(index: ImageIndex, results: Sequence[Any]) -> Detections | None:
    """The detections of ``results`` read column-wise, or None if any entry is not plainly
    valid (then :func:`_one_by_one` lists what is wrong, or accepts them one by one)."""
    if not results:
        return {}
    if set(map(type, results)) != {dict}:
        return None
    try:
        cats = [e["category_id"] for e in results]
        bboxes = [e["bbox"] for e in results]
        scores = [e["score"] for e in results]
    except KeyError:
        return None
    try:
        keys: Sequence[Any] = list(map(itemgetter("image_id"), results))
    except KeyError:  # images named by file_name (None: neither key, refused below)
        keys = [e["image_id"] if "image_id" in e else e.get("file_name") for e in results]
    if set(map(type, cats)) != {int} or not set(map(type, scores)) <= _NUMBER_TYPES:
        return None
    if set(map(type, bboxes)) != {list} or set(map(len, bboxes)) != {4}:
        return None
    if not set(map(type, chain.from_iterable(bboxes))) <= _NUMBER_TYPES:
        return None
    where = _image_positions(index, keys)
    if where is None:
        return None
    box = np.array(bboxes, np.float64)
    return _from_arrays(index, where, box, np.array(cats, np.int64), np.array(scores, np.float64))


def _from_arrays(
    index: ImageIndex, where: np.ndarray, box: np.ndarray, cls: np.ndarray, score: np.ndarray
) -> Detections | None:
    """Detections per image from columns (``where``: each entry's position in ``index.shas``),
    or None if an entry is not plainly valid (then :func:`_one_by_one` says what is wrong)."""
    if not (np.isfinite(box).all() and np.isfinite(score).all() and (box[:, 2:] >= 0).all()):
        return None
    if not np.isin(cls, [int(c["id"]) for c in index.version.classes]).all():
        return None
    order = np.argsort(where, kind="stable")  # each image's detections keep the file's order
    where = where[order]
    box, cls, score = box[order], cls[order], score[order]
    cuts = [*np.flatnonzero(np.r_[True, where[1:] != where[:-1]]).tolist(), len(where)]
    shas = [index.shas[i] for i in where[cuts[:-1]].tolist()]
    return FlatDetections(shas, np.diff(cuts), box, cls, score)


def _image_positions(index: ImageIndex, keys: Sequence[Any]) -> np.ndarray | None:
    """Each entry's image as a position in ``index.shas``; None if one names no single image."""
    pos = {sha: i for i, sha in enumerate(index.shas)}
    types = set(map(type, keys))
    if types == {int}:
        at_id = {i: pos[sha] for sha, i in index.coco_ids.items()}
        try:
            return np.fromiter(map(at_id.__getitem__, keys), np.intp, len(keys))
        except KeyError:
            return None
    if not types <= {int, str}:
        return None
    by_id, exact, folded = index._by_id(), *index._by_name()
    named: dict[Any, int] = {}
    out = np.empty(len(keys), np.intp)
    for n, key in enumerate(keys):
        if key not in named:
            sha, why = _image_of({"image_id": key}, by_id, exact, folded, index.aliases)
            if why is not None or sha is None:
                return None
            named[key] = pos[sha]
        out[n] = named[key]
    return out


def _id_positions(index: ImageIndex, ids: np.ndarray) -> np.ndarray | None:
    """Each image id's position in ``index.shas``; None if one is not an image's id."""
    known = np.fromiter((index.coco_ids[s] for s in index.shas), np.int64, len(index.shas))
    order = np.argsort(known)
    at = np.minimum(np.searchsorted(known[order], ids), len(known) - 1)
    if len(known) == 0 or not (known[order][at] == ids).all():
        return None
    return order[at]


def _one_by_one(index: ImageIndex, results: Sequence[Any], where: str) -> Detections:
    """:func:`detections_from_results` entry by entry: every bad entry is listed, and valid
    entries of other types than JSON's (numpy scalars, tuples) are accepted."""
    by_id = index._by_id()
    exact, folded = index._by_name()
    classes = {int(c["id"]) for c in index.version.classes}
    problems: list[Problem] = []
    cols: dict[str, tuple[list, list, list]] = {}
    for n, e in enumerate(results):
        at = f"{where}[{n}]"
        if not isinstance(e, Mapping):
            problems.append(Problem(at, "not an object"))
            continue
        missing = [k for k in ("category_id", "bbox", "score") if k not in e]
        if "image_id" not in e and "file_name" not in e:
            missing.insert(0, "image_id")
        if missing:
            problems.append(Problem(at, f"missing {', '.join(missing)}"))
            continue
        sha, why = _image_of(e, by_id, exact, folded, index.aliases)
        bad = [why] if why else []
        cat = e["category_id"]
        if not is_int(cat):
            bad.append(f"category_id must be an integer: {cat!r}")
        elif cat not in classes:
            bad.append(f"category_id {cat} is not a class of version {index.version.short}")
        bbox = e["bbox"]
        ok = isinstance(bbox, list | tuple) and len(bbox) == 4 and all(map(is_number, bbox))
        if not ok or bbox[2] < 0 or bbox[3] < 0:
            bad.append(f"bbox must be [x, y, w, h]: 4 finite numbers, w, h >= 0: {bbox!r}")
        if not is_number(e["score"]):
            bad.append(f"score must be a finite number: {e['score']!r}")
        if bad:
            problems.extend(Problem(at, b) for b in bad)
            continue
        assert sha is not None
        c = cols.setdefault(sha, ([], [], []))
        c[0].append([float(v) for v in bbox])
        c[1].append(int(cat))
        c[2].append(float(e["score"]))
    if problems:
        known = ", ".join(f"{c['id']} {c['name']}" for c in index.version.classes) or "none"
        raise InputError(
            f"{len({p.where for p in problems})} of {len(results)} detections in {where} are "
            f"not valid for version {index.version.short} (its class ids: {known})",
            capped(problems),
        )
    return {
        sha: (
            np.asarray(b, dtype=np.float64).reshape(-1, 4),
            np.asarray(c, dtype=np.int64),
            np.asarray(s, dtype=np.float64),
        )
        for sha, (b, c, s) in cols.items()
    }


def _image_of(
    e: Mapping[str, Any],
    by_id: dict[int, str],
    exact: dict[str, str],
    folded: dict[str, str],
    aliases: dict[str, str | None],
) -> tuple[str | None, str | None]:
    """The image hash an entry names, or why it names none."""
    key = e.get("image_id", e.get("file_name"))
    if is_int(key):
        sha = by_id.get(key)
        return (sha, None) if sha else (None, f"image_id {key} is not an image of this version")
    if isinstance(key, str):
        sha = exact.get(key) or folded.get(key.casefold())
        if sha:
            return sha, None
        if key in aliases:
            sha = aliases[key]
            return (sha, None) if sha else (None, f"file name {key!r} names several images")
        return None, f"no image of this version is named {key!r}"
    return None, f"image_id must be an integer id or a file name: {key!r}"


@dataclass(frozen=True)
class Source:
    """Where detections come from, and its identity for the record.

    ``hash`` is the sha256 of a predictions file's bytes, or a model's id (the sha256 of its
    weights). ``detections(index)`` gives the detections for the images of ``index`` (any
    version): a model would predict (or read its cache) for them; a predictions file returns
    what it holds for those images.
    """

    kind: str
    hash: str
    name: str
    params: Mapping[str, Any]
    detections: Callable[[ImageIndex], Detections] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "hash": self.hash, "name": self.name, "params": self.params}


class _ReadFile(NamedTuple):
    """A predictions file's bytes, their sha256, and its columns if it is in the plain layout."""

    data: bytes
    digest: str
    plain: tuple[np.ndarray, ...] | None


def _read_file(path: Path) -> _ReadFile:
    """Read and take apart a predictions file: bytes in, arrays out, nothing shared (so it can
    run on a thread of its own, see :class:`PredictionsFile`)."""
    data, digest = _read_bytes(path)
    return _ReadFile(data, digest, _plain_results(data))


def predictions_source(path: Path | str, index: ImageIndex) -> Source:
    """A COCO results file made for the version of ``index``; checked now, in full.

    Its image ids and names are read as that version's export gives them; the detections are
    then tied to image hashes, so the same file can be judged on another version (a baseline)
    whose export may number the images differently.
    """
    return _bind(Path(path), _read_file(Path(path)), index)


class PredictionsFile:
    """A predictions file to judge on a version not read yet: called with the version's
    :class:`ImageIndex`, it gives its :class:`Source` as :func:`predictions_source` does.

    :meth:`prefetch` starts reading the file, hashing it and taking its numbers apart (a fifth
    of a ``validate`` of 5,000 images) on a thread of its own, so that it runs while the
    caller reads the version's labels (SQLite, hashing and numpy let both run at once). The
    work touches nothing but the file; its errors (an unreadable file) are raised when the
    source is asked for, as :func:`predictions_source` raises them.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._read: Future[_ReadFile] | None = None

    def prefetch(self) -> None:
        if self._read is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(1, thread_name_prefix="labeldesk-predictions")
            self._read = pool.submit(_read_file, self.path)
            pool.shutdown(wait=False)  # the thread ends with its one task

    def __call__(self, index: ImageIndex) -> Source:
        read = self._read.result() if self._read is not None else _read_file(self.path)
        return _bind(self.path, read, index)


def _bind(path: Path, read: _ReadFile, index: ImageIndex) -> Source:
    """The :class:`Source` of a read predictions file, its entries tied to ``index``'s images
    (column-wise if the file is plain and valid; else parsed by json, entry by entry)."""
    found, n = None, 0
    if read.plain is not None:
        ids, cls, box, score = read.plain
        where = _id_positions(index, ids)
        found = _from_arrays(index, where, box, cls, score) if where is not None else None
        n = len(ids)
    if found is None:  # any other layout, or an entry to refuse: json, entry by entry if need be
        results = _parse_results(path, read.data)
        found = detections_from_results(index, results, where=str(path))
        n = len(results)

    def detections(other: ImageIndex) -> Detections:
        keep = set(other.shas)
        if keep.issuperset(found):  # all of them (its own version): as read, columns and all
            return found
        return {sha: d for sha, d in found.items() if sha in keep}

    return Source("predictions", read.digest, str(path), {"detections": n}, detections)
