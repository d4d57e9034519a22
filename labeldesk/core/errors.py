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


@dataclass(frozen=True)
class Problem:
    """One itemised problem with the input: where it is and what is wrong."""

    where: str
    reason: str

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
