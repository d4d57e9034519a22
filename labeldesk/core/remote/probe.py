"""The capability probe: refuse a bucket that ignores conditional writes.

Some S3-compatible servers accept ``If-None-Match`` and ``If-Match`` and then ignore them; on
such a bucket compare-and-swap silently becomes last-writer-wins and an update is lost. So
before the first push or fetch a remote is tested: a test object is created twice (the second,
create-only write must be refused) and replaced with a wrong etag (which must be refused too).
"""

from __future__ import annotations

import contextlib
import secrets

from ..store.project import Project, now_iso
from .client import Bucket, PreconditionFailed, RemoteError
from .config import Remote


class CapabilityError(RemoteError):
    """The bucket does not honour conditional writes; it cannot hold a LabelDesk remote."""


def probe(bucket: Bucket) -> None:
    key = f"probe/{secrets.token_hex(8)}"
    try:
        if not bucket.create(key, b"first"):
            raise CapabilityError(f"{bucket.where}: a fresh probe key already existed")
        if bucket.create(key, b"second"):
            raise CapabilityError(
                f"{bucket.where} ignores If-None-Match: a second create-only write of {key} "
                "was accepted, so two pushers could overwrite each other; this server "
                "cannot hold a LabelDesk remote (use one with conditional writes: AWS S3, "
                "Cloudflare R2, SeaweedFS, MinIO)"
            )
        try:
            bucket.replace(key, b"third", '"0000000000000000000000000000000a"')
        except PreconditionFailed:
            pass
        else:
            raise CapabilityError(
                f"{bucket.where} ignores If-Match: a replace with a wrong etag was accepted, "
                "so a ref could move under another pusher; this server cannot hold a "
                "LabelDesk remote"
            )
    finally:
        with contextlib.suppress(RemoteError):  # a leftover probe object harms nothing
            bucket.delete(key)


def ensure_probed(project: Project, remote: Remote, bucket: Bucket) -> None:
    """Probe the remote once; the time it passed is kept, so later uses skip it."""
    if remote.probed_at:
        return
    probe(bucket)
    with project.transaction():
        project.db.execute(
            "UPDATE remote SET probed_at = ? WHERE name = ?", [now_iso(), remote.name]
        )
