"""What every fsck check shares: the report, its findings, and a context of cached reads.

A check is a small function ``check(ctx)`` whose docstring's first line states the invariant it
proves. It reports what breaks the invariant with :meth:`Context.error` (or :meth:`Context.note`
for what is harmless) and may leave facts in the context for the checks after it (which objects
re-hashed, which rows verify). The runner gives every check its own try: a database that cannot
be read where one check looks becomes a finding of that check, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...images import ImageInfo
from ...progress import CancelFn, ProgressFn, check_cancel
from ..db import named
from ..project import Project

#: Rows with the same problem beyond this many are summarised in one line, so a badly damaged
#: database gives a readable report instead of a million lines.
MAX_PER_CHECK = 200


@dataclass(frozen=True)
class Finding:
    check: str  # the name of the check that found it
    severity: str  # "error" (the project is damaged) or "note" (harmless leftovers)
    message: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "severity": self.severity, "message": self.message}


@dataclass
class FsckReport:
    findings: list[Finding] = field(default_factory=list)
    objects_checked: int = 0
    bytes_checked: int = 0
    versions_checked: int = 0
    checks_run: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.severity == "error"]

    @property
    def notes(self) -> list[str]:
        return [f.message for f in self.findings if f.severity == "note"]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def by_check(self, name: str) -> list[str]:
        """The messages one check reported (tests and callers that care about one invariant)."""
        return [f.message for f in self.findings if f.check == name]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "notes": self.notes,
            "findings": [f.to_json() for f in self.findings],
            "checks": self.checks_run,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "versions_checked": self.versions_checked,
        }


Check = Callable[["Context"], None]


class Context:
    """The project under check, the report being written, and what earlier checks learned."""

    def __init__(
        self,
        project: Project,
        report: FsckReport,
        progress: ProgressFn | None,
        cancel: CancelFn | None,
    ) -> None:
        self.project = project
        self.db = project.db
        self.report = report
        self.progress = progress
        self.cancel = cancel
        self.current = ""
        self._counts: dict[str, int] = {}
        # Facts later checks build on, filled by the checks that establish them.
        self.object_files: dict[str, Any] = {}  # name -> path of every object file
        self.pending: set[str] = set()  # objects journaled by imports in progress
        self.good_objects: dict[str, int] = {}  # objects whose bytes hash to their name: size
        self.probed: dict[str, ImageInfo | str] = {}  # image object -> probe result or reason
        self.bad_annsets: set[str] = set()  # annotation sets that do not verify
        self.bad_buckets: set[str] = set()  # buckets that do not verify (or hold bad sets)
        self.bad_trees: set[str] = set()  # trees that do not verify (or hold bad buckets)
        self.bad_versions: dict[str, str] = {}  # version -> why it does not verify itself
        self.annset_sizes: dict[str, int] = {}  # annotation set -> boxes it holds
        self.annset_classes: dict[str, set] = {}  # annotation set -> class ids of its boxes
        self.bucket_counts: dict[str, tuple[int, int]] = {}  # bucket -> (images, boxes)
        self.bucket_prefixes: dict[str, set[str]] = {}  # bucket -> image-hash prefixes it holds
        self.bucket_classes: dict[str, set] = {}  # bucket -> class ids used by its boxes
        self.tree_counts: dict[str, tuple[int, int]] = {}  # tree -> (images, boxes)
        self.tree_buckets: dict[str, list[str]] = {}  # tree -> its bucket hashes
        self.verified: dict[str, str | None] | None = None  # version -> why it fails, or None
        self._images: dict[str, tuple] | None = None
        self._versions: list[sqlite3.Row] | None = None

    # -- reporting ---------------------------------------------------------------------------
    def _add(self, severity: str, message: str) -> None:
        n = self._counts.get(self.current, 0) + 1
        self._counts[self.current] = n
        if n <= MAX_PER_CHECK:
            self.report.findings.append(Finding(self.current, severity, message))

    def error(self, message: str) -> None:
        self._add("error", message)

    def note(self, message: str) -> None:
        self._add("note", message)

    def finish_check(self) -> None:
        n = self._counts.get(self.current, 0)
        if n > MAX_PER_CHECK:
            self.report.findings.append(
                Finding(
                    self.current,
                    "error",
                    f"{self.current}: {n - MAX_PER_CHECK} more finding(s) not listed",
                )
            )

    def check_cancel(self) -> None:
        check_cancel(self.cancel)

    # -- shared reads ------------------------------------------------------------------------
    @property
    def images(self) -> dict[str, tuple]:
        """sha256 -> (format, width, height, orientation, raw_width, raw_height, mode, size)."""
        if self._images is None:
            self._images = {
                r[0]: tuple(r[1:])
                for r in self.db.execute(
                    "SELECT sha256, format, width, height, orientation, raw_width, raw_height, "
                    "mode, byte_size FROM image"
                )
            }
        return self._images

    @property
    def versions(self) -> list[sqlite3.Row]:
        """Every version row, in commit order, read by column name (``v["tree"]``): id, seq,
        parents, kind, author, message, created, tree, classes, provenance, n_images, n_boxes,
        status, status_by, status_at, as stored (not parsed: a check says what is malformed)."""
        if self._versions is None:
            self._versions = named(
                self.db,
                "SELECT id, seq, parents, kind, author, message, created, tree, classes, "
                "provenance, n_images, n_boxes, status, status_by, status_at "
                "FROM version ORDER BY seq",
            ).fetchall()
        return self._versions

    def version_ids(self) -> set[str]:
        return {v["id"] for v in self.versions}


def loads(text: Any) -> tuple[Any, str | None]:
    """Parse stored JSON: ``(value, None)``, or ``(None, reason)`` when it does not parse."""
    try:
        return json.loads(text), None
    except (TypeError, ValueError) as e:
        return None, f"not valid JSON ({e})"
