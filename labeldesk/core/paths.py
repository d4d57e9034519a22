"""Paths read from the user's disk: how they are shown, and the one rule for symbolic links.

The rule, shared by ``add``, ``import coco`` and ``import yolo``: a folder the user (or a
dataset's own file) names is a *scope*. A symbolic link met inside a scope, to a file or to a
folder, is followed only when its target lies inside that scope too; a link whose target lies
outside it is refused, itemised, unless the user asked for ``--follow-links``. Links inside the
scope are harmless (they only name the scope's own files twice), but a link out of it makes an
import read files nobody pointed it at: a downloaded dataset could pull ``~/private`` into a
shared project, or show the lines of ``/etc/passwd`` in an error list. Paths named explicitly
(a command-line argument, a ``data.yaml`` entry, a COCO ``--images`` folder) are scopes
themselves and are taken as named.

A linked folder that is not walked (a loop back to a folder being read, or a refused link) is
always reported, never silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

#: ``report(path, reason)``: a file or folder that was not read, and why.
ReportFn = Callable[[Path, str], None]

FOLLOW_HINT = "use --follow-links to read it"


def display_path(path: Path | str) -> str:
    """A path as text we can store: undecodable bytes in names become escapes, not errors."""
    s = os.fspath(path)
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def real(path: Path | str) -> Path:
    """Where ``path`` really is: every link and ``..`` resolved (``os.path.realpath``)."""
    return Path(os.path.realpath(path))


def lexically_inside(path: Path | str, scope: Path | str) -> bool:
    """Whether ``path`` is named inside ``scope`` before any link is followed (``..`` counts
    lexically: ``scope/a/../..`` is outside)."""
    p, s = os.path.abspath(path), os.path.abspath(scope)  # abspath normalises; strings: fast
    return p == s or p.startswith(s if s.endswith(os.sep) else s + os.sep)


def _has_link_below(path: Path, scope: Path) -> bool:
    """Whether a link could take ``path`` out of ``scope``: one of its components below
    ``scope`` is a symbolic link, or it climbs with ``..``. One ``lstat`` per component below
    the scope (usually one or two) and plain string work, so checking every image of a large
    import stays cheap."""
    p, sc = os.fspath(path), os.fspath(scope)
    if ".." in p.replace("\\", "/").split("/"):
        return True  # "link/.." is not where it reads: only the full check can tell
    p, sc = os.path.abspath(p), os.path.abspath(sc)  # abspath is lexical: resolves no link
    prefix = sc if sc.endswith(os.sep) else sc + os.sep
    if not p.startswith(prefix):
        return p != sc  # not named below the scope: only the full check can tell
    current = sc
    for part in p[len(prefix) :].split(os.sep):
        current = os.path.join(current, part)
        if os.path.islink(current):
            return True
    return False


def link_problem(path: Path, scope: Path, *, follow_links: bool = False) -> str | None:
    """Why ``path``, found inside ``scope``, must not be read; None if it may be.

    The one link rule (see the module docstring): ``path`` may be read when it really lies
    inside ``scope`` (links that stay inside are fine), or when ``follow_links`` is set. A
    broken link is always a problem. ``path`` need not exist (a missing file is the caller's
    to report).
    """
    if not _has_link_below(path, scope):
        return None
    if os.path.islink(path) and not path.exists():
        return f"broken symbolic link (to {display_path(os.readlink(path))})"
    if follow_links:
        return None
    target = real(path)
    if target.is_relative_to(real(scope)):
        return None
    return (
        f"a symbolic link leads outside {display_path(scope)} (to {display_path(target)}); "
        f"not read ({FOLLOW_HINT})"
    )


def walk_files(
    folder: Path,
    report: ReportFn,
    *,
    follow_links: bool = False,
    scope: Path | None = None,
    skip_hidden: bool = False,
    skip: Path | None = None,
    want: Callable[[str], bool] | None = None,
    note: ReportFn | None = None,
) -> Iterator[Path]:
    """Files below ``folder`` (recursively, sorted by name at each level), under the link rule.

    ``scope`` (default ``folder``) is where links may lead. A linked folder inside it is walked
    (so a dataset may link its splits together); one that leaves it is passed to ``report``
    (not read) unless ``follow_links``. A folder already read, or a link back to a folder that
    contains the one being read (a loop), is passed to ``note`` (default ``report``): nothing
    is lost by not reading it twice, but it is said. Only files whose name passes ``want`` are
    looked at, so a link out of the dataset from, say, a README does not refuse an import of
    images. ``skip`` is a folder left out on purpose (YOLO's flat layout keeps labels beside
    images); hidden entries are skipped with ``skip_hidden`` (Ultralytics' glob does that).
    Paths are yielded as found below ``folder``, never resolved, so names stay the user's.
    """
    scope = scope if scope is not None else folder
    note = note or report
    read: set[Path] = set()  # real folders read (or being read), so none is read twice

    def walk(d: Path, r: Path) -> Iterator[Path]:
        read.add(r)
        try:
            with os.scandir(d) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as err:
            report(d, f"cannot list the folder: {err.strerror or err}")
            return
        for e in items:
            if skip_hidden and e.name.startswith("."):
                continue
            path = Path(d, e.name)
            try:
                linked = e.is_symlink()
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                linked, is_dir = False, False
            if is_dir:
                if skip is not None and path == skip:
                    continue
                if linked and (reason := link_problem(path, scope, follow_links=follow_links)):
                    report(path, f"linked folder: {reason}")
                    continue
                target = real(path) if linked else r / e.name
                if linked and r.is_relative_to(target):
                    note(
                        path,
                        f"linked folder: leads back to {display_path(target)}, which "
                        "contains it (a loop); not read again",
                    )
                elif target in read:
                    note(path, f"folder already read ({display_path(target)}); not read again")
                else:
                    yield from walk(path, target)
            elif want is None or want(e.name):
                if linked and (reason := link_problem(path, scope, follow_links=follow_links)):
                    report(path, reason)
                elif _is_regular(e):
                    yield path
                else:  # a FIFO or device would block or never end when read
                    report(path, "not a regular file")

    yield from walk(folder, real(folder))


def _is_regular(entry: os.DirEntry) -> bool:
    """A regular file (through a link, if it is one). Uses the type the folder listing gave,
    so a plain file costs no extra system call."""
    try:
        return entry.is_file(follow_symlinks=True)
    except OSError:
        return False
