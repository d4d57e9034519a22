"""Remote operations of the window: push, pull, and ahead/behind as last seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labeldesk.core.progress import CancelFn, ProgressFn
from labeldesk.core.store.project import Project

from .changes import Changed


@dataclass(frozen=True)
class RemoteStatus:
    name: str | None  # the remote shown (None: the project has none)
    ahead_behind: tuple[int, int] | None  # None: not synced yet


def status(project: Project) -> RemoteStatus:
    """The remote and ahead/behind counted from what the project last saw (no network)."""
    from labeldesk.core.remote.config import list_remotes
    from labeldesk.core.remote.sync import ahead_behind

    remotes = list_remotes(project)
    if not remotes:
        return RemoteStatus(None, None)
    try:
        ab = ahead_behind(project, None)
    except Exception:  # several remotes and none named origin: nothing to show
        ab = None
    return RemoteStatus(remotes[0].name if len(remotes) == 1 else "origin", ab)


def push(project: Project, progress: ProgressFn, cancel: CancelFn) -> Changed:
    from labeldesk.core.remote.sync import push as run

    return Changed(versions=True, report=run(project, None, progress, cancel))


def pull(
    project: Project,
    resolutions: dict[str, Any] | None,
    progress: ProgressFn,
    cancel: CancelFn,
) -> Changed:
    """Fetch and merge into main; conflicting images raise ``pull_conflict()``'s class."""
    from labeldesk.core.remote.merge import pull as run

    r = run(project, None, resolutions=resolutions, progress=progress, cancel=cancel)
    # main may have moved, yet the window keeps its session (as before): versions refresh
    return Changed(versions=True, report=r)


def pull_conflict() -> type[BaseException]:
    from labeldesk.core.remote.merge import PullConflictError

    return PullConflictError
