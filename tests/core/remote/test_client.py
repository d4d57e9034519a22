"""The S3 client's batches on a real S3 server: bounded threads, first failure stops the batch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from labeldesk.core.remote.client import Bucket, RemoteError


def native_threads() -> int:
    """Every thread of this process, the S3 client's runtime's too (not only Python's)."""
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_batch_runs_on_a_fixed_number_of_threads_whatever_its_size(remote_url: str) -> None:
    """What a push or a clone holds must not grow with the number of images. The asyncio API
    handed each finished request to a new runtime thread while this one held the GIL, so the
    threads (and memory) grew with the number of requests; the fixed pool does not."""
    bucket = Bucket(remote_url)
    n, concurrency = 1500, 32
    bucket.create_many(((f"k/{i}", lambda i=i: b"x" * 2000 + str(i).encode()) for i in range(n)),
                       concurrency=concurrency)  # fmt: skip
    before = native_threads()
    seen: list[int] = []
    got: dict[str, str] = {}

    def arrived(key: str, data: bytes) -> None:
        for _ in range(30):  # hold the GIL a while, as hashing and writing an image does
            hashlib.sha256(data).digest()
        got[key] = data[2000:].decode()
        seen.append(native_threads())

    for _ in range(3):
        bucket.get_each((f"k/{i}" for i in range(n)), arrived, concurrency)
    assert got == {f"k/{i}": str(i) for i in range(n)}
    # the pool's threads, the runtime's few workers, and nothing that grows with n
    assert max(seen) <= before + concurrency + 8, (before, max(seen))
    assert native_threads() <= before + 8  # the pool's threads are gone once the batch ends


def test_the_first_failure_stops_the_batch_and_is_raised(remote_url: str) -> None:
    bucket = Bucket(remote_url)
    bucket.create_many(((f"k/{i}", lambda: b"x") for i in range(50)), concurrency=4)
    handed: list[str] = []

    def arrived(key: str, data: bytes) -> None:
        handed.append(key)
        if len(handed) == 5:
            raise KeyboardInterrupt  # a cancel (or Ctrl-C) raised by the handler

    with pytest.raises(KeyboardInterrupt):
        bucket.get_each((f"k/{i}" for i in range(50)), arrived, 4)
    assert len(handed) == 5  # nothing handed on after the failure
    keys = ["k/0", "missing", *(f"k/{i}" for i in range(1, 50))]
    with pytest.raises(RemoteError, match="names missing but does not hold it"):
        bucket.get_each(iter(keys), lambda k, d: None, 4)
