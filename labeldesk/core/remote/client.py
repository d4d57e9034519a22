"""The S3 client: a bucket prefix with create-only writes and compare-and-swap.

obstore (Rust's object_store behind a Python API) was chosen over boto3 by measurement: 1,000
objects of 4 kB against a local SeaweedFS, 32 requests in flight, put 1,474/s and get 2,141/s
with obstore against 400/s and 461/s with boto3 and a 32-connection pool (docs/remote.md).
It is imported only when a remote is used, so every other command starts without it.

Credentials come only from the standard AWS environment variables (read by obstore itself);
the endpoint from the remote's ``--endpoint-url``, else ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``. Nothing here writes or prints a credential.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LabelDeskError, StorageError

_URL_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
#: Requests in flight at once in a batch (image bytes or records), each on a thread of its own.
#: Against the local SeaweedFS of bench/remote.py, 64 moved 10,000 small images as fast as 128
#: or 256 did (and as s5cmd's 256 workers), in 30 MB less memory than 256 (docs/benchmarks.md).
CONCURRENCY = 64


class RemoteError(LabelDeskError):
    """A remote refused or could not do what was asked."""


class RemoteUnavailableError(RemoteError, StorageError):
    """The server could not be reached or failed; nothing was published past what it confirmed."""


class PreconditionFailed(RemoteError):
    """A conditional write lost: the key exists (create) or changed (compare-and-swap)."""


@dataclass(frozen=True)
class RemoteURL:
    bucket: str
    prefix: str  # without leading or trailing slash; may be empty

    @classmethod
    def parse(cls, url: str) -> RemoteURL:
        m = _URL_RE.match(url.strip())
        if not m:
            raise RemoteError(
                f"{url!r} is not an S3 URL: expected s3://BUCKET/PREFIX "
                "(a bucket name of 3-63 lower-case letters, digits, dots or hyphens)"
            )
        return cls(m.group("bucket"), (m.group("prefix") or "").strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def endpoint_for(endpoint_url: str | None) -> str | None:
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class Bucket:
    """Keys under one ``s3://bucket/prefix``; every method names keys relative to the prefix."""

    def __init__(self, url: RemoteURL | str, endpoint_url: str | None = None) -> None:
        self.url = RemoteURL.parse(url) if isinstance(url, str) else url
        self.endpoint = endpoint_for(endpoint_url)
        from obstore.store import S3Store  # lazy: only remote commands pay for it

        config: dict[str, Any] = {}
        if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
            config["region"] = "us-east-1"
        if self.endpoint:
            config["endpoint"] = self.endpoint
        client_options: Any = {"connect_timeout": "5s", "timeout": "60s"}
        if self.endpoint and self.endpoint.startswith("http://"):
            client_options["allow_http"] = True
        # Few, quick retries: a server that is down should give a clear error in seconds, not
        # after object_store's default three minutes. A rerun resumes where this one stopped.
        retry: Any = {
            "max_retries": 2,
            "backoff": {
                "init_backoff": dt.timedelta(milliseconds=100),
                "max_backoff": dt.timedelta(seconds=1),
                "base": 2,
            },
            "retry_timeout": dt.timedelta(seconds=5),
        }
        self._store = S3Store(
            self.url.bucket,
            prefix=self.url.prefix or None,
            client_options=client_options,
            retry_config=retry,
            **config,
        )

    @property
    def where(self) -> str:
        return f"{self.url}" + (f" at {self.endpoint}" if self.endpoint else "")

    def _wrap(self, e: BaseException, key: str) -> Exception:
        import obstore.exceptions as oe

        if isinstance(e, oe.AlreadyExistsError | oe.PreconditionError):
            return PreconditionFailed(f"{key}: {_first_line(e)}")
        if isinstance(e, oe.PermissionDeniedError | oe.UnauthenticatedError):
            return RemoteError(
                f"{self.where} refused access to {key} ({_first_line(e)}); check the AWS "
                "credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            )
        return RemoteUnavailableError(f"cannot reach {self.where} ({key}): {_first_line(e)}")

    # -- single requests -----------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str] | None:
        """The bytes and etag of ``key``, or None if it does not exist."""
        import obstore

        try:
            r = obstore.get(self._store, key)
            return bytes(r.bytes()), str(r.meta.get("e_tag") or "")
        except FileNotFoundError:
            return None
        except Exception as e:
            raise self._wrap(e, key) from e

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if absent (``If-None-Match: *``); False if it already existed."""
        import obstore

        try:
            obstore.put(self._store, key, data, mode="create")
            return True
        except Exception as e:
            err = self._wrap(e, key)
            if isinstance(err, PreconditionFailed):
                return False
            raise err from e

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """Compare-and-swap (``If-Match: etag``); the new etag. Raises PreconditionFailed."""
        import obstore

        try:
            r = obstore.put(self._store, key, data, mode={"e_tag": etag})
            return str(r.get("e_tag") or "")
        except Exception as e:
            raise self._wrap(e, key) from e

    def create_or_fail(self, key: str, data: bytes) -> str:
        """Create ``key``; its etag. Raises PreconditionFailed if it exists."""
        import obstore

        try:
            r = obstore.put(self._store, key, data, mode="create")
            return str(r.get("e_tag") or "")
        except Exception as e:
            raise self._wrap(e, key) from e

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            pass
        except Exception as e:
            raise self._wrap(e, key) from e

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (relative to the remote's prefix)."""
        import obstore

        try:
            out: list[str] = []
            for chunk in obstore.list(self._store, prefix=prefix):
                out.extend(str(m["path"]) for m in chunk)
            return out
        except Exception as e:
            raise self._wrap(e, prefix) from e

    # -- batches ---------------------------------------------------------------------------------
    def _pool(
        self,
        items: Iterable[Any],
        work: Callable[[Any], Any],
        done: Callable[[Any, Any], None],
        concurrency: int,
    ) -> None:
        """``work(item)`` on every item, ``concurrency`` at a time, then ``done(item, result)``
        in this thread. Only ``concurrency`` items are taken from ``items`` ahead of their
        results, so only the requests in flight hold data however many items there are. The
        first failure (of a request, or raised by ``done``: a cancel) stops the batch: no other
        item is taken and no other result handed on; it is raised once the requests in flight
        have finished.

        Blocking requests on a fixed set of threads (obstore lets go of the GIL while one
        waits), not obstore's asyncio API: that one hands every finished request to a new
        thread of the Rust runtime's blocking pool to take the GIL, and while this thread holds
        the GIL (hashing, writing what arrived) those pile up, so a clone of 40,000 images held
        about 280 threads and its memory grew with the number of images. The fixed pool keeps
        the threads (and memory) constant and was faster too (docs/benchmarks.md, Remote).
        """
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        it = iter(items)
        failed: BaseException | None = None
        running: dict[Future[Any], Any] = {}
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="labeldesk-remote")

        def take() -> None:  # the next item, if any, into a request
            for item in it:
                running[pool.submit(work, item)] = item
                return

        try:
            for _ in range(concurrency):
                take()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    item = running.pop(f)
                    if failed is not None:
                        continue
                    try:
                        done(item, f.result())
                    except BaseException as e:  # re-raised below, once the rest have finished
                        failed = e
                        continue
                    take()
        finally:
            # On a failure, a cancel or Ctrl-C: nothing new starts, the requests in flight end.
            pool.shutdown(wait=True, cancel_futures=True)
        if failed is not None:
            raise failed

    def create_many(
        self,
        items: Iterable[tuple[str, Callable[[], bytes]]],
        on_done: Callable[[str], None] | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        """Create-only writes of many keys, ``concurrency`` at a time; existing keys are fine.

        ``items`` pairs each key with a function giving its bytes (called on a request thread,
        so it must not touch the database), so only the requests in flight hold data.
        ``on_done(key)`` runs (in this thread) as each one is confirmed; an exception it raises
        (a cancel) stops the batch like a failed request.
        """

        def one(item: tuple[str, Callable[[], bytes]]) -> None:
            key, data = item
            self.create(key, data())  # False (it existed) is fine: the same bytes are there

        def done(item: tuple[str, Callable[[], bytes]], _: None) -> None:
            if on_done is not None:
                on_done(item[0])

        self._pool(items, one, done, concurrency)

    def get_each(
        self,
        keys: Iterable[str],
        on_item: Callable[[str, bytes], None],
        concurrency: int = CONCURRENCY,
    ) -> None:
        """Get many keys, ``concurrency`` at a time, handing each to ``on_item(key, bytes)`` (in
        this thread) as it arrives, so nothing is held past its handling. A missing key is an
        error; so is anything ``on_item`` raises, which stops the batch."""

        def one(key: str) -> bytes:
            got = self.get(key)
            if got is None:
                raise RemoteError(
                    f"{self.where} names {key} but does not hold it; the remote is "
                    "damaged (a record was deleted by hand?)"
                )
            return got[0]

        self._pool(keys, one, on_item, concurrency)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The bytes of many keys, ``CONCURRENCY`` at a time. A missing key is an error."""
        out: dict[str, bytes] = {}
        self.get_each(keys, out.__setitem__)
        return out

    def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> Sequence[bytes]:
        """The bytes of ``ranges`` (start, end) of one key; the client merges neighbouring
        ranges into one request, so reading most of an object costs one request."""
        import obstore

        if not ranges:
            return []
        try:
            got = obstore.get_ranges(
                self._store, key, starts=[a for a, _ in ranges], ends=[b for _, b in ranges]
            )
        except FileNotFoundError:
            raise RemoteError(
                f"{self.where} names {key} but does not hold it; the remote is damaged"
            ) from None
        except Exception as e:
            raise self._wrap(e, key) from e
        return [bytes(g) for g in got]
