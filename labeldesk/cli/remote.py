"""``labeldesk remote``, ``push``, ``fetch``, ``pull`` and ``clone`` (docs/remote.md).

Only argparse is imported here; the handlers import core (and core the S3 client) when they run.
Credentials come from the standard AWS environment variables and are never printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports core only when a command runs
    from labeldesk.core.store.sessions import Resolution

REMOTE_EPILOG = """\
A remote is an S3 bucket prefix (AWS S3, Cloudflare R2, Ceph, SeaweedFS, MinIO). Credentials
come only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); the
endpoint from --endpoint-url, else AWS_ENDPOINT_URL. Nothing secret is stored in the project.

Examples:
  labeldesk remote add origin s3://team-datasets/shapes --endpoint-url http://127.0.0.1:8333
  labeldesk push
  labeldesk pull
  labeldesk clone s3://team-datasets/shapes shapes --lazy
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    s = sub.add_parser(
        "remote", help="add, list or remove remotes (S3 buckets)", epilog=REMOTE_EPILOG,
        formatter_class=raw,
    )  # fmt: skip
    rsub = s.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    a = rsub.add_parser("add", help="name an s3://BUCKET/PREFIX")
    a.add_argument("name")
    a.add_argument("url", metavar="s3://BUCKET/PREFIX")
    a.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL, else AWS)")
    a.set_defaults(handler=cmd_remote_add)
    a = rsub.add_parser("list", help="list remotes, with ahead/behind as last seen")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_remote_list)
    a = rsub.add_parser("remove", help="forget a remote (the bucket is not touched)")
    a.add_argument("name")
    a.set_defaults(handler=cmd_remote_remove)

    s = sub.add_parser(
        "push",
        help="publish main, tags and decisions to a remote (refused if its main moved)",
    )
    s.add_argument("remote", nargs="?", help="remote name (default: the only one, or origin)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_push)

    s = sub.add_parser("fetch", help="bring a remote's versions, tags and decisions in")
    s.add_argument("remote", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_fetch)

    s = sub.add_parser(
        "pull", help="fetch, then merge the remote's main into main (per image; conflicts listed)"
    )
    s.add_argument("remote", nargs="?")
    side = s.add_mutually_exclusive_group()
    side.add_argument("--ours", action="store_true", help="keep ours for every conflict")
    side.add_argument("--theirs", action="store_true", help="take theirs for every conflict")
    s.add_argument(
        "--resolve", action="append", default=[], metavar="IMAGE=ours|theirs",
        help="choose a side for one image (hash or unique prefix); repeatable",
    )  # fmt: skip
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_pull)

    s = sub.add_parser("clone", help="a new project from a remote (--lazy: fetch images on use)")
    s.add_argument("url", metavar="s3://BUCKET/PREFIX")
    s.add_argument("directory", metavar="DIR")
    s.add_argument("--endpoint-url")
    s.add_argument("--lazy", action="store_true", help="only metadata now; images when used")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_clone)


def _open(args: argparse.Namespace) -> Any:
    from labeldesk.core.store.project import Project

    return Project.open(Path(args.project))


def cmd_remote_add(args: argparse.Namespace) -> int:
    from labeldesk.core.remote.config import add_remote

    with _open(args) as project:
        r = add_remote(project, args.name, args.url, args.endpoint_url)
    print(f"remote {r.name}: {r.url}" + (f" at {r.endpoint_url}" if r.endpoint_url else ""))
    return 0


def cmd_remote_list(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import emit_json, table
    from labeldesk.core.remote.config import list_remotes
    from labeldesk.core.remote.sync import ahead_behind

    with _open(args) as project:
        rows = []
        for r in list_remotes(project):
            ab = ahead_behind(project, r.name)
            rows.append(
                {
                    **r.to_json(),
                    "ahead": ab[0] if ab else None,
                    "behind": ab[1] if ab else None,
                }
            )
    if args.json:
        emit_json(rows)
        return 0
    table(
        ["NAME", "URL", "ENDPOINT", "AHEAD", "BEHIND", "LAZY"],
        [
            [
                r["name"],
                r["url"],
                r["endpoint_url"] or "",
                r["ahead"],
                r["behind"],
                "yes" if r["lazy"] else "",
            ]
            for r in rows
        ],
    )
    return 0


def cmd_remote_remove(args: argparse.Namespace) -> int:
    from labeldesk.core.remote.config import remove_remote

    with _open(args) as project:
        remove_remote(project, args.name)
    print(f"removed remote {args.name}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json
    from labeldesk.core.remote.sync import push

    with _open(args) as project, ProgressBar() as bar:
        r = push(project, args.remote, progress=bar)
    if args.json:
        emit_json(r.to_json())
        return 0
    sent = ", ".join(f"{n} {what}" for what, n in r.sent.items()) or "nothing new"
    moved = f"main -> {(r.main or '')[:12]}" if r.moved else "main already there"
    print(f"pushed to {r.remote}: {sent}; {moved}")
    if r.tags_pushed:
        print(f"tags pushed: {', '.join(r.tags_pushed)}")
    for t in r.tags_differ:
        sys.stderr.write(f"tag {t} names another version on {r.remote}; left as it is\n")
    return 0


def _print_fetch(r: Any) -> None:
    print(
        f"fetched from {r.remote}: {len(r.versions)} version(s), {r.objects} image(s), "
        f"{r.decisions} decision(s)"
        + (f"; {r.remote}/main is {r.main[:12]}" if r.main else "; the remote is empty")
    )
    if r.tags_added:
        print(f"new tags: {', '.join(r.tags_added)}")
    for t in r.tags_differ:
        sys.stderr.write(f"tag {t} names another version on {r.remote}; the local one stays\n")


def cmd_fetch(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json
    from labeldesk.core.remote.sync import fetch

    with _open(args) as project, ProgressBar() as bar:
        r = fetch(project, args.remote, progress=bar)
    if args.json:
        emit_json(r.to_json())
    else:
        _print_fetch(r)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json, error
    from labeldesk.core.errors import LabelDeskError
    from labeldesk.core.remote.merge import PullConflictError, pull

    resolutions: dict[str, Resolution] = {}
    for item in args.resolve:
        image, _, side = item.partition("=")
        if side == "ours" or side == "theirs":
            resolutions[image] = side
        else:
            raise LabelDeskError(f"--resolve {item!r}: expected IMAGE=ours or IMAGE=theirs")
    default: Resolution | None = "ours" if args.ours else "theirs" if args.theirs else None
    with _open(args) as project:
        if resolutions:
            resolutions = _expand(project, resolutions)
        try:
            with ProgressBar() as bar:
                r = pull(
                    project,
                    args.remote,
                    resolutions=resolutions,
                    default=default,
                    progress=bar,
                )
        except PullConflictError as e:
            from labeldesk.cli.verbs import image_names

            _print_fetch(e.fetched)
            names = image_names(project, [c.image for c in e.conflicts])
            error(
                f"{len(e.conflicts)} image(s) changed differently here and on "
                f"{e.fetched.remote}/main; main is unchanged"
            )
            for c in e.conflicts:
                sys.stderr.write(f"  - {c.image[:12]}  {names.get(c.image, '')}\n")
            sys.stderr.write(
                "choose with --ours, --theirs or --resolve IMAGE=ours|theirs, then push\n"
            )
            return 1
    if args.json:
        emit_json(r.to_json())
        return 0
    _print_fetch(r.fetched)
    main = (r.main or "")[:12]
    if r.action == "merge":
        print(f"merged: main is {main} ({r.taken} image(s) taken from the remote)")
    elif r.action == "fast-forward":
        print(f"fast-forward: main is {main}")
    elif r.action == "ahead":
        print("main already contains the remote's main; push to publish")
    else:
        print("already up to date")
    return 0


def _expand(project: Any, resolutions: dict[str, Resolution]) -> dict[str, Resolution]:
    from labeldesk.core.errors import LabelDeskError

    out: dict[str, Resolution] = {}
    for prefix, side in resolutions.items():
        rows = project.db.execute(
            "SELECT sha256 FROM image WHERE sha256 >= ? AND sha256 < ? LIMIT 2",
            [prefix, prefix + "g"],
        ).fetchall()
        if len(rows) != 1:
            raise LabelDeskError(f"--resolve {prefix}: names {len(rows)} images, not one")
        out[rows[0][0]] = side
    return out


def cmd_clone(args: argparse.Namespace) -> int:
    from labeldesk.cli.output import ProgressBar, emit_json
    from labeldesk.core.remote.sync import clone

    with ProgressBar() as bar:
        project, r = clone(
            args.url, args.directory, endpoint_url=args.endpoint_url, lazy=args.lazy, progress=bar
        )
    project.close()
    if args.json:
        emit_json(r.to_json())
        return 0
    _print_fetch(r)
    lazy = " (lazy: images are fetched when first used)" if args.lazy else ""
    print(f"cloned into {project.root}{lazy}")
    return 0
