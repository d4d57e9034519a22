"""Packs: the small records of one push in a few objects, as git's packfiles hold its objects.

A push used to make one request per record (up to 4,096 manifest buckets for one version), so
a clone made as many again. Now the records a push sends (annotation sets, buckets, trees,
versions) go into content-addressed packs: ``packs/<sha>.pack`` is the records' bytes one after
another, named by the SHA-256 of those bytes; ``packs/<sha>.idx`` lists each record's key,
offset and length. Both are written create-only, the pack first, so an index never names a
pack that is not there; a pack without an index (a push killed between the two) is never read.

A record in a pack has the same key, and the same bytes, as it had loose under ``records/``;
a reader looks a key up in the indexes and falls back to the loose key, so remotes written
before packs (or by a client that does not pack) still clone and pull. Every record is
verified against its name as it is read (layout.check_record); a pack whose entries do not
match their names is refused, every bad entry listed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import layout as L
from .client import Bucket, RemoteError

#: A pack is closed when it reaches this size, so building one holds at most this much (twice,
#: with its copy), however large the push; 10,000 images' records take four.
PACK_BYTES = 1 << 20
FORMAT = "labeldesk-pack-1"
#: Pack indexes read at once when a fetch starts (see RecordReader).
INDEX_CONCURRENCY = 4


def build_packs(
    records: Iterable[tuple[str, bytes]], limit: int | None = None
) -> Iterator[tuple[str, bytes, bytes, list[str]]]:
    """(sha, pack bytes, index bytes, keys) for ``records`` in order, ``limit`` bytes a pack
    (PACK_BYTES by default; a record larger than that has a pack of its own)."""
    limit = PACK_BYTES if limit is None else limit
    data = bytearray()
    entries: list[list[Any]] = []

    def close() -> tuple[str, bytes, bytes, list[str]]:
        sha = hashlib.sha256(data).hexdigest()
        index = {"format": FORMAT, "pack": sha, "size": len(data), "entries": entries}
        return sha, bytes(data), L.encode(index), [e[0] for e in entries]

    for key, body in records:
        if entries and len(data) + len(body) > limit:
            yield close()
            data, entries = bytearray(), []
        entries.append([key, len(data), len(body)])
        data += body
    if entries:
        yield close()


def write_packs(
    bucket: Bucket,
    records: Iterable[tuple[str, bytes]],
    on_pack: Callable[[list[str]], None],
    before_each: Callable[[], None] | None = None,
) -> int:
    """Write ``records`` as packs, one after another (a later pack may name records of an
    earlier one: they stay in the order given); ``on_pack(keys)`` once each is indexed.
    The number of packs written."""
    n = 0
    for sha, pack, index, keys in build_packs(records):
        if before_each is not None:
            before_each()
        bucket.create(L.pack_key(sha), pack)  # False: the same bytes are already there
        bucket.create(L.index_key(sha), index)
        on_pack([*keys, L.pack_key(sha), L.index_key(sha)])
        n += 1
    return n


class RecordReader:
    """Records of a remote by key, from its packs where an index names them, else loose.

    The indexes are read once, when the reader is made (one listing and one request per
    pack); records are then read a pack at a time with ranged requests (merged by the client,
    so reading most of a pack is one request), and each is verified before it is returned.
    """

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        # key -> (pack key, start, end) of every record the indexes list: as many as the
        # remote has records (an annotation set per labelled image), so kept in a private
        # temporary database on disk (SQLite's empty name; gone when closed) rather than a
        # dict, and what a clone holds does not grow with the number of images.
        self._where = sqlite3.connect("")
        self._where.execute(
            "CREATE TABLE entry (key TEXT PRIMARY KEY, pack TEXT, start INTEGER, stop INTEGER)"
        )
        index_keys = [k for k in bucket.list(L.PACKS) if k.endswith(".idx")]
        problems: list[str] = []

        def read_index(key: str, data: bytes) -> None:
            sha = key[len(L.PACKS) : -len(".idx")]
            try:
                index = json.loads(data)
                ok = index["format"] == FORMAT and index["pack"] == sha
                entries = [(str(k), int(o), int(n)) for k, o, n in index["entries"]]
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                problems.append(f"{key}: not a LabelDesk pack index")
                return
            pack = L.pack_key(sha)
            self._where.executemany(
                "INSERT OR IGNORE INTO entry VALUES (?, ?, ?, ?)",
                ((k, pack, offset, offset + length) for k, offset, length in entries),
            )

        # A few at a time: an index is up to about 1 MB (a full pack's entries), and a whole
        # batch in flight would hold every index of the remote at once.
        bucket.get_each(index_keys, read_index, INDEX_CONCURRENCY)
        if problems:
            raise RemoteError("the remote holds damaged pack indexes:\n  " + "\n  ".join(problems))

    def close(self) -> None:
        self._where.close()

    def _entry(self, key: str) -> tuple[str, int, int] | None:
        row = self._where.execute(
            "SELECT pack, start, stop FROM entry WHERE key = ?", [key]
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def packed(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` that some pack holds."""
        return [
            k
            for (k,) in self._where.execute(
                "SELECT key FROM entry WHERE substr(key, 1, ?) = ? ORDER BY key",
                [len(prefix), prefix],
            )
        ]

    def has(self, key: str, loose: set[str] | None = None) -> bool:
        return self._entry(key) is not None or (loose is not None and key in loose)

    def read(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The verified records of ``keys``; RemoteError listing every record that does not
        match its name (nothing is returned then, so the caller writes nothing)."""
        by_pack: dict[str, list[tuple[str, int, int]]] = {}
        loose: list[str] = []
        for k in dict.fromkeys(keys):
            entry = self._entry(k)
            if entry is not None:
                by_pack.setdefault(entry[0], []).append((k, entry[1], entry[2]))
            else:
                loose.append(k)
        out: dict[str, dict[str, Any]] = {}
        bad: list[str] = []

        def take(key: str, data: bytes, source: str) -> None:
            try:
                out[key] = L.check_record(key, data)
            except RemoteError as e:
                bad.append(f"{source}: {e}")

        for pack, spans in by_pack.items():
            got = self.bucket.get_ranges(pack, [(a, b) for _, a, b in spans])
            for (k, _, _), data in zip(spans, got, strict=True):
                take(k, data, pack)
        self.bucket.get_each(loose, lambda k, data: take(k, data, "loose"))
        if bad:
            raise RemoteError(
                f"{len(bad)} record(s) on the remote do not match their names; refused, "
                "nothing was written:\n  " + "\n  ".join(sorted(bad))
            )
        return out
