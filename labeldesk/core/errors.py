"""Errors the core raises on purpose.

Every error a user can cause derives from :class:`LabelDeskError`, so the CLI and the GUI can show
it as a message instead of a traceback. Errors about bad input carry an itemised list so the user
sees every problem at once, not one per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass


class LabelDeskError(Exception):
    """Base class of errors that are the user's to fix (shown without a traceback)."""


class NotAProjectError(LabelDeskError):
    pass


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


@dataclass(frozen=True)
class Problem:
    """One itemised problem with the input: where it is and what is wrong.

    Both texts are capped at :data:`MAX_PROBLEM_TEXT` characters here, the one place every
    problem passes through, so no caller has to remember.
    """

    where: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "where", shorten(str(self.where)))
        object.__setattr__(self, "reason", shorten(str(self.reason)))

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class InputError(LabelDeskError):
    """Bad input; ``problems`` lists every problem found. Nothing was changed."""

    def __init__(self, summary: str, problems: list[Problem]) -> None:
        self.summary = summary
        self.problems = problems
        lines = [summary, *(f"  - {p}" for p in problems)]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Conflict:
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
