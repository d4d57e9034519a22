"""Opening the project database and running transactions.

Every multi-step write is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front,
so two writers queue on the busy timeout instead of one failing half-way with
"database is locked" when it tries to upgrade a read lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import NotADatabaseError, ReadOnlyProjectError, SchemaTooNewError
from .schema_version import SCHEMA_VERSION

#: How long a writer waits for another one before giving up (milliseconds). Writes here are short,
#: so a long wait means something is badly stuck, not merely busy.
BUSY_TIMEOUT_MS = 60_000

#: Tables every LabelDesk project has had since the first schema: a database without them is
#: someone else's, and we must not create ours inside it.
CORE_TABLES = frozenset({"project_meta", "member", "image", "version", "ref", "manifest_tree"})


class ProjectDatabase:
    """The project's SQLite connection, with the part of sqlite-utils' ``Database`` API that
    LabelDesk uses (``execute``, ``executescript``, ``conn``, ``close``).

    Why not a sqlite-utils ``Database`` itself: importing sqlite-utils costs about a quarter of a
    second (it imports pandas when it is installed), which read commands such as ``labeldesk
    log`` would pay on every start for nothing. sqlite-utils is loaded only to run migrations
    (:func:`migrate`) and by :meth:`utils`, which wraps this same connection.
    """

    def __init__(self, conn: sqlite3.Connection, readonly: str | None = None) -> None:
        self.conn = conn
        #: None when writable; otherwise the sentence that says why it is read-only.
        self.readonly = readonly

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        if parameters is None:
            return self.conn.execute(sql)
        return self.conn.execute(sql, parameters)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        return self.conn.executescript(sql)

    def close(self) -> None:
        self.conn.close()

    def utils(self) -> Any:
        """A sqlite-utils ``Database`` on this connection (for migrations and power users)."""
        from sqlite_utils import Database

        return Database(self.conn, execute_plugins=False)


def named(db: Any, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
    """``db.execute`` whose rows are read by column name (``row["created"]``).

    A row read by position silently takes the wrong value when a SELECT list gains or moves a
    column; :class:`sqlite3.Row` fails loudly instead (an unknown name is an ``IndexError``).
    Only this cursor gets the row factory: the bulk readers (queue, import, manifest) keep
    plain tuples, which are cheaper. ``db`` is a :class:`ProjectDatabase` or anything with a
    ``conn`` (a sqlite-utils ``Database``).
    """
    cursor = db.conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(sql, parameters)


def connect(path: Path, *, readonly: str | None = None) -> ProjectDatabase:
    """Open (or create) the database with the pragmas every connection needs.

    ``readonly`` (the reason, shown to the user) opens it with ``mode=ro``: reads work on a
    project whose folder or file is not writable, and every write transaction is refused with
    :class:`ReadOnlyProjectError` instead of SQLite's "attempt to write a readonly database".
    """
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, sqlite3 must not add its own.
    conn = None
    try:
        if readonly is None:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        else:
            conn = _connect_readonly(path)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL in WAL mode: a commit we reported survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as e:
        if conn is not None:
            conn.close()
        if getattr(e, "sqlite_errorname", "") != "SQLITE_NOTADB":
            raise
        raise _not_sqlite(path, e) from None
    return ProjectDatabase(conn, readonly)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """``mode=ro``; where that cannot work, ``immutable=1``.

    A WAL database opened read-only needs its ``-shm`` file, which SQLite cannot create in a
    folder it may not write (a read-only mount, a colleague's folder): the plain read-only open
    then fails with "unable to open database file". Nobody can be writing the database then
    (a writer needs that file too), so reading it as immutable is exact, provided no
    write-ahead log is left over from a writer that was killed: that log holds committed data
    an immutable read would miss, so such a project is refused until opened once with write
    access.
    """
    uri = Path(path).absolute().as_uri()
    try:
        conn = sqlite3.connect(
            f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError as e:
        if "unable to open" not in str(e):
            raise
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise ReadOnlyProjectError(
            f"{path} is read-only and has a write-ahead log left by an interrupted writer "
            f"({wal.name}); open the project once with write access so SQLite can finish it"
        )
    return sqlite3.connect(
        f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
    )


def _not_sqlite(path: Path, e: Exception) -> NotADatabaseError:
    return NotADatabaseError(
        f"{path} is not a LabelDesk project: not a SQLite database ({e}); nothing was changed"
    )


def check_project(db: ProjectDatabase, path: Path) -> None:
    """Refuse a ``labeldesk.db`` that is not a SQLite file, or a SQLite file that is not ours.

    An empty database (a fresh ``init`` killed before its first migration) passes: migrating it
    is how ``init`` would have finished. A database with tables but none of LabelDesk's is
    another program's file: creating our tables inside it would change it.
    """
    try:
        tables = {
            r[0]
            for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        }
        found = user_version(db)
    except sqlite3.DatabaseError as e:  # "file is not a database", a header that is no SQLite
        raise _not_sqlite(path, e) from None
    ours = {t for t in tables if not t.startswith("sqlite_")}
    if found == 0 and not ours:
        return
    missing = sorted(CORE_TABLES - ours)
    if missing:
        shown = ", ".join(sorted(ours)[:8]) + (" …" if len(ours) > 8 else "")
        raise NotADatabaseError(
            f"{path} is a SQLite database but not a LabelDesk project (no table "
            f"{', '.join(missing)}; it has {shown or 'no tables'}); nothing was changed"
        )


def user_version(db: ProjectDatabase) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


@contextlib.contextmanager
def transaction(db: ProjectDatabase) -> Iterator[ProjectDatabase]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception.

    SQLite's busy handler already waits ``BUSY_TIMEOUT_MS`` for the lock; the retry loop covers
    the rare SQLITE_BUSY that WAL returns without waiting (for example while another connection
    runs recovery), so "database is locked" never reaches the user for mere contention.
    """
    conn = db.conn
    if conn.in_transaction:
        raise RuntimeError("nested write transaction")
    if db.readonly:
        raise ReadOnlyProjectError(db.readonly)
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            if time.monotonic() > deadline:
                raise
            import random  # only when contended; not at every start

            time.sleep(random.uniform(0.005, 0.05))
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def migrate(db: ProjectDatabase, path: Path) -> None:
    """Bring the schema up to date, or refuse a database written by a newer LabelDesk."""
    found = user_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path} was written by a newer LabelDesk (schema version {found}; this LabelDesk "
            f"understands up to {SCHEMA_VERSION}). Upgrade LabelDesk to open this project; "
            "nothing was changed."
        )
    if found == SCHEMA_VERSION:
        return
    if db.readonly:
        raise ReadOnlyProjectError(
            f"{db.readonly}; and it was written by an older LabelDesk (schema version {found}), "
            f"which needs an upgrade to {SCHEMA_VERSION} that cannot be written there"
        )
    # The migrations run inside our IMMEDIATE transaction (sqlite-utils then uses savepoints), so
    # two processes opening a fresh project at once cannot both try to create the tables.
    with transaction(db):
        if user_version(db) < SCHEMA_VERSION:
            from .schema import migrations

            migrations.apply(db.utils())
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
