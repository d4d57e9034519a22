"""Errors the core raises on purpose.

Every error a user can cause derives from :class:`LabelDeskError`, so the CLI and the GUI can show
it as a message instead of a traceback. Errors about bad input carry an itemised list so the user
sees every problem at once, not one per attempt.
"""

from __future__ import annotations

from typing import NamedTuple

# The records here are NamedTuples, not dataclasses: every command imports this module, and
# importing `dataclasses` (it imports `inspect`) and building a dataclass cost more than a
# read command such as `labeldesk log` spends on everything else of its own.


class LabelDeskError(Exception):
    """Base class of errors that are the user's to fix (shown without a traceback)."""

    #: The command line's exit status for this error: 1 for a refused operation, 2 when the
    #: storage (a full or read-only disk, a file that is no project) stopped it.
    exit_code = 1


class NotAProjectError(LabelDeskError):
    pass


class StorageError(LabelDeskError):
    """The disk or the database file, not the input, stopped the operation; nothing changed."""

    exit_code = 2


class NotADatabaseError(NotAProjectError, StorageError):
    """``labeldesk.db`` exists but is not a SQLite file, or not a LabelDesk project."""


class ReadOnlyProjectError(StorageError):
    """A write to a project opened read-only (its folder or database is not writable)."""


class DiskFullError(StorageError):
    """No space left on the device (or quota) while writing."""


class SchemaTooNewError(LabelDeskError):
    pass


class RefError(LabelDeskError):
    """A REF that names no version, or names more than one."""


class RefMovedError(LabelDeskError):
    """A compare-and-swap on a ref failed: someone else moved it first."""


class ImmutableError(LabelDeskError):
    """An attempt to change or delete something that must not change (an approved version)."""


class PermissionDeniedError(LabelDeskError):
    """The current user's role does not allow the action."""


class NothingToCommitError(LabelDeskError):
    pass


class CancelledError(LabelDeskError):
    """The user cancelled a long operation; nothing was changed."""

    def __init__(self, message: str = "cancelled; the project is unchanged") -> None:
        super().__init__(message)


#: How many problems one error lists before it gives a count of the rest: imports, exports,
#: evaluations and fsck all stop here, so a file with 100,000 bad entries prints a readable
#: list (and a count) rather than 100,000 lines.
MAX_PROBLEMS = 1000


#: Longest ``where`` or ``reason`` of a :class:`Problem`, in characters. Input decides much of
#: the text (file names, values quoted from a file, an exception's message), and one hostile
#: value must not turn an error list into gigabytes: a YAML alias bomb once did.
MAX_PROBLEM_TEXT = 400


def shorten(text: str, limit: int = MAX_PROBLEM_TEXT) -> str:
    """``text`` cut to at most ``limit`` characters, keeping both ends (a path's file name and
    a message's hint are at the end) and saying how much was left out."""
    if len(text) <= limit:
        return text
    keep = max(limit - len(f" …[{len(text)} characters left out]… "), 2)
    head, tail = keep - keep // 3, keep // 3
    mark = f" …[{len(text) - keep} characters left out]… "
    return text[:head] + mark + text[len(text) - tail :]


class _ProblemFields(NamedTuple):
    where: str
    reason: str


class Problem(_ProblemFields):
    """One itemised problem with the input: where it is and what is wrong.

    Both texts are capped at :data:`MAX_PROBLEM_TEXT` characters here, the one place every
    problem passes through, so no caller has to remember.
    """

    __slots__ = ()

    def __new__(cls, where: object, reason: object) -> Problem:
        return super().__new__(cls, shorten(str(where)), shorten(str(reason)))

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class InputError(LabelDeskError):
    """Bad input; ``problems`` lists every problem found. Nothing was changed."""

    def __init__(self, summary: str, problems: list[Problem]) -> None:
        self.summary = summary
        self.problems = problems
        lines = [summary, *(f"  - {p}" for p in problems)]
        super().__init__("\n".join(lines))


class Conflict(NamedTuple):
    """An image that the session and the current ``main`` both changed, differently."""

    image: str
    base: str | None  # annotation-set hash at the session's base (None: image absent)
    theirs: str | None  # annotation-set hash on main now
    ours: str | None  # annotation-set hash the session wants


class MergeConflictError(LabelDeskError):
    """``main`` moved since the session began and some images were changed on both sides."""

    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        names = ", ".join(c.image[:12] for c in conflicts[:10])
        more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        super().__init__(
            f"{len(conflicts)} image(s) were changed both in this session and on main since "
            f"the session began: {names}{more}. Choose 'ours' or 'theirs' for each."
        )


# -- known failures of the storage --------------------------------------------------------------

_AFTER = "nothing was changed"


def storage_error(exc: BaseException, where: str | None = None) -> StorageError | None:
    """The known storage failure behind ``exc`` as one clear error, or None for anything else.

    A full disk, a read-only file system, a refused permission and SQLite's matching errors are
    conditions of the machine, not bugs: the command line and the window show them as one line
    (exit status 2) instead of a traceback. ``where`` names the project for errors that carry no
    file name (SQLite's). Anything not recognised returns None, so real bugs keep their traceback.
    """
    import errno
    import sqlite3

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno is not None:
        what = exc.filename if exc.filename is not None else where or "the project"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFullError(
                f"disk full: cannot write {what} ({exc.strerror}); {_AFTER}. "
                "Free some space and run the command again."
            )
        if exc.errno == errno.EFBIG:
            return DiskFullError(
                f"file too large: writing {what} passed the file size limit of this file "
                f"system or process; {_AFTER}"
            )
        if exc.errno == errno.EROFS:
            return ReadOnlyProjectError(
                f"read-only file system: cannot write {what} ({exc.strerror}); {_AFTER}. "
                "Read commands (log, show, diff, export, fsck) still work."
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return StorageError(f"permission denied: {what} ({exc.strerror}); {_AFTER}")
        return None
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        db = f"the project database{f' in {where}' if where else ''}"
        # SQLite reports a full disk as SQLITE_FULL when it writes the database or its log,
        # but as a mere I/O error when it cannot grow the shared-memory (-shm) file: look.
        io_error = name.startswith("SQLITE_IOERR") or "disk I/O error" in text
        if (
            name == "SQLITE_FULL"
            or "database or disk is full" in text
            or (io_error and _out_of_space(where))
        ):
            return DiskFullError(
                f"disk full while writing {db}; {_AFTER}. Free some space and run the command "
                "again."
            )
        if name.startswith("SQLITE_READONLY") or "readonly database" in text:
            return ReadOnlyProjectError(
                f"{db} is read-only; {_AFTER}. Read commands (log, show, diff, export, fsck) "
                "still work."
            )
        if name == "SQLITE_NOTADB" or "file is not a database" in text:
            return NotADatabaseError(f"{db} is not a SQLite database ({text}); {_AFTER}")
        if name == "SQLITE_CORRUPT" or "malformed" in text:
            return StorageError(
                f"{db} is damaged ({text}); {_AFTER}. Restore it from a backup; "
                "`sqlite3 labeldesk.db 'PRAGMA integrity_check'` shows where."
            )
        if io_error:
            return StorageError(
                f"disk I/O error on {db} ({text}): the disk may be failing or full; {_AFTER}"
            )
        if name == "SQLITE_CANTOPEN" or "unable to open database file" in text:
            return StorageError(f"cannot open {db} ({text}); {_AFTER}")
    return None


def _out_of_space(where: str | None) -> bool:
    """Whether the file system holding ``where`` has (next to) no free space left."""
    if not where:
        return False
    import os
    from pathlib import Path

    path = Path(where).absolute()
    while not path.exists() and path != path.parent:  # a failed init removed its folder
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


#: What every integrity refusal tells the user to do next.
FSCK_HINT = "run `labeldesk fsck` to check the whole project"


class IntegrityError(InputError):
    """Stored data (an object file or a content-addressed row) does not match its hash.

    Raised by export and evaluation, which refuse to use damaged data rather than pass it on;
    ``problems`` lists each damaged object or row, like ``labeldesk fsck`` does.
    """

    def __init__(self, what: str, problems: list[Problem], count: int | None = None) -> None:
        self.count = len(problems) if count is None else count
        super().__init__(
            f"{what}: {self.count} damaged object(s) or row(s) in the project (missing, or no "
            f"longer matching their hashes); nothing was written; {FSCK_HINT}",
            problems,
        )


def capped(problems: list[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """The first ``limit`` problems, then one that counts the rest (the whole list if shorter)."""
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], more_problems(len(problems) - limit)]


def more_problems(n: int) -> Problem:
    """The entry that ends a capped list: how many problems were not listed."""
    return Problem("…", f"{n} more problems not listed")
