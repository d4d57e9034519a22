"""``labeldesk`` command line: a thin, git-like layer over ``labeldesk.core``.

Only argparse is imported at start; each verb imports what it needs when it runs, so
``labeldesk --help`` answers at once and never loads torch or Qt.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

#: The commands each verbs module of the CLI adds (the rest are added here). A run imports
#: only the module of its own command; tests/cli/test_cli.py checks this table against what
#: the modules add, so a new command cannot be missed.
VERB_MODULES: dict[str, tuple[str, ...]] = {
    "formats": ("export", "import"),
    "prelabel": ("model", "prelabel"),
    "validation": ("agreement", "drift", "evaluations", "report", "validate"),
    "queue": ("queue",),
    "training": ("lineage", "promote", "split", "train"),
    "remote": ("clone", "fetch", "pull", "push", "remote"),
}

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it

EPILOG = """\
REF names a version: main, a tag, a version id (or a unique prefix of at least 4 hex digits),
each optionally followed by ~N for its N-th first-parent ancestor (main~1 is the one before main).

Examples:
  labeldesk init my-project
  labeldesk -p my-project add ~/photos/batch-1
  labeldesk -p my-project log
  labeldesk -p my-project diff main~1 main
  labeldesk -p my-project tag v1.0 main && labeldesk -p my-project approve v1.0 --note "QA ok"
"""


class _Skipped:
    """Stands in for the parser of a command that is not being run: takes every call, builds
    nothing (see :class:`_OnlyCommand`)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """The sub-parsers action, building the parser of one command only.

    Building all ~45 command parsers costs more than everything else a read command does
    (``labeldesk log`` on a small project); a run needs only its own. ``--help`` and errors
    with no known command still build them all, so what they list is complete.
    """

    def __init__(self, sub: Any, wanted: str | None) -> None:
        self.sub, self.wanted = sub, wanted
        self.names: set[str] = set()

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        aliases = kwargs.get("aliases", ())
        self.names.update((name, *aliases))
        if self.wanted is None or self.wanted not in (name, *aliases):
            return _Skipped()
        return self.sub.add_parser(name, **kwargs)


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (the first argument that is no option or option value)."""
    it = iter(argv)
    for a in it:
        if a in ("-p", "--project"):
            next(it, None)
        elif a == "--":
            return next(it, None)
        elif not a.startswith("-"):
            return a
    return None


def command_names() -> set[str]:
    """Every command word, found without building a parser or importing a verbs module."""
    only = _OnlyCommand(None, None)
    _add_commands(only, modules=False)
    return only.names | {c for commands in VERB_MODULES.values() for c in commands}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``command`` only that command's (faster; see _OnlyCommand)."""
    p = argparse.ArgumentParser(
        prog="labeldesk",
        description="Keep computer-vision datasets accurate as they grow: import, pre-label, "
        "review, version, approve, export, validate, train, share.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-p",
        "--project",
        default=os.environ.get("LABELDESK_PROJECT", "."),
        help="project folder (default: the current folder, or $LABELDESK_PROJECT)",
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_commands(sub if command is None else _OnlyCommand(sub, command), command=command)
    return p


def _add_commands(sub: Any, *, command: str | None = None, modules: bool = True) -> None:
    """Add the commands to ``sub``; with ``command``, of the verbs modules only its own."""
    s = sub.add_parser("init", help="create a project (in PATH or the project folder)")
    s.add_argument("path", nargs="?", help="folder to create the project in")

    s = sub.add_parser("add", help="import image files and folders as a new version")
    s.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (recursive)")
    s.add_argument("-m", "--message", help="version message (default: 'Add N images')")
    s.add_argument(
        "--follow-links",
        action="store_true",
        help="also read symbolic links that lead outside the folders named (default: skip "
        "them, each reported)",
    )
    s.add_argument("--json", action="store_true", help="print the report as JSON")

    s = sub.add_parser("log", help="list versions, newest first")
    s.add_argument("ref", nargs="?", default="main", help="start from REF (default: main)")
    s.add_argument("-n", "--limit", type=int, help="show at most N versions")
    s.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("show", help="show one version")
    s.add_argument("ref", nargs="?", default="main", metavar="REF")
    s.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("diff", help="what changed between two versions")
    s.add_argument("ref_a", metavar="REF")
    s.add_argument("ref_b", metavar="REF")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--limit", type=int, default=50, help="images to list in text (default 50)")

    s = sub.add_parser("tag", help="name a version (or list tags without arguments)")
    s.add_argument("name", nargs="?")
    s.add_argument("ref", nargs="?", default="main", metavar="REF")
    s.add_argument("-f", "--force", action="store_true", help="move an existing tag")
    s.add_argument(
        "-d", "--delete", action="store_true", help="delete tag NAME (the version stays)"
    )
    s.add_argument("--json", action="store_true", help="print JSON (when listing)")

    s = sub.add_parser("approve", help="approve a version as a release (leads only)")
    s.add_argument("ref", metavar="REF")
    s.add_argument("--note", default="", help="why, for the record")

    s = sub.add_parser("reject", help="reject a version (leads only)")
    s.add_argument("ref", metavar="REF")
    s.add_argument("--note", required=True, help="why it was rejected")

    s = sub.add_parser("revert", help="commit a new version whose content equals REF")
    s.add_argument("ref", metavar="REF")
    s.add_argument("-m", "--message", help="version message")

    s = sub.add_parser("fsck", help="re-hash every object and cross-check the database")
    s.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("member", help="list members, or set a user's role (leads only)")
    s.add_argument("user", nargs="?")
    s.add_argument("role", nargs="?", choices=("annotator", "lead"))

    s = sub.add_parser("gui", help="open the review window (the default without a command)")
    s.add_argument("path", nargs="?", help="project to open (default: -p, else the last one)")
    s.add_argument("--screenshot", metavar="PNG", help="save the window to PNG once loaded, quit")

    s = sub.add_parser("demo", help="build a demo project and show what LabelDesk does")
    s.add_argument("path", nargs="?", default="labeldesk-demo", help="demo folder")
    s.add_argument("--images", type=int, default=48, help="number of generated images")
    s.add_argument("--force", action="store_true", help="replace an existing demo folder")
    s.add_argument("--no-gui", action="store_true", help="only build and print; do not open")

    if not modules:
        return
    import importlib

    for name, commands in VERB_MODULES.items():
        if command is None or command in commands:
            importlib.import_module(f"labeldesk.cli.{name}").add_parsers(sub)


def _version() -> str:
    from labeldesk import __version__

    return f"labeldesk {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(words)
    # Top-level help (an -h before the command word) lists every command: build them all.
    help_asked = (
        any(w in ("-h", "--help") for w in words[: words.index(command)]) if command else True
    )
    alone = command is not None and not help_asked and command in command_names()
    parser = build_parser(command if alone else None)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or sys.argv[1:]), "gui"])
    from labeldesk.cli import verbs

    try:
        code = verbs.run(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at exit
    except BrokenPipeError:
        # `labeldesk log | head`: the reader has gone. Say nothing more (as git and cat do);
        # stdout goes to /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (OSError, sqlite3.Error) as e:
        # A full or read-only disk, a refused permission, a file that is no database: the
        # machine's condition, not a bug, so one clear line and status 2. Anything else is a
        # bug and keeps its traceback (re-raised).
        from labeldesk.core.errors import storage_error

        where = args.path if args.command == "init" and args.path else args.project
        known = storage_error(e, where)
        if known is None:
            raise
        from labeldesk.cli.output import error

        error(str(known))
        return known.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
