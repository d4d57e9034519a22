"""``labeldesk train``, ``labeldesk promote``, ``labeldesk lineage`` and ``labeldesk model show``.

Only argparse is imported here; handlers import core (and the training child imports torch)
when they run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from labeldesk.cli.output import number
from labeldesk.core.defaults import DEFAULT_IMGSZ  # constants only

TRAIN_EPILOG = """\
The version is written as a YOLO dataset exactly as `labeldesk export yolo` writes it (hard
links to the store, upright pixels) and Ultralytics trains on it in a separate process; the
best weights are stored in the project and registered as a model whose lineage (version, split
manifest, base, every parameter, seed, library versions, per-epoch figures) is kept. Ctrl-C
ends training at once and records the run as cancelled; --keep-partial keeps its last weights
so --resume RUN can carry on. Several GPUs: --device 0,1 uses Ultralytics' own DDP.

Examples:
  labeldesk train --version v1.0 --config yolov8n.yaml --epochs 50 --imgsz 640
  labeldesk train --version main --base shapes-v2 --epochs 10 --name shapes-v3
  labeldesk train --resume 4
"""

PROMOTE_EPILOG = """\
Both models are evaluated on the same version (default main) with the stored evaluation
machinery; when the new model was trained here, only the images it never trained on are used.
The new model becomes the release model (default for pre-labelling, and watched) only if its
metric is at least the current one's plus --min-gain; otherwise the command exits 1.

Examples:
  labeldesk promote shapes-v3
  labeldesk promote shapes-v3 --over shapes-v2 --version v2.0 --metric map50 --min-gain 0.01
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    s = sub.add_parser(
        "train",
        help="train a model from a version (lineage kept) in a child process",
        epilog=TRAIN_EPILOG,
        formatter_class=raw,
    )
    s.add_argument("--version", dest="ref", default="main", metavar="REF", help="default: main")
    base = s.add_mutually_exclusive_group()
    base.add_argument("--base", metavar="MODEL", help="a registered .pt model to start from")
    base.add_argument("--config", metavar="YAML", help="an Ultralytics model YAML (from scratch)")
    base.add_argument("--resume", type=int, metavar="RUN", help="resume a cancelled run")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--imgsz", type=int, default=DEFAULT_IMGSZ)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--device", default="cpu", help="cpu, 0, or 0,1 for multi-GPU (DDP)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=0, help="data loader processes (default 0)")
    s.add_argument("--name", help="name of the model to register (default: <version>-run<N>)")
    s.add_argument("--watch", action="store_true", help="watch the new model on new versions")
    s.add_argument("--trust", action="store_true", help="allow a base registered with --trust")
    s.add_argument(
        "--keep-partial", action="store_true", help="on cancel, keep the last weights to resume"
    )
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(handler=cmd_train)

    s = sub.add_parser(
        "promote",
        help="make a model the release model if it beats the current one",
        epilog=PROMOTE_EPILOG,
        formatter_class=raw,
    )
    s.add_argument("name", metavar="NAME", help="the challenger: a registered model")
    s.add_argument("--over", metavar="MODEL", help="the champion (default: the release model)")
    s.add_argument("--version", dest="ref", default="main", metavar="REF")
    s.add_argument("--metric", default="map50_95")
    s.add_argument("--min-gain", type=number, default=0.0)
    s.add_argument("--imgsz", type=int, help="inference size (default: the model's training size)")
    s.add_argument("--trust", action="store_true", help="allow models registered with --trust")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_promote)

    s = sub.add_parser(
        "split",
        help="assign train/val/test splits to main's images (a new version)",
        description="Images without a split get one, deterministically from their hash and "
        "--seed (the same images always land in the same split); images with a split keep it "
        "unless --reassign.",
    )
    s.add_argument("--val", type=number, required=True, metavar="FRACTION", help="e.g. 0.2")
    s.add_argument("--test", type=number, default=0.0, metavar="FRACTION")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--reassign", action="store_true", help="also re-split images that have one")
    s.add_argument("-m", "--message", help="version message")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_split)

    s = sub.add_parser(
        "lineage", help="which models learned from a version, or which version a model did"
    )
    s.add_argument("what", metavar="REF|MODEL")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_lineage)


def add_model_show(msub: argparse._SubParsersAction) -> None:
    s = msub.add_parser("show", help="one model: file, classes, lineage, training figures")
    s.add_argument("name", metavar="NAME", help="registered model name or id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_model_show)


class _TrainBar:
    """One status line on stderr: epoch, batch and the running losses."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.drawn = False

    def __call__(self, event: Any) -> None:
        d = event.data
        if event.kind == "batch" and self.enabled:
            losses = " ".join(
                f"{k.split('/')[-1].removesuffix('_loss')} {v:.3f}" for k, v in d["loss"].items()
            )
            sys.stderr.write(
                f"\repoch {d['epoch']}/{d['epochs']}  batch {d['batch']}/{d['batches']}  "
                f"{losses}   "
            )
            sys.stderr.flush()
            self.drawn = True
        elif event.kind == "epoch":
            self.close()
            m = d.get("metrics", {})
            sys.stderr.write(
                f"epoch {d['epoch']}/{d['epochs']}: mAP50 {m.get('metrics/mAP50(B)', 0):.4f}  "
                f"mAP50-95 {m.get('metrics/mAP50-95(B)', 0):.4f}\n"
            )

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False


def cmd_train(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.training.train import TrainingCancelled, TrainOptions, train

    if args.resume is None and args.base is None and args.config is None:
        sys.stderr.write("error: give --base MODEL, --config YAML or --resume RUN\n")
        return 2
    bar = _TrainBar(sys.stderr.isatty())
    opts = TrainOptions(
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        seed=args.seed,
        workers=args.workers,
    )
    with _open(args) as project:
        try:
            result = train(
                project,
                ref=args.ref,
                base=args.base,
                config=args.config,
                name=args.name,
                options=opts,
                trust=args.trust,
                keep_partial=args.keep_partial,
                resume=args.resume,
                progress=bar,
            )
        except TrainingCancelled as e:
            bar.close()
            sys.stderr.write(f"{e}\n")
            return 130
        finally:
            bar.close()
        if args.watch:
            from labeldesk.core.validation.watch import WatchSettings, watch

            watch(project, result.model_id, WatchSettings(imgsz=opts.imgsz))
    if args.json:
        emit_json(
            {
                "model": result.model_name,
                "model_id": result.model_id,
                "run": result.run.to_json(),
                "notes": result.notes,
            }
        )
        return 0
    for note in result.notes:
        print(f"note: {note}")
    last = result.run.epochs[-1]["metrics"] if result.run.epochs else {}
    print(
        f"trained {result.model_name} ({result.model_id[:12]}) on {result.run.version[:12]} in "
        f"{result.run.wall_s:.1f} s, {result.run.epochs_done} epoch(s): "
        f"mAP50-95 {last.get('metrics/mAP50-95(B)', 0):.4f} on the val split (run {result.run.id})"
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.training.promote import promote

    with ProgressBar() as bar, _open(args) as project:
        result = promote(
            project,
            args.name,
            over=args.over,
            ref=args.ref,
            metric=args.metric,
            min_gain=args.min_gain,
            imgsz=args.imgsz,
            trust=args.trust,
            progress=bar,
        )
    if args.json:
        emit_json(result.to_json())
    else:
        for note in result.notes:
            print(f"note: {note}")
        print(result.verdict())
    return 0 if result.passed else 1


def _model_lineage(project: Any, info: Any) -> dict[str, Any]:
    from labeldesk.core.training.promote import release_model
    from labeldesk.core.training.runs import run_of_model

    run = run_of_model(project.db, info.id)
    return {
        **info.to_json(),
        "release": release_model(project) == info.id,
        "training": run.to_json() if run else None,
    }


def cmd_model_show(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.inference.registry import file_state, find_model
    from labeldesk.core.timestamps import format_time

    with _open(args) as project:
        info = find_model(project.db, args.name)
        out = _model_lineage(project, info)
        out["file"] = file_state(info)
    if args.json:
        emit_json(out)
        return 0
    print(f"model    {info.name}{'  (release model)' if out['release'] else ''}")
    print(f"id       {info.id}")
    print(f"format   {info.format} ({info.task}), file {out['file']}: {info.path}")
    print(f"classes  {', '.join(info.class_names)}")
    print(f"added    {format_time(info.added_at)} by {info.added_by}")
    run = out["training"]
    if info.trained_on:
        print(f"trained on version {info.trained_on}")
    if run:
        p = run["params"]
        base = run["base"] if run["base_kind"] == "config" else f"model {run['base'][:12]}"
        print(f"run      {run['id']} ({run['status']}) by {run['author']}, {run['wall_s']} s")
        print(f"split    manifest {run['split_hash'][:12]}; base {base}; seed {run['seed']}")
        print("params   " + ", ".join(f"{k}={v}" for k, v in sorted(p.items())))
        print("libs     " + ", ".join(f"{k} {v}" for k, v in sorted(run["libs"].items())))
        rows = []
        for e in run["epochs"]:
            m = e["metrics"]
            rows.append(
                (
                    e["epoch"],
                    *(f"{v:.4f}" for v in e["loss"].values()),
                    f"{m.get('metrics/mAP50(B)', 0):.4f}",
                    f"{m.get('metrics/mAP50-95(B)', 0):.4f}",
                )
            )
        if rows:
            names = [k.split("/")[-1] for k in run["epochs"][0]["loss"]]
            table(("epoch", *names, "mAP50", "mAP50-95"), rows)
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.errors import RefError
    from labeldesk.core.inference.model_files import ModelError
    from labeldesk.core.inference.registry import find_model
    from labeldesk.core.store.versions import resolve
    from labeldesk.core.training.runs import runs_of_version

    with _open(args) as project:
        try:
            info = find_model(project.db, args.what)
        except ModelError:
            info = None
        if info is not None:
            out = _model_lineage(project, info)
            if args.json:
                emit_json(out)
            elif info.trained_on:
                run = out["training"]
                print(
                    f"{info.name} learned from version {info.trained_on[:12]}"
                    + (
                        f" (run {run['id']}, split manifest {run['split_hash'][:12]})"
                        if run
                        else ""
                    )
                )
            else:
                print(f"{info.name} was not trained here: its training data is unknown")
            return 0
        try:
            version = resolve(project.db, args.what)
        except RefError:
            sys.stderr.write(f"error: {args.what!r} is neither a model nor a version\n")
            return 2
        runs = runs_of_version(project.db, version.id)
        names = {r[0]: r[1] for r in project.db.execute("SELECT id, name FROM model")}
    if args.json:
        emit_json(
            {
                "version": version.id,
                "runs": [{**r.to_json(), "model_name": names.get(r.model or "")} for r in runs],
            }
        )
        return 0
    if not runs:
        print(f"no model has been trained on {version.short}")
        return 0
    from labeldesk.core.timestamps import format_time

    table(
        ("run", "status", "model", "epochs", "started", "by"),
        [
            (
                r.id,
                r.status,
                names.get(r.model or "", ""),
                r.epochs_done,
                format_time(r.started),
                r.author,
            )
            for r in runs
        ],
    )
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.store.splits import assign_splits

    with _open(args) as project:
        report = assign_splits(
            project,
            val=args.val,
            test=args.test,
            seed=args.seed,
            reassign=args.reassign,
            message=args.message,
        )
    if args.json:
        emit_json(
            {"version": report.version.to_json(), "assigned": report.assigned, "kept": report.kept}
        )
        return 0
    parts = ", ".join(f"{n} to {s}" for s, n in sorted(report.assigned.items()))
    print(
        f'committed version {report.version.short} "{report.version.message}": {parts}'
        + (f"; {report.kept} kept their split" if report.kept else "")
    )
    return 0
