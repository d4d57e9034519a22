"""A lazy clone: image bytes come from the remote when first used, verified by hash."""

from __future__ import annotations

from ..store.project import Project
from . import layout as L
from .client import Bucket, RemoteError


def install_lazy_fetcher(project: Project) -> None:
    """Make the project's object store fetch missing objects from its lazy remote."""
    row = project.db.execute(
        "SELECT url, endpoint_url FROM remote WHERE lazy = 1 ORDER BY name LIMIT 1"
    ).fetchone()
    if row is None:
        return
    url, endpoint = row
    state: dict[str, Bucket] = {}

    def fetch_missing(sha: str) -> bytes:
        # The client is made on first use, so opening a lazy clone costs no import of it.
        if "bucket" not in state:
            state["bucket"] = Bucket(url, endpoint)
        got = state["bucket"].get(L.object_key(sha))
        if got is None:
            raise RemoteError(f"object {sha} is neither here nor on the remote {url}")
        return got[0]

    project.objects.fetch_missing = fetch_missing
