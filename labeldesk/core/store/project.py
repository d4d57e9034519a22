"""A LabelDesk project on disk: ``labeldesk.db`` plus ``objects/``.

Opening a project brings its schema up to date (or refuses a newer one) and cleans up what an
interrupted import left behind, so every other module can assume a consistent store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import NotAProjectError, PermissionDeniedError
from . import db as dbmod
from .db import ProjectDatabase as Database
from .objects import TMP_PREFIX, ObjectStore

DB_NAME = "labeldesk.db"
OBJECTS_DIR = "objects"
ROLES = ("annotator", "lead")


def now_iso() -> str:
    """UTC time with microseconds, ISO 8601: sorts as text and is unambiguous across machines."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def current_user() -> str:
    """The acting user: ``LABELDESK_USER`` if set, else the OS login."""
    env = os.environ.get("LABELDESK_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still attribute the work to someone
        return f"uid{os.getuid()}"


def _readonly_reason(root: Path, db_path: Path) -> str | None:
    """Why the project cannot be written (its folder or database), or None if it can.

    The folder matters as much as the file: SQLite writes its ``-wal`` and ``-shm`` files
    beside the database, and new objects go under ``objects/``.
    """
    for where in (root, db_path):
        if not os.access(where, os.W_OK):
            return (
                f"the project {root} is read-only ({where.name or where} is not writable); "
                "read commands (log, show, diff, export, fsck) work, changes cannot be saved"
            )
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Project:
    def __init__(self, root: Path, db: Database, user: str) -> None:
        self.root = root
        self.db = db
        self.objects = ObjectStore(root / OBJECTS_DIR)
        self.user = user

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def init(cls, root: Path | str, *, user: str | None = None) -> Project:
        """Create a project in ``root`` (made if missing); the creator becomes its lead."""
        root = Path(root).absolute()
        if (root / DB_NAME).exists():
            raise NotAProjectError(f"{root} already holds a LabelDesk project")
        user = user or current_user()
        # What this call creates, so that a failure (a full or read-only disk) takes it all
        # away again instead of leaving half a project that `open` would then misread.
        made: list[Path] = [
            d for d in (root, root / OBJECTS_DIR, root / OBJECTS_DIR / "sha256") if not d.exists()
        ]
        db = None
        try:
            (root / OBJECTS_DIR / "sha256").mkdir(parents=True, exist_ok=True)
            db = dbmod.connect(root / DB_NAME)
            db.execute("PRAGMA journal_mode = WAL")
            dbmod.migrate(db, root / DB_NAME)
            with dbmod.transaction(db):
                db.execute(
                    "INSERT OR IGNORE INTO project_meta (key, value) VALUES ('created', ?)",
                    [now_iso()],
                )
                db.execute(
                    "INSERT OR IGNORE INTO member (user, role, added_at) VALUES (?, 'lead', ?)",
                    [user, now_iso()],
                )
        except BaseException:
            if db is not None:
                db.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    (root / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()  # only if still empty: never anything of the user's
            raise
        return cls(root, db, user)

    @classmethod
    def open(
        cls, root: Path | str, *, user: str | None = None, readonly: bool | None = None
    ) -> Project:
        """Open the project in ``root``: schema brought up to date, leftovers recovered.

        ``readonly=None`` (the default) opens read-only exactly when the folder or the database
        cannot be written (a read-only mount, someone else's files): reading commands then work
        and every write is refused with :class:`ReadOnlyProjectError` before anything is
        touched. ``readonly=True`` forces that; a read-only open neither migrates nor recovers.
        """
        root = Path(root).absolute()
        path = root / DB_NAME
        if not path.is_file():
            raise NotAProjectError(
                f"{root} is not a LabelDesk project (no {DB_NAME}); "
                "create one with `labeldesk init`"
            )
        reason = _readonly_reason(root, path) if readonly is None else None
        if readonly and reason is None:
            reason = f"the project {root} was opened read-only"
        db = dbmod.connect(path, readonly=reason)
        try:
            dbmod.check_project(db, path)
            dbmod.migrate(db, path)
        except BaseException:
            db.close()
            raise
        project = cls(root, db, user or current_user())
        if reason is None:
            project.recover()
        # A lazy clone fetches image bytes from its remote when first used (imported only then)
        if db.execute("SELECT 1 FROM remote WHERE lazy = 1 LIMIT 1").fetchone():
            from ..remote.lazy import install_lazy_fetcher

            install_lazy_fetcher(project)
        return project

    @property
    def readonly(self) -> bool:
        """Whether this project was opened read-only (see :meth:`open`)."""
        return bool(getattr(self.db, "readonly", None))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self):
        return dbmod.transaction(self.db)

    # -- crash recovery ----------------------------------------------------------------------
    def stale_pending(self) -> list[tuple[str, str]]:
        """Objects journaled by imports whose process is gone: ``(sha, op)``."""
        rows = self.db.execute("SELECT sha256, op, pid, host FROM pending_object").fetchall()
        if not rows:  # the usual case: no import was interrupted (and socket stays unloaded)
            return []
        import socket

        host = socket.gethostname()
        return [(sha, op) for sha, op, pid, h in rows if h == host and not _pid_alive(pid)]

    def recover(self) -> int:
        """Remove what an interrupted import left: the objects its process journaled that no row
        points at and no live import has journaled too (see :meth:`drop_pending`).

        Returns how many objects were removed. Runs at every open; cheap when nothing is stale.
        """
        stale_ops = sorted({op for _, op in self.stale_pending()})
        removed = self.drop_pending(stale_ops) if stale_ops else 0
        for tmp in self.objects.iter_temp_files():
            try:
                pid = int(tmp.name[len(TMP_PREFIX) :].split("-")[0])
            except ValueError:
                continue
            if not _pid_alive(pid):
                tmp.unlink(missing_ok=True)
        return removed

    def drop_pending(self, ops: Sequence[str]) -> int:
        """Close the journal of import operations ``ops`` (failed, cancelled or dead): delete
        each object they journaled that nothing needs, then their journal rows.

        An object stays if an image or model row refers to it or if an operation not in ``ops`` has
        journaled it too (it is staging the same bytes and will commit rows that point at them).
        Deciding that and deleting happen in one ``BEGIN IMMEDIATE`` transaction, and every
        writer journals an object before relying on its file and writes its image rows under the
        same lock, so nothing can come to need an object between the check and the delete.
        Returns how many object files were deleted.
        """
        ops = list(ops)
        if not ops:
            return 0
        marks = ",".join("?" * len(ops))
        removed = 0
        with self.transaction():
            unneeded = self.db.execute(
                f"SELECT DISTINCT p.sha256 FROM pending_object p WHERE p.op IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM image i WHERE i.sha256 = p.sha256) "
                # the weights of a model trained here are objects too (named by the model id)
                "AND NOT EXISTS (SELECT 1 FROM model m WHERE m.id = p.sha256) "
                "AND NOT EXISTS (SELECT 1 FROM pending_object q WHERE q.sha256 = p.sha256 "
                f"AND q.op NOT IN ({marks}))",
                [*ops, *ops],
            ).fetchall()
            for (sha,) in unneeded:
                # A kill after some deletes leaves the journal rows in place (the transaction
                # rolls back): the next recovery finds those files already gone, and that is fine.
                if self.objects.remove(sha):
                    removed += 1
            self.db.execute(f"DELETE FROM pending_object WHERE op IN ({marks})", ops)
        return removed

    # -- members and roles -------------------------------------------------------------------
    def role_of(self, user: str | None = None) -> str:
        """``lead`` or ``annotator``. Users not listed are annotators.

        A project with no members at all (made outside ``init``) is open to everyone as lead.
        """
        user = user or self.user
        row = self.db.execute("SELECT role FROM member WHERE user = ?", [user]).fetchone()
        if row:
            return row[0]
        anyone = self.db.execute("SELECT 1 FROM member LIMIT 1").fetchone()
        return "annotator" if anyone else "lead"

    def require_lead(self, action: str) -> None:
        if self.role_of() != "lead":
            raise PermissionDeniedError(
                f"{self.user} is an annotator in this project; only a lead may {action}"
            )

    def set_member(self, user: str, role: str) -> None:
        """Give ``user`` a role (leads only). A project always keeps at least one lead.

        Without a lead nobody could approve, change roles or move a release tag again, so
        demoting the last lead (oneself included) is refused. The count is read inside the
        write transaction: two leads demoting each other at once cannot both succeed.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self.transaction():
            # Inside the transaction: a lead demoted a moment ago by someone else is no lead now.
            self.require_lead("change roles")
            if role != "lead":
                other_leads = self.db.execute(
                    "SELECT COUNT(*) FROM member WHERE role = 'lead' AND user != ?", [user]
                ).fetchone()[0]
                if not other_leads:
                    who = "yourself" if user == self.user else user
                    raise PermissionDeniedError(
                        f"cannot make {who} an annotator: the project would have no lead left; "
                        "make someone else lead first (`labeldesk member USER lead`)"
                    )
            self.db.execute(
                "INSERT INTO member (user, role, added_at) VALUES (?, ?, ?) "
                "ON CONFLICT(user) DO UPDATE SET role = excluded.role",
                [user, role, now_iso()],
            )

    def members(self) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.db.execute("SELECT user, role FROM member ORDER BY user")]
