"""``labeldesk train``: a version in, a registered model with its lineage out.

The steps, and why each is where it is:

1. **Check** everything that can be checked before any work: the version has labels, classes
   and a val split (Ultralytics picks the best weights on it); the base is a registered model
   that loads safely (the same ``--trust`` rule as pre-labelling) or an Ultralytics model YAML;
   the device is well-formed. Bad input is one itemised error and nothing is written.
2. **Materialise** the version with :func:`~labeldesk.core.formats.yolo.export_yolo` itself,
   hard-linking image files from the store (so it costs metadata, not bytes, and is exactly what
   ``export yolo`` writes, upright pixels included), inside the run's folder.
3. **Train** in a child process (:mod:`.child`) that reports JSON lines; progress goes to the
   caller, cancel ends the child's whole process group at once.
4. **Register** the best weights: their bytes become an object in the store (so the model
   cannot change under its name), and the model row, its ``trained_on`` and the run's closing
   record are written in one transaction: a crash never leaves a half-registered model.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..canonical import hash_json
from ..defaults import DEFAULT_IMGSZ
from ..errors import InputError, LabelDeskError, Problem
from ..progress import CancelFn
from ..store.manifest import ManifestStore
from ..store.project import Project, now_iso
from ..store.versions import MAIN, Version, resolve
from .runs import TrainingRun, get_run

#: Folder inside the project where runs live (datasets are hard links: cheap).
RUNS_DIR = "training"
_DEVICE_RE = re.compile(r"^(cpu|mps|\d+(,\d+)*)$")
#: Free space below which a failed run is reported as a full disk (a checkpoint is megabytes).
_FULL_BELOW = 16 << 20


class TrainingCancelled(LabelDeskError):
    """Training was cancelled; the run is recorded as cancelled."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__(
            f"training run {run.id} cancelled after {run.epochs_done} epoch(s)"
            + (f"; partial weights kept for --resume {run.id}" if run.partial else "")
        )
        self.run = run


class TrainingFailed(LabelDeskError):
    """The training process failed; the run is recorded as failed, no model registered."""

    def __init__(self, run: TrainingRun, log: Path | None) -> None:
        where = f" (log: {log})" if log else ""
        super().__init__(f"training run {run.id} failed: {run.error}{where}")
        self.run = run


@dataclass
class TrainOptions:
    epochs: int = 10
    imgsz: int = DEFAULT_IMGSZ
    batch: int = 16
    device: str = "cpu"
    seed: int = 0
    workers: int = 0
    patience: int = 100
    extra: dict[str, Any] = field(default_factory=dict)

    def ultralytics_args(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "device": self.device,
            "seed": self.seed,
            "deterministic": True,
            "workers": self.workers,
            "patience": self.patience,
            "plots": False,
            "verbose": False,
            **self.extra,
        }


@dataclass
class TrainEvent:
    """One progress report of the training child (``batch``, ``epoch``, ...)."""

    kind: str
    data: dict[str, Any]


@dataclass
class TrainResult:
    run: TrainingRun
    model_name: str
    model_id: str
    notes: list[str] = field(default_factory=list)


def split_manifest(project: Project, version: Version) -> tuple[str, dict[str, int]]:
    """Hash of image -> split for the version (what was train, val, test), and the counts."""
    store = ManifestStore(project.db)
    splits: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    for image, entry in store.entries(store.tree(version.tree)):
        splits[image] = entry.split
        counts[entry.split or "none"] = counts.get(entry.split or "none", 0) + 1
    return hash_json(splits)[0], counts


def _check(
    project: Project,
    version: Version,
    base: str | None,
    config: str | None,
    opts: TrainOptions,
    trust: bool,
) -> tuple[str, str, str, str, list[str]]:
    """Return (base_kind, base_id_or_name, path_for_ultralytics, split_hash, notes), or raise
    one InputError listing every problem."""
    problems: list[Problem] = []
    notes: list[str] = []
    if (base is None) == (config is None):
        problems.append(Problem("--base/--config", "give exactly one of them"))
    if version.n_boxes == 0 or not version.classes:
        problems.append(Problem(version.short, "the version has no labels to learn from"))
    split_hash, counts = split_manifest(project, version)
    if not counts.get("val"):
        problems.append(
            Problem(
                version.short,
                "the version has no images in the val split: training needs them to choose "
                "the best weights (import the dataset with its val split)",
            )
        )
    if not counts.get("train") and not counts.get("none"):
        problems.append(Problem(version.short, "the version has no training images"))
    if not _DEVICE_RE.match(opts.device):
        problems.append(Problem("--device", f"{opts.device!r}: use cpu, 0, or 0,1 (CUDA ids)"))
    for name, value, low in (("--epochs", opts.epochs, 1), ("--imgsz", opts.imgsz, 32)):
        if value < low:
            problems.append(Problem(name, f"must be at least {low}, got {value}"))
    if opts.batch < 1 and opts.batch != -1:
        problems.append(
            Problem("--batch", f"must be at least 1 (or -1 for auto), got {opts.batch}")
        )
    kind, ident, path = "config", config or "", config or ""
    if base is not None:
        from ..inference.model_files import ModelError
        from ..inference.registry import get_model

        try:
            info = get_model(project, base)
        except ModelError as e:
            problems.append(Problem("--base", str(e)))
        else:
            if info.format != "pt":
                problems.append(
                    Problem("--base", f"{info.name} is {info.format}: training needs a .pt")
                )
            if info.trusted and not trust:
                problems.append(
                    Problem("--base", "that model was registered with --trust: pass --trust")
                )
            kind, ident, path = "model", info.id, info.path
            names = [c["name"] for c in sorted(version.classes, key=lambda c: c["id"])]
            if info.class_names != names:
                notes.append(
                    f"{info.name} has classes {info.class_names}; the version has {names}: "
                    "the detection head is re-made for the version's classes"
                )
    elif config is not None and not (config.endswith((".yaml", ".yml"))):
        problems.append(Problem("--config", f"{config!r} is not an Ultralytics model YAML"))
    if problems:
        raise InputError("cannot train", problems)
    return kind, ident, path, split_hash, notes


def _ultralytics_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ultralytics", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _end_group(proc: subprocess.Popen) -> None:
    """End the child and anything it started (data-loader workers, DDP ranks) at once."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _close_run(project: Project, run_id: int, **fields: Any) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    with project.transaction():
        project.db.execute(
            f"UPDATE training_run SET {cols} WHERE id = ?", [*fields.values(), run_id]
        )


def train(
    project: Project,
    *,
    ref: str = MAIN,
    base: str | None = None,
    config: str | None = None,
    name: str | None = None,
    options: TrainOptions | None = None,
    trust: bool = False,
    keep_partial: bool = False,
    resume: int | None = None,
    progress: Callable[[TrainEvent], None] | None = None,
    cancel: CancelFn | None = None,
) -> TrainResult:
    """Train on version ``ref`` and register the best weights as model ``name``.

    Raises :class:`InputError` before doing anything on bad input, :class:`TrainingCancelled`
    when ``cancel`` returns True (or on KeyboardInterrupt) and :class:`TrainingFailed` when the
    child fails; in those cases the run is recorded and no model is registered.
    """
    opts = options or TrainOptions()
    db = project.db
    if resume is not None:
        prior = get_run(db, resume)
        if prior is None:
            raise InputError("cannot resume", [Problem(str(resume), "no such training run")])
        if prior.status != "cancelled" or not prior.partial or not Path(prior.partial).is_file():
            raise InputError(
                "cannot resume",
                [Problem(str(resume), f"run is {prior.status} and kept no partial weights")],
            )
        version = resolve(db, prior.version)
        notes: list[str]
        kind, ident, notes = prior.base_kind, prior.base, []
        name = name or prior.name
        run_dir = Path(prior.run_dir or "")
        split_hash = prior.split_hash
        opts_json = prior.params
        run_id = prior.id
        child_cfg: dict[str, Any] = {"resume": prior.partial}
        _close_run(project, run_id, status="running", finished=None, partial=None)
    else:
        version = resolve(db, ref)
        kind, ident, path, split_hash, notes = _check(project, version, base, config, opts, trust)
        opts_json = opts.ultralytics_args()
        with project.transaction():
            cur = db.execute(
                "INSERT INTO training_run (name, version, split_hash, base_kind, base, params, "
                "seed, libs, started, author) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    name or "",
                    version.id,
                    split_hash,
                    kind,
                    ident,
                    json.dumps(opts_json, sort_keys=True),
                    opts.seed,
                    json.dumps(_ultralytics_versions()),
                    now_iso(),
                    project.user,
                ],
            )
            run_id = int(cur.lastrowid or 0)
            name = name or f"{version.tags[0] if version.tags else version.short}-run{run_id}"
            db.execute("UPDATE training_run SET name = ? WHERE id = ?", [name, run_id])
        run_dir = project.root / RUNS_DIR / f"run-{run_id}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        _close_run(project, run_id, run_dir=str(run_dir))
        from ..formats.yolo import export_yolo

        try:
            export_yolo(project, run_dir / "dataset", version.id, link=True, cancel=cancel)
        except BaseException as e:
            shutil.rmtree(run_dir, ignore_errors=True)
            _close_run(
                project, run_id, status="failed", error=f"materialising: {e}", finished=now_iso()
            )
            raise
        if kind == "model":
            # Ultralytics wants a *.pt name, and the bytes must be the registered ones.
            path = str(_copy_base(project, ident, run_dir / "base.pt"))
        child_cfg = {
            "base": path,
            "train": {
                **opts_json,
                "data": str(run_dir / "dataset" / "data.yaml"),
                "project": str(run_dir),
                "name": "ultralytics",
                "exist_ok": True,
            },
        }
    cfg_path = run_dir / "child.json"
    cfg_path.write_text(json.dumps(child_cfg), encoding="utf-8")
    log_path = run_dir / "train.log"
    started = time.monotonic()
    epochs: list[dict[str, Any]] = list(get_run(db, run_id).epochs)  # type: ignore[union-attr]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labeldesk.core.training.child", str(cfg_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches us only; we end the child's group
            env={**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"},
        )
        assert proc.stdout is not None
        lines: queue.Queue[bytes | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw)
            lines.put(None)

        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        done: dict[str, Any] | None = None
        error: str | None = None
        cancelled = False
        try:
            while True:
                if cancel is not None and cancel():
                    cancelled = True
                    break
                try:
                    raw = lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if raw is None:
                    break
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                kind_ = event.pop("event", "")
                if kind_ == "epoch":
                    epochs.append(
                        {
                            "epoch": event["epoch"],
                            "loss": event["loss"],
                            "metrics": event["metrics"],
                        }
                    )
                    _close_run(project, run_id, epochs=json.dumps(epochs))
                elif kind_ == "done":
                    done = event
                elif kind_ == "error":
                    error = event.get("error")
                if progress is not None:
                    progress(TrainEvent(kind_, event))
                if done is not None:
                    break  # the weights are saved and reported; the child is only tearing down
        except KeyboardInterrupt:
            cancelled = True
        wall = round(time.monotonic() - started, 3)
        if done is not None and not cancelled:
            # Register while the child exits: torch's teardown takes seconds and the result no
            # longer depends on it. The child is waited for (and its pipe closed) either way.
            try:
                result = _finish(project, run_id, run_dir, done, name, version, wall, epochs)
            finally:
                proc.wait()
                pumper.join()
                proc.stdout.close()
            result.notes = notes
            return result
        if cancelled:
            _end_group(proc)
        pumper.join()  # the pipe is at its end once the child (and its group) is gone
        proc.stdout.close()
        if cancelled:
            partial = None
            last_pt = run_dir / "ultralytics" / "weights" / "last.pt"
            if keep_partial and last_pt.is_file():
                partial = str(last_pt)
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
            _close_run(
                project,
                run_id,
                status="cancelled",
                finished=now_iso(),
                wall_s=wall,
                partial=partial,
                epochs=json.dumps(epochs),
            )
            raise TrainingCancelled(get_run(db, run_id))  # type: ignore[arg-type]
        rc = proc.wait()
    # Here the child ended without reporting its weights: the run failed.
    error = error or f"the training process exited with status {rc}"
    if shutil.disk_usage(run_dir).free < _FULL_BELOW:
        # Ultralytics and torch word a full disk many ways ("file write failed", ...).
        error = f"the disk is full (training could not write to {run_dir}): {error}"
    shutil.rmtree(run_dir / "dataset", ignore_errors=True)  # the log stays for the user
    _close_run(
        project,
        run_id,
        status="failed",
        error=error,
        finished=now_iso(),
        wall_s=wall,
        epochs=json.dumps(epochs),
    )
    raise TrainingFailed(get_run(db, run_id), log_path)  # type: ignore[arg-type]


def _finish(
    project: Project,
    run_id: int,
    run_dir: Path,
    done: dict[str, Any],
    name: str | None,
    version: Version,
    wall: float,
    epochs: list[dict[str, Any]],
) -> TrainResult:
    """Register the reported weights, then tidy the run folder."""
    inspected = (done["task"], done["names"]) if "task" in done else None
    result = _register(
        project, run_id, Path(done["best"]), name or "", version, wall, epochs, inspected
    )
    # The dataset is links and the weights are in the store now: keep only the log, the child's
    # config and Ultralytics' figures (results.csv, args.yaml) in the run folder.
    for leftover in (run_dir / "dataset", run_dir / "ultralytics" / "weights"):
        shutil.rmtree(leftover, ignore_errors=True)
    (run_dir / "base.pt").unlink(missing_ok=True)
    return result


def _copy_base(project: Project, model_id: str, dest: Path) -> Path:
    """Copy the registered base weights to ``dest``, refusing bytes that changed since."""
    from ..inference.model_files import ModelChangedError
    from ..inference.registry import get_model

    info = get_model(project, model_id)
    shutil.copyfile(info.path, dest)
    from ..store.objects import hash_file

    digest, _ = hash_file(dest)
    if digest != info.id:
        dest.unlink()
        raise ModelChangedError(f"{info.name}: {info.path} changed since it was registered")
    return dest


def _register(
    project: Project,
    run_id: int,
    best: Path,
    name: str,
    version: Version,
    wall: float,
    epochs: list[dict[str, Any]],
    inspected: tuple[str, list[str]] | None = None,
) -> TrainResult:
    import hashlib
    import socket
    import uuid

    from ..inference.registry import add_model

    data = best.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    # Journal the object before writing it, as imports do: if this process dies before the
    # model row is committed, the next open removes the file (Project.recover) instead of
    # leaving an orphan; the journal row goes in the same transaction as the model row.
    op = f"train-{run_id}-{uuid.uuid4().hex[:8]}"
    with project.transaction():
        project.db.execute(
            "INSERT OR IGNORE INTO pending_object (sha256, op, pid, host, started) "
            "VALUES (?, ?, ?, ?, ?)",
            [sha, op, os.getpid(), socket.gethostname(), now_iso()],
        )
    project.objects.put_bytes(data, sha)  # before the rows that name it
    obj = project.objects.path(sha)

    def link(model_id: str) -> None:
        project.db.execute("DELETE FROM pending_object WHERE op = ?", [op])
        project.db.execute("UPDATE model SET trained_on = ? WHERE id = ?", [version.id, model_id])
        project.db.execute(
            "UPDATE training_run SET status = 'completed', model = ?, finished = ?, wall_s = ?, "
            "epochs = ?, partial = NULL WHERE id = ?",
            [model_id, now_iso(), wall, json.dumps(epochs), run_id],
        )

    try:
        report = add_model(
            project, obj, name, version_ref=version.id, within=link, inspected=inspected
        )
    except BaseException:
        project.drop_pending([op])  # the weights were never registered: take them back
        raise
    run = get_run(project.db, run_id)
    assert run is not None
    return TrainResult(run, report.model.name, report.model.id)
