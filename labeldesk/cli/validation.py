"""``labeldesk validate``, ``evaluations``, ``agreement``, ``drift`` and ``report``.

Only argparse is imported here; the handlers import core when they run, so building the parser
for ``labeldesk --help`` stays instant. docs/validation.md describes what each verb computes.

Exit status of ``validate``, for CI: 0 the gate passed (or there was no baseline), 1 a metric
dropped more than ``--max-drop`` below its baseline, 2 the input or the options were bad
(nothing stored). ``drift`` exits 1 when the verdict is "drift", 2 on a bad REF or option.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from labeldesk.cli.output import number
from labeldesk.core.defaults import DEFAULT_CONF, DEFAULT_IMGSZ, DEFAULT_IOU  # constants only

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2

TRUST_HELP = (
    "allow full unpickling of a model .pt that safe loading refuses (it can run code; "
    "only for files whose origin you trust)"
)

VALIDATE_EPILOG = """\
--predictions takes detections in the COCO results format: a JSON list of
{"image_id", "category_id", "bbox": [x, y, w, h], "score"}. image_id is the id that
`labeldesk export coco` gives the image in the evaluated version (a COCO-imported image keeps
its id), or a file name; category_id is a class id of the version.

--model runs a registered model on every image of the version (and of --baseline REF) at the
COCO-standard confidence floor 0.001, caching the predictions: a second run predicts nothing.
The evaluation records the model's sha256. --watched evaluates every watched model instead,
each compared with its own previous evaluation (`labeldesk model watch`).

Exit status: 0 pass (or no baseline), 1 a metric dropped more than --max-drop below the
baseline on some row, 2 bad input or options (nothing is stored).

Examples:
  labeldesk validate --predictions preds.json --baseline v1.0 --max-drop 0.01
  labeldesk validate --predictions new.json --baseline-predictions old.json --by-split
  labeldesk validate --predictions preds.json --changed-since v1.0 --by-tag --json
  labeldesk validate --model shapes-v2 --baseline v1.0 --imgsz 320
  labeldesk validate --model shapes-v3 --baseline-model shapes-v2 --by-split
  labeldesk validate --watched --version main
"""


def add_model_eval_options(s: argparse.ArgumentParser, baseline: str) -> None:
    """The gate (--metric, --max-drop, --conf) and how a model is run (--imgsz, --iou,
    --trust): shared by ``validate`` and ``model watch``, which store the same settings."""
    s.add_argument("--metric", default="map50_95", help="figure compared (default: map50_95)")
    s.add_argument(
        "--max-drop",
        type=number,
        default=0.02,
        help=f"largest drop of --metric below {baseline} that passes (default: 0.02)",
    )
    s.add_argument(
        "--conf",
        type=number,
        default=DEFAULT_CONF,
        help=f"score threshold for precision/recall/TP/FP/FN (default: {DEFAULT_CONF})",
    )
    s.add_argument(
        "--imgsz",
        type=int,
        default=DEFAULT_IMGSZ,
        help=f"model inference size, a multiple of 32 (default {DEFAULT_IMGSZ})",
    )
    s.add_argument(
        "--iou",
        type=number,
        default=DEFAULT_IOU,
        help=f"model NMS IoU threshold (default {DEFAULT_IOU})",
    )
    s.add_argument("--trust", action="store_true", help=TRUST_HELP)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the validation verbs on ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    s = sub.add_parser(
        "validate",
        help="evaluate detections on a version, store the result, gate on a baseline",
        epilog=VALIDATE_EPILOG,
        formatter_class=raw,
    )
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictions", metavar="FILE", help="detections, COCO results JSON")
    src.add_argument(
        "--model", metavar="NAME", help="a registered model, run on the version (cached)"
    )
    src.add_argument(
        "--watched",
        action="store_true",
        help="every watched model, each against its previous evaluation (see `model watch`)",
    )
    s.add_argument(
        "--version", dest="ref", default="main", metavar="REF", help="version (default: main)"
    )
    base = s.add_mutually_exclusive_group()
    base.add_argument(
        "--baseline", metavar="REF", help="the same model or detections on version REF"
    )
    base.add_argument(
        "--baseline-predictions", metavar="FILE", help="other detections on the same version"
    )
    base.add_argument(
        "--baseline-model", metavar="NAME", help="another registered model on the same version"
    )
    add_model_eval_options(s, baseline="the baseline")
    s.add_argument(
        "--changed-since",
        metavar="REF",
        help="evaluate only images whose labels changed since REF",
    )
    s.add_argument("--by-split", action="store_true", help="add a row for each split")
    s.add_argument("--by-tag", action="store_true", help="add a row for each image tag")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=cmd_validate)

    s = sub.add_parser("evaluations", help="list stored evaluations with their lineage")
    s.add_argument("--version", dest="ref", metavar="REF", help="only evaluations of REF")
    s.add_argument("--model", metavar="NAME_OR_ID", help="only evaluations of this model")
    s.add_argument("-n", "--limit", type=int, help="show the newest N")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=cmd_evaluations)

    s = sub.add_parser(
        "agreement", help="how reviewers treated the model's pre-labels, per session and class"
    )
    s.add_argument("--model", metavar="NAME_OR_ID", help="only sessions pre-labelled by it")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=cmd_agreement)

    s = sub.add_parser("drift", help="how the labels and images of REF_B moved from REF_A")
    s.add_argument("ref_a", metavar="REF_A", help="the reference version")
    s.add_argument("ref_b", metavar="REF_B", help="the version compared with it")
    s.add_argument(
        "--threshold",
        type=number,
        default=0.2,
        help="PSI above which a feature has drifted (default: 0.2); exit 1 if any has",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=cmd_drift)

    s = sub.add_parser(
        "report", help="one self-contained HTML file: versions, evaluations, agreement, drift"
    )
    s.add_argument("--out", required=True, metavar="FILE", help="HTML file to write")
    s.set_defaults(handler=cmd_report)


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return ""
    return "n/a" if v == -1 else f"{v:.{digits}f}"


def _bad_input(e: Exception) -> int:
    from labeldesk.cli.output import error
    from labeldesk.core.errors import InputError

    if isinstance(e, InputError):
        error(e.summary)
        for p in e.problems:
            sys.stderr.write(f"  - {p}\n")
    else:
        error(str(e))
    return EXIT_BAD_INPUT


def _file_source(path: str | None) -> Any:
    """A predictions file, read against the version being validated (None: no file)."""
    if path is None:
        return None
    from labeldesk.core.validation.evaluation_sources import PredictionsFile

    return PredictionsFile(path)


def _model_source(project: Any, name: str | None, args: argparse.Namespace, bar: Any) -> Any:
    if name is None:
        return None
    from labeldesk.core.validation.model_eval import model_source

    return model_source(
        project, name, imgsz=args.imgsz, iou=args.iou, trust=args.trust, progress=bar
    )


def cmd_validate(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.errors import LabelDeskError
    from labeldesk.core.validation import evaluation

    if args.watched:
        return _validate_watched(args)
    bar = ProgressBar()
    try:
        with _open(args) as project:
            report = evaluation.validate(
                project,
                _model_source(project, args.model, args, bar) or _file_source(args.predictions),
                ref=args.ref,
                baseline_ref=args.baseline,
                baseline_source=_model_source(project, args.baseline_model, args, bar)
                or _file_source(args.baseline_predictions),
                metric=args.metric,
                max_drop=args.max_drop,
                conf=args.conf,
                changed_since=args.changed_since,
                by_split=args.by_split,
                by_tag=args.by_tag,
                progress=bar,
            )
    except LabelDeskError as e:
        bar.close()
        return _bad_input(e)
    bar.close()
    if args.json:
        emit_json(report.to_json())
    else:
        _print_validation(report, table)
    if not report.passed:
        if not args.json:
            sys.stderr.write(report.verdict() + "\n")
        return EXIT_REGRESSION
    return EXIT_OK


def _validate_watched(args: argparse.Namespace) -> int:
    """Evaluate every watched model on --version; 1 on a regression, 2 if one could not run."""
    from labeldesk.cli.output import ProgressBar, emit_json
    from labeldesk.cli.verbs import _open
    from labeldesk.core.errors import LabelDeskError
    from labeldesk.core.store.versions import resolve
    from labeldesk.core.validation.watch import evaluate_watched

    unused = [
        flag
        for flag, value in (
            ("--baseline", args.baseline),
            ("--baseline-model", args.baseline_model),
            ("--baseline-predictions", args.baseline_predictions),
            ("--changed-since", args.changed_since),
            ("--by-split", args.by_split),
            ("--by-tag", args.by_tag),
        )
        if value
    ]
    if unused:
        return _bad_input(
            LabelDeskError(
                f"--watched uses each model's own settings (`labeldesk model watch`) and its "
                f"previous evaluation as baseline; drop {', '.join(unused)}"
            )
        )
    try:
        with _open(args) as project, ProgressBar() as bar:
            version = resolve(project.db, args.ref)
            results = evaluate_watched(project, version.id, progress=bar)
    except LabelDeskError as e:
        return _bad_input(e)
    if args.json:
        emit_json({"version": version.id, "results": [r.to_json() for r in results]})
    elif not results:
        print("no model is watched; `labeldesk model watch NAME` watches one")
    else:
        print(f"watched models on version {version.short} ({version.message}):")
        for r in results:
            print(f"  {r.line()}")
    if any(r.regression for r in results):
        return EXIT_REGRESSION
    return EXIT_BAD_INPUT if any(r.error for r in results) else EXIT_OK


def _print_validation(report: Any, table: Any) -> None:
    v = report.version
    src = report.source
    print(f"version {v.short} ({v.message}); {src.kind} {src.name} (sha256 {src.hash[:12]})")
    if report.baseline_version is not None:
        b = report.baseline_source
        same = "the same model" if src.kind == "model" else "the same detections"
        what = f"{b.kind} {b.name}" if b else same
        print(f"baseline: {what} on version {report.baseline_version.short}")
    compared = report.compared
    headers = ["subset", "images", "labels", "mAP50-95", "mAP50", "mAP75", "P", "R", "TP"]
    headers += ["FP", "FN"]
    if compared:
        headers += [f"base {report.metric}", "drop", "gate"]
    rows = []
    for r in report.rows:
        m = r.metrics
        s = m["summary"]
        row = [
            r.subset_label,
            r.n_images,
            sum(c["labels"] for c in m["per_class"]),
            _fmt(s["map50_95"]),
            _fmt(s["map50"]),
            _fmt(s["map75"]),
            _fmt(m["precision"]),
            _fmt(m["recall"]),
            m["tp"],
            m["fp"],
            m["fn"],
        ]
        if compared:
            gate = "" if r.passed is None else ("pass" if r.passed else "FAIL")
            row += [_fmt(r.baseline_value), _fmt(r.metric_drop, 4), gate]
        rows.append(row)
    table(headers, rows)
    ids = ", ".join(str(r.id) for r in report.rows)
    print(f"stored as evaluation {ids} (run {report.run[:12]})")
    print(report.verdict() if report.passed else "gate: FAIL (see below)")


def cmd_evaluations(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.inference.registry import get_model
    from labeldesk.core.store.versions import resolve
    from labeldesk.core.timestamps import format_time
    from labeldesk.core.validation.evaluation import list_evaluations

    with _open(args) as project:
        version = resolve(project.db, args.ref).id if args.ref else None
        model = get_model(project, args.model).id if args.model else None
        rows = list_evaluations(project, version=version, source_hash=model, limit=args.limit)
    if args.json:
        emit_json([r.to_json() for r in rows])
        return EXIT_OK
    if not rows:
        if args.ref or args.model:
            print("no evaluations match")
        else:
            print("no evaluations yet; see `labeldesk validate --help`")
        return EXIT_OK
    table(
        [
            *("id", "when", "version", "subset", "source", "sha256", "mAP50-95", "mAP50"),
            *("role", "baseline", "drop", "gate"),
        ],
        [
            [
                r.id,
                format_time(r.created),
                r.version[:12],
                r.subset_label,
                f"{r.source_kind}:{r.source_name}",
                r.source_hash[:12],
                _fmt(r.summary["map50_95"]),
                _fmt(r.summary["map50"]),
                r.role,
                r.baseline or "",
                _fmt(r.metric_drop, 4),
                "" if r.passed is None else ("pass" if r.passed else "FAIL"),
            ]
            for r in rows
        ],
    )
    return EXIT_OK


def cmd_agreement(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.validation.agreement import agreement

    with _open(args) as project:
        report = agreement(project, args.model)
    if args.json:
        emit_json(report.to_json())
        return EXIT_OK
    if not report.sessions:
        print("no committed review session had model pre-labels")
        return EXIT_OK
    rows = []
    for s in report.sessions:
        for name, c in [*sorted(s.classes.items()), ("(all)", s.totals)]:
            rows.append(
                [
                    s.session,
                    s.version[:12],
                    s.model_name or s.model or "",
                    name,
                    c.accepted,
                    c.edited,
                    _fmt(c.mean_iou),
                    c.rejected,
                    c.pending,
                    c.added,
                    _fmt(c.acceptance_rate),
                ]
            )
    table(
        [
            *("session", "version", "model", "class", "accepted", "edited", "mean IoU"),
            *("rejected", "pending", "added", "accept rate"),
        ],
        rows,
    )
    print("\ntrend (commit order):")
    table(
        ["session", "version", "decided", "accept rate", "precision", "recall", "mean IoU"],
        [
            [
                t["session"],
                t["version"][:12],
                t["decided"],
                _fmt(t["acceptance_rate"]),
                _fmt(t["precision"]),
                _fmt(t["recall"]),
                _fmt(t["mean_iou"]),
            ]
            for t in report.trend()
        ],
    )
    return EXIT_OK


def cmd_drift(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.errors import LabelDeskError
    from labeldesk.core.validation.drift import drift

    bar = ProgressBar()
    try:
        with _open(args) as project:
            report = drift(project, args.ref_a, args.ref_b, threshold=args.threshold, progress=bar)
    except LabelDeskError as e:  # 1 means "drift": a bad REF must not look like one
        return _bad_input(e)
    finally:
        bar.close()
    if args.json:
        emit_json(report.to_json())
    else:
        print(f"{report.b.short} against {report.a.short}")
        table(
            ["feature", "PSI", "verdict"],
            [
                [
                    f.name,
                    _fmt(f.score),
                    "no data"
                    if f.score is None
                    else ("drift" if f.drifted(report.threshold) else "ok"),
                ]
                for f in report.features
            ],
        )
        if report.unreadable:
            print(f"{len(report.unreadable)} image(s) could not be decoded and were left out")
        print(report.verdict())
    return EXIT_REGRESSION if report.drifted else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar
    from labeldesk.cli.verbs import _open
    from labeldesk.core.validation.report import write_report

    with _open(args) as project, ProgressBar() as bar:
        out = write_report(project, args.out, progress=bar)
    print(f"wrote {out}")
    return EXIT_OK
