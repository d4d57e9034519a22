"""``labeldesk fsck``: prove the project is whole by reading every byte.

One check per invariant, run in order (:data:`CHECKS`); each check's docstring names its
invariant, and every finding carries the name of the check that made it. Every object file is
re-hashed (never trusted by its name or size) and every image re-probed; every content-addressed
row and every version id is recomputed from its content; decisions, refs and review edits are
cross-checked; the database's pages and its protecting triggers are checked too. Leftovers of an
interrupted import are notes, not errors: they are journaled and removed the next time the
project is opened for writing.

A check that cannot read the database (a malformed page) becomes a finding, and the checks that
need its results are skipped with a finding saying so, never a traceback.
"""

from __future__ import annotations

import sqlite3

from ...progress import CancelFn, ProgressFn
from ..project import Project
from . import content, database, files, history, sessions
from .base import Check, Context, Finding, FsckReport

__all__ = ["CHECKS", "Finding", "FsckReport", "fsck"]

#: (name, check, names of the checks whose results it builds on), in the order they run.
CHECKS: tuple[tuple[str, Check, tuple[str, ...]], ...] = (
    ("database_pages", database.check_database_pages, ()),
    ("foreign_keys", database.check_foreign_keys, ()),
    ("schema_and_triggers", database.check_schema_and_triggers, ()),
    ("object_files", files.check_object_files, ()),
    ("orphan_objects", files.check_orphan_objects, ("object_files",)),
    ("temp_files", files.check_temp_files, ()),
    ("image_objects", files.check_image_objects, ("object_files",)),
    ("image_rows", files.check_image_rows, ("object_files",)),
    ("annotation_sets", content.check_annotation_sets, ()),
    ("buckets", content.check_buckets, ("annotation_sets",)),
    ("trees", content.check_trees, ("buckets",)),
    ("packed_boxes", content.check_packed_boxes, ()),
    ("version_ids", history.check_version_ids, ()),
    ("version_trees", history.check_version_trees, ("trees",)),
    ("version_classes", history.check_version_classes, ("trees",)),
    ("version_parents", history.check_version_parents, ()),
    ("decisions", history.check_decisions, ()),
    (
        "releases",
        history.check_releases,
        ("version_ids", "version_trees", "version_classes", "version_parents"),
    ),
    ("refs", history.check_refs, ()),
    ("session_edits", sessions.check_session_edits, ()),
)


def fsck(
    project: Project, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None
) -> FsckReport:
    """Run every check on ``project``; the report lists each finding with its check's name."""
    report = FsckReport()
    ctx = Context(project, report, progress, cancel)
    failed: set[str] = set()
    for name, check, needs in CHECKS:
        ctx.current = name
        missing = [n for n in needs if n in failed]
        if missing:
            failed.add(name)
            ctx.error(f"{name}: not checked, because {', '.join(missing)} could not run")
            continue
        try:
            check(ctx)
        except sqlite3.DatabaseError as e:
            # A damaged page raises where a query meets it; say where and keep checking.
            failed.add(name)
            ctx.error(f"{name}: the database could not be read ({e}); see database_pages")
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            # Rows a damaged page (or a hand edit) filled with values of the wrong type: the
            # report must still come out, naming the check that met them.
            failed.add(name)
            ctx.error(f"{name}: stopped on a malformed row ({type(e).__name__}: {e})")
        ctx.finish_check()
        report.checks_run.append(name)
    return report
