"""What an operation changed, so the window refreshes that and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labeldesk.core.store.versions import Version


@dataclass(frozen=True)
class Changed:
    """The answer of every app operation that writes.

    ``version``: the new version it made (a commit, an import, added images, a revert, a pull):
    the window starts a new session on it and the watched models are evaluated on it.
    ``versions``: the history's rows changed without a new version (a tag, a decision, a fetch).
    ``classes``/``session``: the review session's class list or its state changed.
    ``evaluations``/``models``: stored evaluations or registered models changed.
    ``report``: the operation's own report, for the message the user sees.
    """

    version: Version | None = None
    versions: bool = False
    classes: bool = False
    session: bool = False
    evaluations: bool = False
    models: bool = False
    report: Any = None

    @property
    def new_version(self) -> bool:
        return self.version is not None
