"""What a model file is: its format (from the bytes), its identity (sha256) and its ONNX header.

Why here, apart from the registry: these read bytes only — no database, no torch — so the
registry, the loader and the exporter share one notion of a model file and of its errors. The
format comes from the bytes, never the extension: a ``.pt`` is a zip archive holding
``data.pkl`` (or, in the legacy format, a bare pickle); an ``.onnx`` is a protobuf
``ModelProto``, whose ``metadata_props`` (class names, task) are parsed here without onnx or
onnxruntime. Every load reads a private copy of the file whose hash was just checked, so the
bytes that are loaded are the bytes that were verified (no swap between check and load).
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import LabelDeskError
from ..store.objects import hash_file

if TYPE_CHECKING:  # numpy and onnxruntime load only when an ONNX model is run
    pass

FORMATS = ("pt", "onnx")
#: Tasks whose predictions have boxes we can pre-label with (segmentation: its boxes only).
SUPPORTED_TASKS = ("detect", "segment")
NAME_RE = re.compile(r"^[^\s/\\][^/\\\n\r\t]{0,99}$")
_CHUNK = 1 << 20


class ModelError(LabelDeskError):
    """A model file we cannot register or run; the message says why and what to do."""


class ModelChangedError(ModelError):
    """The registered weights file is gone or its bytes changed since registration."""


class FullFlavourError(ModelError):
    """Needs torch and Ultralytics, which this installation (the review flavour) lacks."""


class UnsafeModelError(ModelError):
    """A ``.pt`` refers to code outside the safe allow-list; only ``--trust`` would load it."""


# --- reading the bytes ---------------------------------------------------------------------


#: The private copy's name; no external data file may take it (see ``external_locations``).
_COPY_NAMES = ("weights", "weights.pt", "weights.onnx")


@contextlib.contextmanager
def private_copy(path: Path, expected: str | None = None) -> Iterator[tuple[Path, str]]:
    """Copy ``path`` into a fresh private folder, hashing while copying; yield (copy, model id).

    Loading the copy (not the original) means the bytes that run are the bytes that were hashed:
    nobody can swap the file between our check and the load. An ONNX model whose tensors live
    in separate files (ONNX "external data", used for models over 2 GB) has those files copied
    beside it at the same relative locations, read from the locations the *copied* bytes name,
    and they count in the id (:func:`combined_id`). With ``expected``, a copy whose id differs
    raises :class:`ModelChangedError`. The folder is removed on exit.
    """
    folder = Path(tempfile.mkdtemp(prefix="labeldesk-model-"))  # mode 0o700
    try:
        copy = folder / "weights"
        try:
            digest = _copy_hashing(path, copy)
        except FileNotFoundError:
            raise ModelChangedError(gone_message(path)) from None
        except IsADirectoryError:
            raise ModelError(f"{path} is a folder, not a model file") from None
        except OSError as e:
            raise ModelError(f"cannot copy {path} to check it: {e.strerror or e}") from None
        locations = external_locations(copy, path) if read_onnx_header(copy) is not None else []
        if locations:
            parts = {}
            for loc in locations:
                source = path.parent / loc
                dest = folder / loc
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    parts[loc] = _copy_hashing(source, dest, regular_only=True)
                except FileNotFoundError:
                    raise ModelChangedError(
                        f"model file {path} keeps its weights in {loc}, which is missing "
                        f"(expected at {source}); copy it back beside the model"
                    ) from None
                except OSError as e:
                    raise ModelError(f"cannot copy {source}: {e.strerror or e}") from None
            digest = combined_id(digest, parts)
        if expected is not None and digest != expected:
            raise ModelChangedError(changed_message(path, expected, digest))
        yield copy, digest
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy_hashing(source: Path, dest: Path | None, *, regular_only: bool = False) -> str:
    """Copy ``source`` to ``dest`` (None: only hash) and return its sha256, from one read.

    ``regular_only`` refuses anything but a regular file *after* opening it without blocking
    (a FIFO named as external data must not hang us, a device must not be read forever).
    """
    h = hashlib.sha256()
    fd = os.open(source, os.O_RDONLY | (os.O_NONBLOCK if regular_only else 0))
    with open(fd, "rb") as src, contextlib.ExitStack() as stack:
        if regular_only and not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise ModelError(f"{source} is not a regular file; refused as external data")
        if regular_only:
            os.set_blocking(src.fileno(), True)
        dst = stack.enter_context(open(dest, "wb")) if dest is not None else None
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            if dst is not None:
                dst.write(chunk)
    return h.hexdigest()


def combined_id(onnx_sha: str, parts: dict[str, str]) -> str:
    """The id of an ONNX model with external data: one hash over the model and every data file.

    A model with no external data keeps the plain sha256 of its file as its id, so existing
    registrations and caches stay valid; with data files, changing any of them changes the id.
    """
    text = "labeldesk-onnx-external-data-v1\n" + onnx_sha + "\n"
    text += "".join(f"{loc}\t{parts[loc]}\n" for loc in sorted(parts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_id(path: Path) -> str:
    """The id :func:`private_copy` gives the model at ``path``, computed without a copy."""
    sha = hash_file(path)[0]
    if read_onnx_header(path) is None:
        return sha
    locations = external_locations(path, path)
    if not locations:
        return sha
    parts = {}
    for loc in locations:
        try:
            parts[loc] = _copy_hashing(path.parent / loc, None, regular_only=True)
        except FileNotFoundError:
            return combined_id(sha, {**parts, loc: "missing"})
    return combined_id(sha, parts)


def gone_message(path: Path | str) -> str:
    return f"model file {path} is missing; register it again with `labeldesk model add`"


def changed_message(path: Path | str, expected: str, found: str) -> str:
    return (
        f"model file {path} changed since it was registered (sha256 was {expected[:12]}, "
        f"is now {found[:12]}); it is not used until you register it again with "
        f"`labeldesk model add {path} --name NAME`"
    )


def sniff_format(path: Path) -> str:
    """``pt`` or ``onnx`` from the file's bytes; raises :class:`ModelError` for anything else."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        try:
            import zipfile  # sniffing only; `log` and `model list` never need it

            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile as e:
            raise ModelError(f"{path}: damaged zip archive ({e})") from None
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "pt"
        raise ModelError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl)")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pt"  # torch.save's legacy (non-zip) format: a bare pickle
    if head and read_onnx_header(path) is not None:
        return "onnx"
    raise ModelError(
        f"{path} is not a model file we can run: its bytes are neither a PyTorch checkpoint "
        "(.pt: a zip archive with data.pkl, or a pickle) nor an ONNX model (.onnx)"
    )


# ONNX ModelProto: field number -> protobuf wire type, for the fields we check or read.
_ONNX_WIRE = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2}


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: Any, pos: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """Protobuf fields of buf[pos:end] as (number, wire type, int or (start, stop))."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ValueError("truncated")
            yield number, wire, (pos, pos + size)
            pos += size
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise ValueError("truncated")
            yield number, wire, (pos, pos + size)
            pos += size
        else:
            raise ValueError(f"wire type {wire}")


def read_onnx_header(path: Path) -> dict[str, str] | None:
    """The ``metadata_props`` of an ONNX ModelProto, or None if the bytes are not one.

    A ModelProto must parse as protobuf to the last byte, carry an ``ir_version`` (a small
    integer) and a ``graph``; the known fields must have their declared wire types. That is
    enough to tell an ONNX model from a text file, an image or a renamed checkpoint, and reads
    Ultralytics' metadata (names, task, imgsz) without onnx or onnxruntime.
    """
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        ir_version, graph, meta = None, False, {}
        try:
            for number, wire, value in _fields(buf, 0, size):
                expected = _ONNX_WIRE.get(number)
                if expected is not None and wire != expected:
                    return None
                if number == 1:
                    ir_version = value
                elif number == 7:
                    graph = True
                elif number == 14:
                    key = val = ""
                    for n2, w2, v2 in _fields(buf, *value):
                        if w2 == 2 and n2 in (1, 2):
                            text = bytes(buf[v2[0] : v2[1]]).decode("utf-8")
                            key, val = (text, val) if n2 == 1 else (key, text)
                    meta[key] = val
        except (ValueError, UnicodeDecodeError):
            return None
    if ir_version is None or not 1 <= ir_version <= 100 or not graph:
        return None
    return meta


# TensorProto fields: external_data (13, key/value pairs), data_location (14, 1 = EXTERNAL).
# Tensors sit in GraphProto.initializer (5) and sparse_initializer (15, SparseTensorProto
# values 1 / indices 2), in node attributes (NodeProto.attribute 5: AttributeProto t 5,
# tensors 10, sparse_tensor 22, sparse_tensors 23) and in subgraphs (g 6, graphs 11), and in
# the nodes of ModelProto.functions (25, FunctionProto.node 7).
_GRAPH_TENSOR, _GRAPH_SPARSE, _GRAPH_NODE = 5, 15, 1
_ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE = (5, 10), (6, 11), (22, 23)


def external_locations(path: Path, shown: Path | str) -> list[str]:
    """The external data files an ONNX model at ``path`` names, each relative to its folder.

    Every location must stay inside the model's folder: a relative path without ``..``, not
    through a symbolic link that leads out. Anything else is refused (all of them listed),
    because registering the model would otherwise read, hash and load any file on the machine.
    """
    size = path.stat().st_size
    found: set[str] = set()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:

        def text(span: tuple[int, int]) -> str:
            return bytes(buf[span[0] : span[1]]).decode("utf-8")

        def tensor(span: tuple[int, int]) -> None:
            location, external = None, False
            for n, w, v in _fields(buf, *span):
                if n == 13 and w == 2:
                    entry = {k: text(x) for k, wk, x in _fields(buf, *v) if wk == 2 and k in (1, 2)}
                    if entry.get(1) == "location":
                        location = entry.get(2, "")
                elif n == 14 and w == 0:
                    external = v == 1
            if external:
                found.add(location if location is not None else "")

        def sparse(span: tuple[int, int]) -> None:
            for n, w, v in _fields(buf, *span):
                if w == 2 and n in (1, 2):
                    tensor(v)

        def node(span: tuple[int, int]) -> None:
            for n, w, v in _fields(buf, *span):
                if n == 5 and w == 2:
                    for an, aw, av in _fields(buf, *v):
                        if aw != 2:
                            continue
                        if an in _ATTR_TENSORS:
                            tensor(av)
                        elif an in _ATTR_GRAPHS:
                            graph(av)
                        elif an in _ATTR_SPARSE:
                            sparse(av)

        def graph(span: tuple[int, int]) -> None:
            for n, w, v in _fields(buf, *span):
                if w != 2:
                    continue
                if n == _GRAPH_TENSOR:
                    tensor(v)
                elif n == _GRAPH_SPARSE:
                    sparse(v)
                elif n == _GRAPH_NODE:
                    node(v)

        try:
            for n, w, v in _fields(buf, 0, size):
                if n == 7 and w == 2:
                    graph(v)
                elif n == 25 and w == 2:
                    for fn, fw, fv in _fields(buf, *v):
                        if fn == 7 and fw == 2:
                            node(fv)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ModelError(f"{shown}: damaged ONNX model ({e})") from None
    folder = Path(shown).parent.resolve()
    bad = []
    for loc in sorted(found):
        pure = PurePosixPath(loc)
        if not loc or "\x00" in loc or "\\" in loc:
            bad.append(f"{loc!r}: not a file name")
        elif pure.is_absolute() or ".." in pure.parts:
            bad.append(f"{loc!r}: outside the model's folder")
        elif pure.parts[0] in _COPY_NAMES:
            bad.append(f"{loc!r}: a name LabelDesk uses for its private copy; rename the file")
        elif not (folder / loc).resolve().is_relative_to(folder):
            bad.append(f"{loc!r}: a link that leads outside the model's folder")
    if bad:
        raise ModelError(
            f"{shown} keeps tensors in external data files at locations that are refused "
            "(they must be files in the model's folder or below it): " + "; ".join(bad)
        )
    return sorted(found)
