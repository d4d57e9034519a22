"""The training process: ``python -m labeldesk.core.training.child CONFIG.json``.

Why a separate process: training takes minutes to hours, holds gigabytes and can crash in
native code; in a child it never freezes a window, a crash never takes the project (or its
open SQLite connection) with it, and cancel is simply ending the process.

The child speaks JSON lines on its *original* standard output, one event per line
(``start``, ``batch``, ``epoch``, ``done``, ``error``); everything Ultralytics prints is sent to
standard error, which the parent keeps as the run's log. It never touches the project database:
the parent records the run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO


def _floats(d: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (d or {}).items():
        try:
            out[str(k)] = round(float(v), 6)
        except (TypeError, ValueError):
            continue
    return out


def _losses(trainer: Any) -> dict[str, float]:
    if trainer.tloss is None:
        return {}
    return _floats(trainer.label_loss_items(trainer.tloss, prefix="train"))


def run(config: dict[str, Any], out: TextIO) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")

    def emit(event: str, **fields: Any) -> None:
        out.write(json.dumps({"event": event, **fields}) + "\n")
        out.flush()

    import torch
    import ultralytics
    from ultralytics import YOLO

    emit(
        "start",
        versions={"ultralytics": ultralytics.__version__, "torch": torch.__version__},
        pid=os.getpid(),
    )
    model = YOLO(config["resume"]) if config.get("resume") else YOLO(config["base"])

    def on_batch(trainer: Any) -> None:
        nb = len(trainer.train_loader) if trainer.train_loader is not None else 0
        # Ultralytics counts batches in ``trainer.batch_i`` only inside its loop; the running
        # loss is averaged over the epoch so far, so the batch index is derived from it.
        emit(
            "batch",
            epoch=trainer.epoch + 1,
            epochs=trainer.epochs,
            batch=getattr(trainer, "_ld_batch", 0) + 1,
            batches=nb,
            loss=_losses(trainer),
        )
        trainer._ld_batch = getattr(trainer, "_ld_batch", 0) + 1

    def on_epoch_start(trainer: Any) -> None:
        trainer._ld_batch = 0

    seen: set[int] = set()

    def on_fit_epoch_end(trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if epoch in seen or epoch > trainer.epochs:
            # Ultralytics calls this once more after validating best.pt at the end of training.
            emit("final", metrics=_floats(trainer.metrics))
            return
        seen.add(epoch)
        emit(
            "epoch",
            epoch=trainer.epoch + 1,
            epochs=trainer.epochs,
            loss=_losses(trainer),
            metrics=_floats(trainer.metrics),
            last=str(trainer.last),
        )

    model.add_callback("on_train_epoch_start", on_epoch_start)
    model.add_callback("on_train_batch_end", on_batch)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    if config.get("resume"):
        model.train(resume=True)
    else:
        model.train(**config["train"])
    # Ultralytics sets Model.trainer to None in __init__ without an annotation, so a checker
    # reads it as always None; after train() it is the trainer (duck-typed, as in the callbacks).
    trainer: Any = model.trainer
    best = Path(trainer.best)
    weights = best if best.is_file() else Path(trainer.last)
    # Read the result's task and classes here, with the registry's own safe loader, so the
    # parent can register it without importing torch (seconds of start-up for nothing).
    from ..inference.loading import pt_meta

    task, names = pt_meta(weights, weights, trust=False)
    emit(
        "done",
        best=str(weights),
        last=str(trainer.last),
        save_dir=str(trainer.save_dir),
        task=task,
        names=names,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    # Keep the event channel clean: the real stdout becomes private, fd 1 goes to stderr.
    events = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        return run(config, events)
    except BaseException as e:  # report anything, then fail: the parent records the outcome
        events.write(json.dumps({"event": "error", "error": f"{type(e).__name__}: {e}"}) + "\n")
        events.flush()
        raise


if __name__ == "__main__":
    sys.exit(main())
