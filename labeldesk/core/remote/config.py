"""Remotes of a project: a name for an ``s3://bucket/prefix`` (and an endpoint), kept in the DB.

Only the URL and the endpoint are stored, never a credential: those come from the standard AWS
environment variables when a remote is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..store.project import Project, now_iso
from .client import RemoteError, RemoteURL

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT = "origin"


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    endpoint_url: str | None
    probed_at: str | None
    lazy: bool

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "endpoint_url": self.endpoint_url,
            "probed_at": self.probed_at,
            "lazy": self.lazy,
        }


def add_remote(
    project: Project, name: str, url: str, endpoint_url: str | None = None, *, lazy: bool = False
) -> Remote:
    """Register a remote. Nothing is contacted yet: the first push or fetch probes the bucket."""
    if not _NAME_RE.match(name):
        raise RemoteError(
            f"{name!r} is not a remote name: letters, digits, '.', '_', '-', at most 64"
        )
    parsed = RemoteURL.parse(url)
    if endpoint_url is not None and not re.match(r"^https?://[^\s/]+", endpoint_url):
        raise RemoteError(f"{endpoint_url!r} is not an endpoint URL (http://HOST:PORT)")
    if endpoint_url and "@" in endpoint_url.split("//", 1)[1].split("/", 1)[0]:
        # user:secret@host would put a credential in the project file
        raise RemoteError("an endpoint URL must not carry credentials; use AWS_* variables")
    with project.transaction():
        if get_remote(project, name, missing_ok=True) is not None:
            raise RemoteError(f"a remote named {name} exists; remove it first")
        project.db.execute(
            "INSERT INTO remote (name, url, endpoint_url, added_at, added_by, lazy) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [name, str(parsed), endpoint_url, now_iso(), project.user, int(lazy)],
        )
    remote = get_remote(project, name)
    assert remote is not None
    return remote


def get_remote(project: Project, name: str | None, *, missing_ok: bool = False) -> Remote | None:
    """The remote ``name``; with None, the only remote (or ``origin`` among several)."""
    db = project.db
    if name is None:
        names = [r[0] for r in db.execute("SELECT name FROM remote ORDER BY name")]
        if not names:
            raise RemoteError("this project has no remote; add one with `labeldesk remote add`")
        name = names[0] if len(names) == 1 else DEFAULT
        if name not in names:
            raise RemoteError(f"this project has several remotes ({', '.join(names)}); name one")
    row = db.execute(
        "SELECT name, url, endpoint_url, probed_at, lazy FROM remote WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        if missing_ok:
            return None
        raise RemoteError(f"no remote named {name}; see `labeldesk remote list`")
    return Remote(row[0], row[1], row[2], row[3], bool(row[4]))


def list_remotes(project: Project) -> list[Remote]:
    rows = project.db.execute(
        "SELECT name, url, endpoint_url, probed_at, lazy FROM remote ORDER BY name"
    ).fetchall()
    return [Remote(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]


def remove_remote(project: Project, name: str) -> None:
    """Forget a remote (and what was known of it). The bucket is not touched."""
    with project.transaction():
        remote = get_remote(project, name)
        assert remote is not None
        if remote.lazy:
            missing = _missing_objects(project)
            if missing:
                raise RemoteError(
                    f"this project was cloned lazily from {name} and {missing} image(s) are "
                    "not fetched yet; keep the remote, or fetch them first (exporting the "
                    "versions that hold them fetches them)"
                )
        project.db.execute("DELETE FROM remote WHERE name = ?", [name])


def _missing_objects(project: Project) -> int:
    n = 0
    for (sha,) in project.db.execute("SELECT sha256 FROM image"):
        if not project.objects.has_file(sha):
            n += 1
    return n
