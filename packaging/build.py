"""Build the LabelDesk desktop app: a one-folder PyInstaller bundle and an archive of it.

    python packaging/build.py                   # review flavour -> dist/LabelDesk/ + archive
    python packaging/build.py --flavour full    # full flavour   -> dist/full/LabelDesk/ + archive

The review flavour leaves torch, Ultralytics and OpenCV out and runs ``.onnx`` models through
onnxruntime (labeldesk/core/inference/onnx_decode.py). Both carry the demo and its model as ONNX, so
``LabelDesk demo`` works offline; the ONNX file is exported here from
resources/models/demo-shapes.pt with Ultralytics' exporter (so the building environment needs
the dev extra), or taken from ``--demo-onnx``. It is not committed: 12 MB of derived bytes.

Prints, and writes to ``<dist>/build-info.json``, the build time and the size of the folder
and the archive. Needs PyInstaller (``pip install -e '.[dev,bundle]'``); builds for the
platform it runs on (see packaging/README.md for Windows and macOS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "labeldesk.spec"
DEMO_PT = ROOT / "resources" / "models" / "demo-shapes.pt"
DEMO_IMGSZ = 320  # labeldesk.core.demo.build.DEMO_IMGSZ: what the demo model was trained at
#: Packages the review flavour must not contain (checked after the build).
NOT_IN_REVIEW = ("torch", "torchvision", "ultralytics", "cv2")


def folder_size(path: Path) -> int:
    """Bytes on disk of every regular file under ``path`` (links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def export_demo_onnx(dest: Path) -> Path:
    """The demo model exported to ONNX (any input size), made once and reused while current."""
    if dest.is_file() and dest.stat().st_mtime >= DEMO_PT.stat().st_mtime:
        return dest
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    from ultralytics import YOLO

    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / "export"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    pt = Path(shutil.copy(DEMO_PT, work / "demo-shapes.pt"))
    out = YOLO(str(pt)).export(
        format="onnx", imgsz=DEMO_IMGSZ, dynamic=True, simplify=False, verbose=False
    )
    os.replace(out, dest)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def archive(folder: Path, out_base: Path) -> Path:
    """``folder`` as ``out_base.tar.gz`` (Linux, macOS; keeps the executable bit) or ``.zip``."""
    if sys.platform == "win32":
        out = out_base.with_name(out_base.name + ".zip")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.rglob("*")):
                z.write(p, p.relative_to(folder.parent))
        return out
    out = out_base.with_name(out_base.name + ".tar.gz")
    with tarfile.open(out, "w:gz", compresslevel=6) as t:
        t.add(folder, arcname=folder.name)
    return out


def build(
    flavour: str,
    dist: Path,
    work: Path,
    *,
    demo_onnx: Path | None = None,
    make_archive: bool = True,
) -> dict:
    """Build ``flavour`` into ``dist/LabelDesk``; return what was built, its sizes and times."""
    sys.path.insert(0, str(ROOT))
    from labeldesk import __version__

    t0 = time.perf_counter()
    onnx = demo_onnx or export_demo_onnx(work / "demo" / "demo-shapes.onnx")
    env = {**os.environ, "LABELDESK_FLAVOUR": flavour, "LABELDESK_DEMO_ONNX": str(onnx)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work / f"pyinstaller-{flavour}"),
        str(SPEC),
    ]
    subprocess.run(cmd, env=env, check=True, cwd=ROOT)
    t_build = time.perf_counter() - t0
    bundle = dist / "LabelDesk"
    internal = bundle / "_internal"
    if flavour == "review":
        leaked = [n for n in NOT_IN_REVIEW if (internal / n).exists()]
        if leaked:
            raise SystemExit(f"the review bundle contains {', '.join(leaked)}; check EXCLUDES")
    info = {
        "flavour": flavour,
        "version": __version__,
        "platform": f"{sys.platform}-{platform.machine()}",
        "bundle": str(bundle),
        "bundle_bytes": folder_size(bundle),
        "build_s": round(t_build, 1),
    }
    if make_archive:
        t1 = time.perf_counter()
        system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform)
        base = dist / f"LabelDesk-{__version__}-{flavour}-{system}-{platform.machine()}"
        out = archive(bundle, base)
        info["archive"] = str(out)
        info["archive_bytes"] = out.stat().st_size
        info["archive_s"] = round(time.perf_counter() - t1, 1)
    (dist / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--flavour", choices=("review", "full"), default="review")
    p.add_argument("--dist", type=Path, help="output folder (default dist/, full: dist/full/)")
    p.add_argument("--work", type=Path, default=ROOT / "build", help="PyInstaller's work folder")
    p.add_argument("--demo-onnx", type=Path, help="use this ONNX export of the demo model")
    p.add_argument("--no-archive", action="store_true", help="only the folder, no archive")
    args = p.parse_args(argv)
    dist = args.dist or (ROOT / "dist" if args.flavour == "review" else ROOT / "dist" / "full")
    info = build(
        args.flavour,
        dist.absolute(),
        args.work.absolute(),
        demo_onnx=args.demo_onnx,
        make_archive=not args.no_archive,
    )
    mb = 1e6
    print(
        f"{info['flavour']} flavour: {info['bundle']} {info['bundle_bytes'] / mb:.0f} MB "
        f"(built in {info['build_s']:.0f} s)"
        + (f"; {info['archive']} {info['archive_bytes'] / mb:.0f} MB" if "archive" in info else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
