"""``labeldesk model add|list|watch|unwatch`` and ``labeldesk prelabel``.

Only argparse is imported here; the handlers import core (and core imports torch) when they
run, so ``labeldesk --help`` stays instant.
"""

from __future__ import annotations

import argparse

from labeldesk.cli.output import number
from labeldesk.cli.validation import add_model_eval_options
from labeldesk.core.defaults import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU  # constants only

TRUST_HELP = (
    "load a .pt by full unpickling even if safe loading refuses it. A .pt file is a pickle: "
    "loading it can run any code it contains. Use only for files whose origin you trust "
    "(default: Ultralytics' weights-only safe loading, which runs nothing)"
)

MODEL_EPILOG = """\
The format is read from the file's bytes (.pt checkpoint or .onnx), the task and class names
from the model. The model's sha256 is recorded: if the file changes later, it is refused until
registered again. Class names map to the project's classes by name; unknown names are listed,
and --add-classes adds them to your open review session (they become project classes when the
session is committed).

Examples:
  labeldesk model add runs/detect/train/weights/best.pt --name shapes-v2
  labeldesk model add best.onnx --name shapes-v2-onnx
  labeldesk model list
"""

WATCH_EPILOG = """\
A watched model is evaluated on every version committed afterwards (by the review window, or
in the background after `labeldesk add`, `import`, `revert`), with the settings given here.
Each result is compared with the model's previous evaluation; a drop of the metric larger
than --max-drop is recorded as a regression and shown by `labeldesk log` and the GUI.
`labeldesk validate --watched` evaluates the watched models on main now (or on --version).

Examples:
  labeldesk model watch shapes-v2 --imgsz 320 --max-drop 0.01
  labeldesk validate --watched
  labeldesk model unwatch shapes-v2
"""

PRELABEL_EPILOG = """\
Predicts every image of the version that has no cached prediction for this model and these
parameters, and stores the boxes (with scores) as pre-labels; they enter a version only when a
reviewer accepts them. Images are seen upright (EXIF orientation applied). Ctrl-C stops after
the current image and keeps what was predicted; running the same command again resumes.

Examples:
  labeldesk prelabel --model shapes-v2
  labeldesk prelabel --model shapes-v2 --version v1.0 --conf 0.1 --imgsz 960
"""


EXPORT_EPILOG = """\
Exports through Ultralytics' own exporter (needs torch, Ultralytics and onnx: the full
flavour). The .onnx file is stored in the project, like trained weights, and registered under
NEW (default NAME-onnx). LabelDesk runs .onnx models with onnxruntime and numpy only, so the
review flavour of the desktop app (no torch) can pre-label with it. By default the export takes
any image size (--imgsz at pre-labelling); --static fixes it to --imgsz.

examples:
  labeldesk model export shapes-v2 --format onnx --imgsz 320
  labeldesk model export shapes-v2 --as shapes-v2-static --static --imgsz 640
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``model`` (``add``, ``list``) and ``prelabel`` on ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    m = sub.add_parser(
        "model",
        help="register and list models for pre-labelling",
        epilog=MODEL_EPILOG,
        formatter_class=raw,
    )
    msub = m.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    s = msub.add_parser(
        "add", help="register a .pt or .onnx model file", epilog=MODEL_EPILOG, formatter_class=raw
    )
    s.add_argument("weights", metavar="WEIGHTS", help="model file (.pt or .onnx)")
    s.add_argument("--name", help="name to refer to it by (default: the file name's stem)")
    s.add_argument("--trust", action="store_true", help=TRUST_HELP)
    s.add_argument(
        "--add-classes",
        action="store_true",
        help="add the model's classes that main lacks to your open review session",
    )
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(handler=cmd_model_add)
    s = msub.add_parser(
        "export",
        help="export a registered .pt to ONNX (full flavour) and register the result",
        epilog=EXPORT_EPILOG,
        formatter_class=raw,
    )
    s.add_argument("name", metavar="NAME", help="registered .pt model name or id")
    s.add_argument("--format", choices=("onnx",), default="onnx", help="target format (onnx)")
    s.add_argument(
        "--imgsz",
        type=int,
        default=DEFAULT_IMGSZ,
        help=f"image size to export at (default {DEFAULT_IMGSZ})",
    )
    s.add_argument(
        "--static",
        action="store_true",
        help="fixed input size (imgsz) instead of any size; a little faster, less flexible",
    )
    s.add_argument("--as", dest="as_name", metavar="NEW", help="name (default: NAME-onnx)")
    s.add_argument("--trust", action="store_true", help=TRUST_HELP)
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(handler=cmd_model_export)
    s = msub.add_parser("list", help="list registered models and whether their files changed")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=cmd_model_list)
    s = msub.add_parser(
        "watch",
        help="evaluate the model on every new version; record regressions",
        epilog=WATCH_EPILOG,
        formatter_class=raw,
    )
    s.add_argument("name", metavar="NAME", help="registered model name or id")
    add_model_eval_options(s, baseline="the previous evaluation")
    s.set_defaults(handler=cmd_model_watch)
    s = msub.add_parser("unwatch", help="stop evaluating the model on new versions")
    s.add_argument("name", metavar="NAME", help="registered model name or id")
    s.set_defaults(handler=cmd_model_unwatch)
    from labeldesk.cli.training import add_model_show

    add_model_show(msub)

    s = sub.add_parser(
        "prelabel",
        help="pre-label a version's images with a registered model (cached, resumable)",
        epilog=PRELABEL_EPILOG,
        formatter_class=raw,
    )
    s.add_argument(
        "--model", metavar="NAME", help="registered model name or id (default: the release model)"
    )
    s.add_argument("--version", default="main", metavar="REF", help="version (default: main)")
    s.add_argument(
        "--conf",
        type=number,
        default=DEFAULT_CONF,
        help=f"confidence threshold (default {DEFAULT_CONF})",
    )
    s.add_argument(
        "--iou", type=number, default=DEFAULT_IOU, help=f"NMS IoU threshold (default {DEFAULT_IOU})"
    )
    s.add_argument(
        "--imgsz",
        type=int,
        default=DEFAULT_IMGSZ,
        help=f"inference size, a multiple of 32 (default {DEFAULT_IMGSZ})",
    )
    s.add_argument(
        "--batch",
        type=int,
        default=32,
        metavar="N",
        help="images stored per transaction; a kill loses at most this many (default 32)",
    )
    s.add_argument("--trust", action="store_true", help=TRUST_HELP)
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(handler=cmd_prelabel)


def cmd_model_add(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.inference.registry import add_model

    with _open(args) as project:
        report = add_model(
            project, args.weights, args.name, trust=args.trust, add_classes=args.add_classes
        )
    if args.json:
        emit_json(report.to_json())
        return 0
    m = report.model
    what = "already registered" if report.already else "registered"
    print(
        f"{what} model {m.name} ({m.short}): {m.format}, {m.task}, "
        f"{len(m.class_names)} classes: {', '.join(m.class_names)}"
    )
    if m.trusted:
        print("trusted: loaded with full unpickling (--trust)")
    if report.replaced:
        print(f"the earlier model of that name is kept as {m.name}@{report.replaced[:12]}")
    if report.version is None:
        print("the project has no version yet: classes are matched by name when pre-labelling")
    elif report.added_classes:
        print(
            f"added classes {', '.join(report.added_classes)} to review session "
            f"{report.session}; they become project classes when it is committed"
        )
    elif report.unknown_classes:
        print(
            f"classes not in version {report.version[:12]}: {', '.join(report.unknown_classes)}"
            " (their pre-labels are cached but not shown; --add-classes adds them)"
        )
    else:
        print(f"every class is a class of version {report.version[:12]}")
    return 0


def cmd_model_export(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.inference.onnx_export import export_onnx

    with _open(args) as project:
        report = export_onnx(
            project,
            args.name,
            name=args.as_name,
            imgsz=args.imgsz,
            dynamic=not args.static,
            trust=args.trust,
        )
    if args.json:
        emit_json(report.to_json())
        return 0
    m = report.add.model
    size = f"fixed input {report.imgsz}" if not report.dynamic else "any input size"
    print(
        f"exported {report.source.name} ({report.source.short}) to ONNX ({size}); "
        f"registered as {m.name} ({m.short}), stored in the project at {m.path}"
    )
    print(f"pre-label with it (no torch needed): labeldesk prelabel --model {m.name}")
    return 0


def cmd_model_list(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.inference.registry import file_state, list_models
    from labeldesk.core.timestamps import format_time
    from labeldesk.core.validation.watch import watched

    with _open(args) as project:
        models = list_models(project.db)
        watching = {m.id: s for m, s in watched(project.db)}
    states = [file_state(m) for m in models]
    if args.json:
        emit_json(
            [
                {
                    **m.to_json(),
                    "file": s,
                    "watch": w.to_json() if (w := watching.get(m.id)) else None,
                }
                for m, s in zip(models, states, strict=True)
            ]
        )
        return 0
    table(
        ("name", "id", "format", "task", "classes", "trusted", "watched", "file", "added", "path"),
        [
            (
                m.name,
                m.short,
                m.format,
                m.task,
                len(m.class_names),
                "yes" if m.trusted else "no",
                f"yes ({watching[m.id].metric}, max drop {watching[m.id].max_drop})"
                if m.id in watching
                else "no",
                s,
                format_time(m.added_at),
                m.path,
            )
            for m, s in zip(models, states, strict=True)
        ],
    )
    return 0


def cmd_model_watch(args: argparse.Namespace) -> int:
    from labeldesk.cli.verbs import _open
    from labeldesk.core.validation.watch import WatchSettings, watch

    settings = WatchSettings(
        metric=args.metric,
        max_drop=args.max_drop,
        imgsz=args.imgsz,
        iou=args.iou,
        conf=args.conf,
        trust=args.trust,
    )
    with _open(args) as project:
        info = watch(project, args.name, settings)
    print(
        f"watching {info.name} ({info.short}): every new version is evaluated at imgsz "
        f"{args.imgsz}; a drop of {args.metric} by more than {args.max_drop} is a regression"
    )
    print("`labeldesk validate --watched` evaluates it on main now")
    return 0


def cmd_model_unwatch(args: argparse.Namespace) -> int:
    from labeldesk.cli.verbs import _open
    from labeldesk.core.validation.watch import unwatch

    with _open(args) as project:
        info = unwatch(project, args.name)
    print(f"no longer watching {info.name} ({info.short}); its evaluations are kept")
    return 0


def cmd_prelabel(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from labeldesk.cli.output import ProgressBar, emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.errors import CancelledError
    from labeldesk.core.inference.prelabel import prelabel

    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        stop.set()
        sys.stderr.write("\nstopping after this image (Ctrl-C again to stop at once)…\n")

    bar = ProgressBar()
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with _open(args) as project:
            if args.model is None:
                from labeldesk.core.training.promote import release_model

                args.model = release_model(project)
                if args.model is None:
                    sys.stderr.write(
                        "error: no --model given and no release model yet "
                        "(`labeldesk promote NAME` makes one)\n"
                    )
                    return 2
            report = prelabel(
                project,
                args.model,
                args.version,
                conf=args.conf,
                iou=args.iou,
                imgsz=args.imgsz,
                trust=args.trust,
                batch=args.batch,
                progress=bar,
                cancel=stop.is_set,
            )
    except CancelledError as e:
        bar.close()
        sys.stderr.write(f"{e}\n")
        return 130
    except KeyboardInterrupt:
        bar.close()
        sys.stderr.write(
            "\ninterrupted: predictions stored so far are kept; run again to continue\n"
        )
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    if args.json:
        emit_json(report.to_json())
        return 0
    m = report.model
    rate = report.predicted / report.seconds if report.seconds > 0 else 0.0
    print(
        f"model {m.name} ({m.short}) on version {report.version[:12]}: {report.images} images, "
        f"{report.cached} cached, {report.predicted} predicted ({report.boxes} boxes) "
        f"in {report.seconds:.1f}s ({rate:.1f} images/s)"
    )
    for p in report.failed:
        print(f"  failed: {p}")
    if report.unknown_classes:
        print(
            f"note: classes not in this version: {', '.join(report.unknown_classes)} (their "
            "boxes are cached but not shown for review; `labeldesk model add WEIGHTS "
            "--add-classes` adds them)"
        )
    return 1 if report.failed else 0
