"""Opening the project database and running transactions.

Every multi-step write is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front,
so two writers queue on the busy timeout instead of one failing half-way with
"database is locked" when it tries to upgrade a read lock.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from .errors import SchemaTooNewError
from .schema import SCHEMA_VERSION, migrations

#: How long a writer waits for another one before giving up (milliseconds). Writes here are short,
#: so a long wait means something is badly stuck, not merely busy.
BUSY_TIMEOUT_MS = 60_000


def connect(path: Path) -> Database:
    """Open (or create) the database with the pragmas every connection needs."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, sqlite3 must not add its own.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL in WAL mode: a commit we reported survives a power cut, not only a killed process.
    conn.execute("PRAGMA synchronous = FULL")
    return Database(conn, execute_plugins=False)


def user_version(db: Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


@contextlib.contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception.

    SQLite's busy handler already waits ``BUSY_TIMEOUT_MS`` for the lock; the retry loop covers
    the rare SQLITE_BUSY that WAL returns without waiting (for example while another connection
    runs recovery), so "database is locked" never reaches the user for mere contention.
    """
    conn = db.conn
    if conn.in_transaction:
        raise RuntimeError("nested write transaction")
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
            time.sleep(random.uniform(0.005, 0.05))
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def migrate(db: Database, path: Path) -> None:
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
    # The migrations run inside our IMMEDIATE transaction (sqlite-utils then uses savepoints), so
    # two processes opening a fresh project at once cannot both try to create the tables.
    with transaction(db):
        if user_version(db) < SCHEMA_VERSION:
            migrations.apply(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
