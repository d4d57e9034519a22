"""The model registry, and the one place that turns a weights file into a runnable model.

Why it is built this way:

* A model is identified by the sha256 of its weights file, so the prediction cache is keyed by
  exactly the bytes that produced it. A file that changed since it was registered is refused
  (never silently re-used under the old identity) until it is registered again.
* The format comes from the bytes, never the extension: a ``.pt`` is a zip archive holding
  ``data.pkl`` (or, in the legacy format, a bare pickle); an ``.onnx`` is a protobuf
  ``ModelProto`` with an ``ir_version`` and a ``graph``. Anything else is refused.
* A ``.pt`` file is a pickle, and unpickling can run arbitrary code. By default it is loaded
  through Ultralytics' safe loader (``torch.load(weights_only=True)`` with Ultralytics'
  allow-list of model classes), which refuses any other global *without running it*. Full
  unpickling happens only when the caller passes ``trust=True`` (``--trust`` on the command
  line), and every load reads a private copy of the file whose hash was just checked, so the
  bytes that are loaded are the bytes that were verified (no swap between check and load).
* Class names are read from the model itself: for ``.pt`` from the checkpoint, for ``.onnx``
  from the ``metadata_props`` Ultralytics writes at export, parsed here from the protobuf
  without onnx or onnxruntime. They map to a version's classes by name; unknown names are
  reported, and added (to the user's open review session, see :func:`add_model`) only on request.
* torch and ultralytics are imported inside functions only, after forcing offline mode with no
  auto-install, so opening the GUI or ``labeldesk --help`` never loads them and nothing here
  ever reaches for the network.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import mmap
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .db import ProjectDatabase as Database
from .db import named
from .errors import LabelDeskError
from .objects import hash_file
from .project import Project, now_iso

if TYPE_CHECKING:  # numpy and onnxruntime load only when an ONNX model is run
    from .onnx_decode import OnnxDetector

FORMATS = ("pt", "onnx")
#: Tasks whose predictions have boxes we can pre-label with (segmentation: its boxes only).
SUPPORTED_TASKS = ("detect", "segment")
_NAME_RE = re.compile(r"^[^\s/\\][^/\\\n\r\t]{0,99}$")
_CHUNK = 1 << 20


class ModelError(LabelDeskError):
    """A model file we cannot register or run; the message says why and what to do."""


class ModelChangedError(ModelError):
    """The registered weights file is gone or its bytes changed since registration."""


class FullFlavourError(ModelError):
    """Needs torch and Ultralytics, which this installation (the review flavour) lacks."""


class UnsafeModelError(ModelError):
    """A ``.pt`` refers to code outside the safe allow-list; only ``--trust`` would load it."""


@dataclass(frozen=True)
class ModelInfo:
    """One row of the ``model`` table."""

    id: str  # sha256 of the weights file (with its ONNX external data: combined_id)
    name: str
    path: str
    format: str
    task: str
    class_names: list[str]
    trained_on: str | None
    trusted: bool
    added_at: str
    added_by: str

    @property
    def short(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "format": self.format,
            "task": self.task,
            "class_names": self.class_names,
            "trained_on": self.trained_on,
            "trusted": self.trusted,
            "added_at": self.added_at,
            "added_by": self.added_by,
        }


@dataclass
class AddReport:
    """What :func:`add_model` did: the model row and how its classes meet the version's."""

    model: ModelInfo
    already: bool = False  # the same bytes were registered under this name before
    replaced: str | None = None  # id of the earlier model of this name (renamed name@id12)
    version: str | None = None  # the version the classes were compared with
    unknown_classes: list[str] = field(default_factory=list)
    added_classes: list[str] = field(default_factory=list)
    session: int | None = None  # review session the classes were added to

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.to_json(),
            "already_registered": self.already,
            "replaced": self.replaced,
            "version": self.version,
            "unknown_classes": self.unknown_classes,
            "added_classes": self.added_classes,
            "session": self.session,
        }


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
            raise ModelChangedError(_gone(path)) from None
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
            raise ModelChangedError(_changed(path, expected, digest))
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


def _gone(path: Path | str) -> str:
    return f"model file {path} is missing; register it again with `labeldesk model add`"


def _changed(path: Path | str, expected: str, found: str) -> str:
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


# --- reading names and task ------------------------------------------------------------------


def ultralytics():
    """Import Ultralytics offline, with no auto-install and quiet logs; return the module.

    The environment must be set before the first import: Ultralytics reads it then (and would
    otherwise probe the network to decide whether it is online).
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import ultralytics as ul
    except ImportError as e:  # the review flavour: say what is missing and how to get it
        from .flavour import FULL_ONLY

        raise FullFlavourError(
            f"{e.name or 'ultralytics'} is not installed here: .pt models, training and ONNX "
            f"export {FULL_ONLY.replace('needs', 'need', 1)}"
        ) from None
    return ul


def _names_list(names: Any) -> list[str]:
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list | tuple):
        return [str(n) for n in names]
    raise ModelError("the model does not say its class names")


_UNSAFE_HINT = (
    "A .pt file is a pickle: loading it fully can run any code it contains. Only if you trust "
    "where it came from, run again with --trust (or export it to ONNX, which carries no code)."
)


def _safe_load_checkpoint(copy: Path, shown: Path | str, trust: bool) -> dict:
    """``torch_safe_load`` on the private copy: allow-listed globals only unless ``trust``."""
    ultralytics()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(copy), safe_only=not trust)
    except TypeError as e:
        text = str(e)
        if not trust and "outside the supported" in text:
            cause = str(e.__cause__ or "")
            found = re.findall(r"GLOBAL ([\w.]+)", cause)
            what = f" (it refers to {', '.join(sorted(set(found)))})" if found else ""
            raise UnsafeModelError(
                f"{shown} was refused by safe loading: it refers to code outside Ultralytics' "
                f"allow-list of model classes{what}; nothing in it was run. {_UNSAFE_HINT}"
            ) from None
        reason = "TorchScript archive" if "TorchScript" in text else "damaged or not a checkpoint"
        raise ModelError(f"cannot load {shown}: {reason}") from None
    except ModuleNotFoundError as e:
        raise ModelError(f"cannot load {shown}: it needs the module {e.name!r}") from None
    if not isinstance(ckpt, dict):
        raise ModelError(f"{shown} is not an Ultralytics checkpoint")
    return ckpt


def _pt_meta(copy: Path, shown: Path | str, trust: bool) -> tuple[str, list[str]]:
    ultralytics()  # first: without it (the review flavour) the error says what to install
    import torch

    ckpt = _safe_load_checkpoint(copy, shown, trust)
    model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{shown} is not an Ultralytics checkpoint (it holds no model)")
    from ultralytics.nn.tasks import guess_model_task

    task = getattr(model, "task", None) or guess_model_task(model)
    return str(task), _names_list(getattr(model, "names", None))


def _onnx_meta(copy: Path, shown: Path | str) -> tuple[str, list[str], dict[str, Any]]:
    meta = read_onnx_header(copy) or {}
    if "names" not in meta:
        raise ModelError(
            f"{shown} is an ONNX model without Ultralytics metadata (class names, task); "
            "export it with Ultralytics (`yolo export model=best.pt format=onnx`)"
        )
    try:
        names = ast.literal_eval(meta["names"])
        extra = {k: ast.literal_eval(meta[k]) for k in ("imgsz", "args") if meta.get(k, "").strip()}
    except (ValueError, SyntaxError):
        raise ModelError(f"{shown}: unreadable Ultralytics metadata") from None
    return meta.get("task", "detect"), _names_list(names), extra


def _check_task(task: str, shown: Path | str) -> None:
    if task not in SUPPORTED_TASKS:
        raise ModelError(
            f"{shown} is a {task!r} model; pre-labelling needs boxes, so only detection models "
            "(and segmentation models, whose boxes are used) are supported"
        )


# --- the registry ------------------------------------------------------------------------


def _row(r: sqlite3.Row) -> ModelInfo:
    """A ``SELECT {_COLUMNS}`` row read with :func:`~.db.named`."""
    return ModelInfo(
        id=r["id"],
        name=r["name"],
        path=r["path"],
        format=r["format"],
        task=r["task"],
        class_names=json.loads(r["class_names"]),
        trained_on=r["trained_on"],
        trusted=bool(r["trusted"]),
        added_at=r["added_at"],
        added_by=r["added_by"],
    )


_COLUMNS = "id, name, path, format, task, class_names, trained_on, trusted, added_at, added_by"


def list_models(db: Database) -> list[ModelInfo]:
    return [_row(r) for r in named(db, f"SELECT {_COLUMNS} FROM model ORDER BY added_at, name")]


def find_model(db: Database, name_or_id: str) -> ModelInfo:
    """The model of that name, else of that id (or unique id prefix of 4+ hex digits)."""
    row = named(db, f"SELECT {_COLUMNS} FROM model WHERE name = ?", [name_or_id]).fetchone()
    if row is None and re.fullmatch(r"[0-9a-f]{4,64}", name_or_id):
        rows = named(
            db, f"SELECT {_COLUMNS} FROM model WHERE id LIKE ? LIMIT 2", [name_or_id + "%"]
        ).fetchall()
        if len(rows) > 1:
            raise ModelError(f"{name_or_id!r} names more than one model; give more digits")
        row = rows[0] if rows else None
    if row is None:
        known = ", ".join(m.name for m in list_models(db)) or "none registered"
        raise ModelError(
            f"no model {name_or_id!r} (known: {known}); register one with `labeldesk model add`"
        )
    return _row(row)


def _current_hash(info: ModelInfo) -> str | None:
    """The id of the registered file now (with its external data); None if it is gone."""
    try:
        return model_id(Path(info.path))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ModelError(f"cannot read model file {info.path}: {e.strerror or e}") from None


def file_state(info: ModelInfo) -> str:
    """``ok``, ``changed``, ``missing`` (or ``unreadable``): does the file hold those bytes?"""
    try:
        found = _current_hash(info)
    except ModelError:
        return "unreadable"
    return "missing" if found is None else "ok" if found == info.id else "changed"


def get_model(project: Project, name_or_id: str, *, verify: bool = True) -> ModelInfo:
    """The registered model, refused if its file is gone or changed since registration."""
    info = find_model(project.db, name_or_id)
    if verify:
        found = _current_hash(info)
        if found is None:
            raise ModelChangedError(_gone(info.path))
        if found != info.id:
            raise ModelChangedError(_changed(info.path, info.id, found))
    return info


def add_model(
    project: Project,
    path: Path | str,
    name: str | None = None,
    *,
    trust: bool = False,
    add_classes: bool = False,
    version_ref: str = "main",
    within: Callable[[str], None] | None = None,
    inspected: tuple[str, list[str]] | None = None,
) -> AddReport:
    """Register the weights at ``path`` (sha256, format, task, class names) under ``name``.

    Registering a file that is already registered under the same name only refreshes its path.
    Registering new bytes under a name in use (a retrained or edited file) keeps the old row,
    renamed ``name@<id12>``, because cached predictions and review sessions refer to it.

    The model's classes are compared by name with those of ``version_ref``; the unknown ones
    are reported. With ``add_classes`` they are added to the user's newest open review session
    on ``main`` (one is started if there is none): classes only enter the project through a
    committed version, so they become project classes when that session is committed, and
    meanwhile the session shows the model's pre-labels of those classes for review.
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    name = (name or path.stem).strip()
    if not _NAME_RE.match(name) or "@" in name:
        raise ModelError(f"bad model name {name!r}: up to 100 characters, no '/', '\\' or '@'")
    with private_copy(path) as (copy, sha):
        fmt = sniff_format(copy)
        if fmt == "pt" and inspected is not None:
            # Task and classes already read, through the same safe loader, by the process that
            # made the file (the training child): importing torch here would cost seconds.
            task, names = inspected
        elif fmt == "pt":
            loadable = copy.rename(copy.with_suffix(".pt"))
            task, names = _pt_meta(loadable, path, trust)
        else:
            task, names, _ = _onnx_meta(copy, path)
    _check_task(task, path)

    db = project.db
    report: AddReport
    with project.transaction():
        same = named(db, f"SELECT {_COLUMNS} FROM model WHERE id = ?", [sha]).fetchone()
        old = _row(same) if same is not None else None
        if old is not None and old.name != name and not old.name.startswith(name + "@"):
            raise ModelError(f"{path} is already registered as {old.name!r} ({old.short})")
        replaced = None
        if old is None or old.name != name:
            # The name moves to these bytes; whoever held it keeps its row as name@id12.
            clash = db.execute("SELECT id FROM model WHERE name = ?", [name]).fetchone()
            if clash is not None:
                replaced = clash[0]
                db.execute(
                    "UPDATE model SET name = ? WHERE id = ?", [f"{name}@{replaced[:12]}", replaced]
                )
        if old is not None:
            db.execute(
                "UPDATE model SET name = ?, path = ?, trusted = MAX(trusted, ?) WHERE id = ?",
                [name, str(path), int(trust), sha],
            )
            report = AddReport(_row(_fetch(db, sha)), already=old.name == name, replaced=replaced)
        else:
            db.execute(
                f"INSERT INTO model ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                [
                    sha,
                    name,
                    str(path),
                    fmt,
                    task,
                    json.dumps(names, ensure_ascii=False),
                    int(trust),
                    now_iso(),
                    project.user,
                ],
            )
            report = AddReport(_row(_fetch(db, sha)), replaced=replaced)
        if within is not None:
            # Part of the same transaction: a trained model and its run record land together.
            within(sha)
            report.model = _row(_fetch(db, sha))
    _map_classes(project, report, version_ref, add_classes)
    return report


def _fetch(db: Database, sha: str) -> sqlite3.Row:
    return named(db, f"SELECT {_COLUMNS} FROM model WHERE id = ?", [sha]).fetchone()


def unknown_classes(model_classes: list[str], version_classes: list[dict[str, Any]]) -> list[str]:
    """Model classes (in model order) that the version has no class of that name for."""
    known = {c["name"] for c in version_classes}
    return [n for n in dict.fromkeys(model_classes) if n not in known]


def _map_classes(project: Project, report: AddReport, ref: str, add: bool) -> None:
    from .versions import head, resolve

    if head(project.db) is None:
        return  # an empty project: nothing to compare with yet
    version = resolve(project.db, ref)
    report.version = version.id
    report.unknown_classes = unknown_classes(report.model.class_names, version.classes)
    if add and report.unknown_classes:
        from .sessions import ReviewSession

        mine = ReviewSession.open_sessions(project, author=project.user)
        session = ReviewSession(project, mine[-1].id) if mine else ReviewSession.start(project)
        for n in report.unknown_classes:
            session.add_class(n)
        report.added_classes = list(report.unknown_classes)
        report.session = session.id


# --- loading for inference -------------------------------------------------------------------

_LOAD_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    """A model ready to predict, with what the prediction loop needs to know about it.

    Exactly one of ``yolo`` (Ultralytics: every ``.pt``, and RT-DETR ``.onnx``) and ``onnx``
    (onnxruntime with numpy decoding, :mod:`.onnx_decode`: every other ``.onnx``) is set.
    """

    info: ModelInfo
    yolo: Any  # ultralytics.YOLO, or None for a model run by ``onnx``
    names: dict[int, str]
    fixed_imgsz: int | None = None  # an ONNX export with a static input size
    _folder: Path | None = None  # the private copy an ONNX session reads; removed by close()
    onnx: OnnxDetector | None = None

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _safe_default(on: bool) -> Iterator[None]:
    """Make Ultralytics' own checkpoint load (inside ``YOLO(path)``) weights-only too.

    The explicit gate has already refused unsafe globals; this keeps the bytes from ever being
    fully unpickled when the user did not trust them (defence in depth, and one code path).
    """
    from ultralytics.nn import tasks

    if not on:
        yield
        return
    if not hasattr(tasks, "SAFE_LOAD"):
        # Fail closed: without the switch, Ultralytics' own load would fully unpickle the file.
        raise ModelError(
            "this Ultralytics version has no weights-only switch (ultralytics.nn.tasks."
            "SAFE_LOAD), so LabelDesk cannot load an untrusted .pt with it; install a version "
            "LabelDesk supports (see pyproject.toml) or use --trust for files you trust"
        )
    with _LOAD_LOCK:
        before = tasks.SAFE_LOAD
        tasks.SAFE_LOAD = True
        try:
            yield
        finally:
            tasks.SAFE_LOAD = before


def load_model(info: ModelInfo, *, trust: bool = False) -> LoadedModel:
    """Load a registered model for inference from a verified private copy of its file.

    A ``.pt`` goes through the safe loader first (unless ``trust``); an ``.onnx`` needs
    onnxruntime and runs without torch or Ultralytics (:mod:`.onnx_decode`), except an RT-DETR
    export, which Ultralytics decodes. Raises :class:`ModelChangedError` if the file's bytes are
    not the registered ones, :class:`UnsafeModelError` if safe loading refuses it.
    """
    folder = Path(tempfile.mkdtemp(prefix="labeldesk-run-"))
    try:
        with private_copy(Path(info.path), expected=info.id) as (copy, _):
            target = folder / f"weights.{info.format}"
            # External data files (ONNX) keep their place relative to the model.
            for data in sorted(copy.parent.rglob("*")):
                if data.is_file() and data != copy:
                    dest = folder / data.relative_to(copy.parent)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(data), dest)
            shutil.move(str(copy), target)
        fixed = None
        detector = None
        yolo: Any = None
        if info.format == "pt":
            ultralytics()
            if not trust:
                _safe_load_checkpoint(target, info.path, trust=False)  # the gate
            from ultralytics import YOLO

            with _safe_default(not trust):
                try:
                    yolo = YOLO(str(target), task=info.task)
                except TypeError as e:
                    raise ModelError(f"cannot load {info.path}: {e}") from None
            if type(yolo.model).__name__ == "RTDETRDetectionModel":
                yolo = _as_rtdetr(yolo)
            shutil.rmtree(folder, ignore_errors=True)  # the weights are in memory now
            folder = None
        else:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                raise ModelError(
                    "running .onnx models needs onnxruntime: pip install onnxruntime"
                ) from None
            _, _, extra = _onnx_meta(target, info.path)
            if not extra.get("args", {}).get("dynamic", False) and extra.get("imgsz"):
                fixed = int(max(extra["imgsz"]))
            from . import onnx_decode

            meta = read_onnx_header(target) or {}
            if onnx_decode.supports(meta):
                try:
                    detector = onnx_decode.OnnxDetector(target, meta)
                except Exception as e:  # onnxruntime refuses the graph: say so, in one line
                    raise ModelError(f"onnxruntime cannot load {info.path}: {e}") from None
                if detector.fixed is not None:
                    fixed = max(detector.fixed)
            else:
                try:
                    ultralytics()
                except FullFlavourError:
                    raise FullFlavourError(
                        f"{info.path} is an RT-DETR export, which LabelDesk runs through "
                        "Ultralytics; install the full flavour (pip install labeldesk)"
                    ) from None
                from ultralytics import YOLO

                yolo = _as_rtdetr(YOLO(str(target), task=info.task))
        names = {i: n for i, n in enumerate(info.class_names)}
        return LoadedModel(info, yolo, names, fixed, folder, onnx=detector)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _as_rtdetr(yolo: Any) -> Any:
    """The same loaded model behind Ultralytics' RT-DETR front end (its own post-processing);
    ``RTDETR(model)`` adopts a loaded model without reading the file again."""
    from ultralytics import RTDETR

    return RTDETR(yolo)


# --- export ----------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What :func:`export_onnx` made: the new model, and the one it was exported from."""

    source: ModelInfo
    add: AddReport
    imgsz: int
    dynamic: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source.id,
            "imgsz": self.imgsz,
            "dynamic": self.dynamic,
            **self.add.to_json(),
        }


def export_onnx(
    project: Project,
    name_or_id: str,
    *,
    name: str | None = None,
    imgsz: int = 640,
    dynamic: bool = True,
    trust: bool = False,
) -> ExportReport:
    """Export a registered ``.pt`` to ONNX with Ultralytics' exporter and register the result.

    The export reads a verified private copy (safe loading unless ``trust`` or the model was
    registered trusted), so the ONNX file is made from exactly the registered bytes. Its bytes
    go into the project's object store, like trained weights (fsck counts them through the
    model row), and are registered as ``name`` (default ``<source>-onnx``) with the source's
    ``trained_on``. ``dynamic`` exports accept any image size (the decoder pads each image to
    the stride, as Ultralytics does for ``.pt``); a static export runs at ``imgsz`` only.
    Needs the full flavour (torch, Ultralytics, onnx).
    """
    import warnings

    source = get_model(project, name_or_id)
    if source.format != "pt":
        raise ModelError(f"{source.name} is already an {source.format} model; export needs a .pt")
    if int(imgsz) != imgsz or imgsz < 32 or imgsz % 32:
        raise ModelError(f"imgsz must be a multiple of 32 (the stride), got {imgsz}")
    ultralytics()
    try:
        import onnx  # noqa: F401  (Ultralytics' exporter writes through it)
    except ImportError as e:
        raise ModelError(
            f"exporting to ONNX needs the full flavour with {e.name}: "
            "pip install 'labeldesk[dev]' (torch, Ultralytics and onnx)"
        ) from None
    trusted = trust or source.trusted
    with private_copy(Path(source.path), expected=source.id) as (copy, _):
        weights = copy.rename(copy.with_suffix(".pt"))
        if not trusted:
            _safe_load_checkpoint(weights, source.path, trust=False)  # the gate
        from ultralytics import YOLO

        with _safe_default(not trusted), warnings.catch_warnings():
            # Tracing warns about Python control flow on tensors; harmless for export.
            warnings.simplefilter("ignore")
            try:
                import onnxslim  # noqa: F401

                simplify = True
            except ImportError:
                simplify = False  # Ultralytics would try to pip-install it otherwise
            try:
                out = YOLO(str(weights), task=source.task).export(
                    format="onnx", imgsz=int(imgsz), dynamic=dynamic, simplify=simplify
                )
            except Exception as e:  # the exporter's own message says what went wrong
                raise ModelError(f"ONNX export of {source.name} failed: {e}") from None
        data = Path(out).read_bytes()
    project.objects.put_bytes(data)  # before the row that names it
    obj = project.objects.path(hashlib.sha256(data).hexdigest())
    trained_on = source.trained_on

    def link(model_id: str) -> None:
        if trained_on is not None:
            project.db.execute(
                "UPDATE model SET trained_on = ? WHERE id = ?", [trained_on, model_id]
            )

    report = add_model(project, obj, name or f"{source.name}-onnx", within=link)
    return ExportReport(source, report, int(imgsz), dynamic)
