"""Helpers for tests: real image files of every awkward kind, and project snapshots."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from labeldesk.core.store.project import Project

#: The small detection model the project ships (resources/README.md says how it was trained).
DEMO_MODEL = Path(__file__).resolve().parents[1] / "resources" / "models" / "demo-shapes.pt"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``labeldesk ARGV`` in this process: exit status, stdout, stderr."""
    from labeldesk.cli.main import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_image(
    path: Path, seed: int = 0, size: tuple[int, int] = (64, 48), fmt: str = "PNG", **save: object
) -> Path:
    """A small random RGB image; different seeds give different bytes."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt, **save)
    return path


def snapshot(project: Project) -> dict:
    """Everything in a project: every table's rows and every object file (name, hash, mode).

    Two equal snapshots mean the project did not change at all.
    """
    db = project.db
    tables = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    state: dict = {
        t: sorted(map(repr, db.execute(f"SELECT * FROM [{t}]").fetchall())) for t in tables
    }
    files = []
    for f in sorted((project.root / "objects").rglob("*")):
        if f.is_file():
            files.append(
                (
                    str(f.relative_to(project.root)),
                    hashlib.sha256(f.read_bytes()).hexdigest(),
                    f.stat().st_mode & 0o777,
                )
            )
    state["__files__"] = files
    return state


# -- awkward inputs ---------------------------------------------------------------------------


def write_exif_oriented(path: Path, orientation: int, size: tuple[int, int] = (60, 40)) -> Path:
    """A JPEG stored ``size`` wide whose EXIF says to show it rotated/flipped."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:, : size[0] // 3] = (255, 0, 0)  # a red band on the stored left edge
    arr[:5, :] = (0, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def png_bomb_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A small, valid PNG that declares ``width`` x ``height`` 1-bit pixels (all black)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bytes(seed: int = 0, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def label_truth(project: Project, folder: Path, n: int = 6) -> str:
    """Import ``n`` generated scenes and commit their true boxes; returns the version id.

    The shipped demo model was trained on such scenes, so it scores well on them.
    """
    from labeldesk.core.boxes import Box
    from labeldesk.core.demo.synth import CLASSES, write_images
    from labeldesk.core.store.importer import add_images
    from labeldesk.core.store.sessions import ReviewSession

    truth = write_images(folder, n, seed=5, size=(320, 240))
    report = add_images(project, [folder])
    by_name = {Path(a.path).name: a.sha256 for a in report.added}
    session = ReviewSession.start(project)
    ids = {name: session.add_class(name) for name in CLASSES}
    for path, boxes in truth:
        session.set_boxes(
            by_name[path.name], [Box(ids[CLASSES[b.cls]], b.x, b.y, b.w, b.h) for b in boxes]
        )
    return session.commit("true labels").id


#: Pillow transposition that turns an upright picture into what a camera stores for each
#: orientation (the inverse of what ``exif_transpose`` applies).
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def write_oriented(path: Path, orientation: int, box, size=(80, 60)) -> Path:
    """A JPEG that shows, upright, a red rectangle at ``box`` (x, y, w, h) on grey."""
    up = np.full((size[1], size[0], 3), 100 + 5 * orientation, np.uint8)  # distinct images
    x, y, w, h = box
    up[y : y + h, x : x + w] = (255, 0, 0)
    im = Image.fromarray(up)
    stored = im if STORED[orientation] is None else im.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def red_fraction(rgb: np.ndarray, box) -> float:
    """How much of ``box`` (inset 2 px) is the red of :func:`write_oriented`."""
    x, y, w, h = (round(float(v)) for v in box)
    patch = rgb[y + 2 : y + h - 2, x + 2 : x + w - 2].astype(int)
    return float(((patch[..., 0] > 200) & (patch[..., 1] < 60)).mean()) if patch.size else 0.0


def fill(fs: Path, leave: int = 0) -> Path:
    """Take all but ``leave`` bytes of the file system's free space with one file."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    filler = fs / "filler"
    with open(filler, "wb") as f:
        if free - leave > 0:
            os.posix_fallocate(f.fileno(), 0, free - leave)
    return filler


def model_row(project: Project, model_id: str, name: str) -> None:
    """A model row with classes cat and dog and no file: enough for code that reads stored
    predictions of that model (runs, suggestions, the queue), which never loads the weights."""
    from labeldesk.core.store.project import now_iso

    with project.transaction():
        project.db.execute(
            "INSERT INTO model (id, name, path, format, task, class_names, added_at, added_by) "
            "VALUES (?, ?, '/m.onnx', 'onnx', 'detect', '[\"cat\", \"dog\"]', ?, 'me')",
            [model_id, name, now_iso()],
        )
