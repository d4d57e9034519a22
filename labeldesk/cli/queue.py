"""``labeldesk queue``: the images most likely to need a reviewer, ranked.

Only argparse is imported here; the handler imports core when it runs. The ranking is
:func:`labeldesk.core.review.queue.rank`, the same the review window sorts by.
"""

from __future__ import annotations

import argparse

from labeldesk.cli.output import number

QUEUE_EPILOG = """\
Each image gets a priority in [0, 1] from its reasons: suggestions on labelled images
(possibly missing, possibly wrong class, loose box, possibly spurious), low-confidence pending
pre-labels on unlabelled images, and, when two or more models have stored predictions, boxes
one model finds and another does not. The source is the newest stored run of --model (default:
the run a new review session would show). docs/prelabel.md explains the weights.

Examples:
  labeldesk queue --limit 20
  labeldesk queue --model shapes --version v1.0 --json
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "queue",
        help="images ranked by likely label error (model vs labels)",
        epilog=QUEUE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--model", help="rank by this model's newest run (name or id)")
    s.add_argument("--version", dest="ref", default="main", metavar="REF", help="default: main")
    s.add_argument("--limit", type=int, default=50, help="images to list (default 50; 0: all)")
    s.add_argument("--iou", type=number, default=0.5, help="label/prediction match IoU (0.5)")
    s.add_argument(
        "--min-score", type=number, default=0.5, help="a confident prediction (default 0.5)"
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=cmd_queue)


def cmd_queue(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, error, table
    from labeldesk.cli.verbs import _open
    from labeldesk.core.review import queue

    if args.limit < 0:
        error("--limit must be 0 (all) or more")
        return 2
    for name in ("iou", "min_score"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            error(f"--{name.replace('_', '-')} must be between 0 and 1")
            return 2
    with _open(args) as project:
        from labeldesk.core.store.versions import resolve

        version = resolve(project.db, args.ref)
        run = queue.source_run(project, version.id, args.model)
        params = queue.Params(iou=args.iou, min_score=args.min_score)
        items = queue.rank(project, version.id, model=args.model, params=params)
        shown = items[: args.limit] if args.limit else items
        if args.json:
            emit_json(
                {
                    "version": version.id,
                    "source": run.to_json() if run else None,
                    "images": len(items),
                    "queue": [q.to_json() for q in shown],
                }
            )
            return 0
        if run is None:
            print("no stored predictions cover this version: run `labeldesk prelabel` first")
            return 0
        print(
            f"{len(items)} images to review in {version.short}, by {run.model_name} "
            f"({run.params_text}); highest priority first"
        )
        rows = []
        for n, q in enumerate(shown, start=1):
            for k, r in enumerate(q.reasons):
                x, y, w, h = r.box
                rows.append(
                    (
                        str(n) if k == 0 else "",
                        q.name if k == 0 else "",
                        f"{q.priority:.3f}" if k == 0 else "",
                        queue.KIND_WORDS[r.kind],
                        r.cls,
                        f"{x:.0f},{y:.0f} {w:.0f}x{h:.0f}",
                        f"{r.score:.2f}",
                    )
                )
        table(("#", "image", "priority", "reason", "class", "box", "score"), rows)
        if len(shown) < len(items):
            print(f"… {len(items) - len(shown)} more (--limit 0 lists all)")
    return 0
