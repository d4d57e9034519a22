"""fsck finds every kind of damage by name, and only says OK after reading every byte.

Tampering is done as a user would do it: with the plain ``sqlite3`` module on the database file
(foreign keys off, triggers dropped and put back to cover the tracks), never through LabelDesk.
Each case names the check that must find it, so every check has at least one bad case here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import snapshot, write_exif_oriented, write_image

from labeldesk.cli.main import main
from labeldesk.core.boxes import Box
from labeldesk.core.canonical import hash_json
from labeldesk.core.store.fsck import CHECKS, fsck
from labeldesk.core.store.importer import add_images
from labeldesk.core.store.integrity import version_id_of_row
from labeldesk.core.store.project import Project
from labeldesk.core.store.sessions import ReviewSession
from labeldesk.core.store.versions import decide, get_version, revert, tag


@pytest.fixture
def stored(project, images):
    report = add_images(project, images)
    return project, [a.sha256 for a in report.added]


def _writable(path):
    os.chmod(path, 0o644)
    return path


class Shell:
    """The project's database as a user's ``sqlite3`` shell sees it (foreign keys off)."""

    def __init__(self, project: Project) -> None:
        self.path = project.root / "labeldesk.db"

    def run(self, sql: str, params: tuple = (), *, drop: tuple[str, ...] = ()) -> None:
        """Run ``sql``; with ``drop``, drop those triggers first and put them back afterwards,
        as someone covering their tracks would (so only the content can give it away)."""
        conn = sqlite3.connect(self.path)
        try:
            saved = [
                conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [t]).fetchone()[0]
                for t in drop
            ]
            for t in drop:
                conn.execute(f"DROP TRIGGER {t}")
            conn.execute(sql, params)
            for text in saved:
                conn.execute(text)
            conn.commit()
        finally:
            conn.close()

    def one(self, sql: str, params: tuple = ()) -> tuple:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchone()
        finally:
            conn.close()


@dataclass
class History:
    project: Project
    shas: list[str]
    v0: str  # the import, tagged v1.0 and approved
    v1: str  # a review that added class "cat" and two boxes
    session: int  # an open session on v1 with one saved edit
    shell: Shell


@pytest.fixture
def history(stored) -> History:
    project, shas = stored
    v0 = get_version(project.db, project.db.execute("SELECT id FROM version").fetchone()[0])
    tag(project, "v1.0", v0.id)
    decide(project, "v1.0", "approved", "QA ok")
    s = ReviewSession.start(project)
    cat = s.add_class("cat")
    s.set_boxes(shas[0], [Box(cat, 1, 1, 10, 10), Box(cat, 20, 20, 5, 5)])
    v1 = s.commit("two cats")
    open_session = ReviewSession.start(project)
    open_session.set_boxes(shas[1], [Box(1, 2, 2, 4, 4)])
    assert fsck(project).ok
    return History(project, shas, v0.id, v1.id, open_session.id, Shell(project))


def _box_json(**change: object) -> str:
    box = {"class": 1, "x": 1.0, "y": 1.0, "w": 4.0, "h": 4.0, "origin": "human"}
    box.update({"state": "added", **change})
    return json.dumps([box])


def _hashed_set(text: str) -> tuple[str, str, int]:
    """An annotation set row whose hash is right for its (bad) content: only a content check
    can tell it from a good one."""
    value = json.loads(text)
    return hash_json(value)[0], hash_json(value)[1], len(value)


VERSION_TRIGGERS = ("version_content_immutable", "version_insert_new")

# name -> (tamper(history), check that must find it, words its finding must hold)
TAMPERING: dict[str, tuple[Callable[[History], None], str, str]] = {
    "approved version replaced keeping its id, other tree": (
        lambda h: h.shell.run(
            "INSERT OR REPLACE INTO version SELECT id, seq, parents, kind, author, message, "
            "created, (SELECT tree FROM version WHERE id = ?), classes, provenance, "
            "(SELECT n_images FROM version WHERE id = ?), (SELECT n_boxes FROM version "
            "WHERE id = ?), status, status_by, status_at, status_note FROM version WHERE id = ?",
            (h.v1, h.v1, h.v1, h.v0),
            drop=("version_insert_new",),
        ),
        "version_ids",
        "id does not match its content",
    ),
    "approved version's tree rewritten: its tag no longer verifies": (
        lambda h: h.shell.run(
            "UPDATE version SET tree = (SELECT tree FROM version WHERE id = ?) WHERE id = ?",
            (h.v1, h.v0),
            drop=VERSION_TRIGGERS,
        ),
        "releases",
        "tag v1.0 names version",
    ),
    "classes rewritten": (
        lambda h: h.shell.run(
            'UPDATE version SET classes = \'[{"id": 1, "name": "dog"}]\' WHERE id = ?',
            (h.v1,),
            drop=VERSION_TRIGGERS,
        ),
        "version_ids",
        "id does not match its content",
    ),
    "classes dropped under the boxes": (
        lambda h: h.shell.run(
            "UPDATE version SET classes = '[]' WHERE id = ?", (h.v1,), drop=VERSION_TRIGGERS
        ),
        "version_classes",
        "not in its class list",
    ),
    "parents rewritten": (
        lambda h: h.shell.run(
            "UPDATE version SET parents = '[]' WHERE id = ?", (h.v1,), drop=VERSION_TRIGGERS
        ),
        "version_ids",
        "id does not match its content",
    ),
    "parent link to nowhere": (
        lambda h: h.shell.run(
            "UPDATE version SET parents = ? WHERE id = ?",
            (json.dumps(["ab" * 32]), h.v1),
            drop=VERSION_TRIGGERS,
        ),
        "version_parents",
        "is missing",
    ),
    "message rewritten": (
        lambda h: h.shell.run(
            "UPDATE version SET message = 'nothing to see' WHERE id = ?",
            (h.v0,),
            drop=VERSION_TRIGGERS,
        ),
        "version_ids",
        "changed after it was committed",
    ),
    "counts rewritten": (
        lambda h: h.shell.run(
            "UPDATE version SET n_boxes = 99 WHERE id = ?", (h.v1,), drop=VERSION_TRIGGERS
        ),
        "version_trees",
        "counts do not match",
    ),
    "forged approval (status set, no decision)": (
        lambda h: h.shell.run(
            "UPDATE version SET status = 'approved', status_by = 'mallory', "
            "status_at = '2026-01-01T00:00:00.000000Z' WHERE id = ?",
            (h.v1,),
        ),
        "decisions",
        "forged approval",
    ),
    "forged approval decision row": (
        lambda h: h.shell.run(
            "INSERT INTO decision (version, decision, by, at, note) "
            "VALUES (?, 'approved', 'mallory', '2026-01-01T00:00:00.000000Z', '')",
            (h.v1,),
            drop=("decision_matches_version",),
        ),
        "decisions",
        "forged decision",
    ),
    "approval decision deleted": (
        lambda h: h.shell.run(
            "DELETE FROM decision WHERE version = ?", (h.v0,), drop=("decision_approval_kept",)
        ),
        "decisions",
        "no decision records it",
    ),
    "annotation set rewritten": (
        lambda h: h.shell.run(
            "UPDATE annotation_set SET boxes = ? WHERE n_boxes = 2",
            (_box_json()[:-1] + "," + _box_json()[1:],),
            drop=("annotation_set_immutable",),
        ),
        "annotation_sets",
        "does not match its hash",
    ),
    "NaN box size in an annotation set": (
        lambda h: h.shell.run(
            "INSERT INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, ?)",
            _hashed_set(_box_json(w=float("nan"))),
        ),
        "annotation_sets",
        "finite",
    ),
    "negative box size in an annotation set": (
        lambda h: h.shell.run(
            "INSERT INTO annotation_set (hash, boxes, n_boxes) VALUES (?, ?, ?)",
            _hashed_set(_box_json(h=-3.0)),
        ),
        "annotation_sets",
        "positive size",
    ),
    "packed copy of an annotation set changed": (
        # the labels are intact; the copy the review queue ranks by claims another box
        lambda h: h.shell.run(
            "UPDATE annotation_set_packed SET packed = zeroblob(48) WHERE hash IN "
            "(SELECT hash FROM annotation_set WHERE n_boxes = 2)"
        ),
        "packed_boxes",
        "does not match its boxes",
    ),
    "packed copy of an unknown annotation set": (
        lambda h: h.shell.run(
            "INSERT INTO annotation_set_packed (hash, packed) VALUES (?, zeroblob(48))",
            ("0" * 64,),
        ),
        "packed_boxes",
        "the annotation set is missing",
    ),
    "bucket rewritten": (
        lambda h: h.shell.run(
            "UPDATE manifest_bucket SET entries = '{}' WHERE n_boxes = 2",
            drop=("manifest_bucket_immutable",),
        ),
        "buckets",
        "does not match its hash",
    ),
    "bucket counts rewritten": (
        lambda h: h.shell.run(
            "UPDATE manifest_bucket SET n_boxes = 7 WHERE n_boxes = 2",
            drop=("manifest_bucket_immutable",),
        ),
        "buckets",
        "counts",
    ),
    "tree rewritten": (
        lambda h: h.shell.run(
            "UPDATE manifest_tree SET buckets = '{}' WHERE hash = "
            "(SELECT tree FROM version WHERE id = ?)",
            (h.v0,),
            drop=("manifest_tree_immutable",),
        ),
        "trees",
        "does not match its hash",
    ),
    "image width changed": (
        lambda h: h.shell.run(
            "UPDATE image SET width = width + 1 WHERE sha256 = ?",
            (h.shas[2],),
            drop=("image_immutable",),
        ),
        "image_rows",
        "width",
    ),
    "image EXIF orientation changed": (
        lambda h: h.shell.run(
            "UPDATE image SET orientation = 6 WHERE sha256 = ?",
            (h.shas[3],),
            drop=("image_immutable",),
        ),
        "image_rows",
        "orientation 6 (the file says 1)",
    ),
    "image byte size changed": (
        lambda h: h.shell.run(
            "UPDATE image SET byte_size = 1 WHERE sha256 = ?",
            (h.shas[4],),
            drop=("image_immutable",),
        ),
        "image_rows",
        "byte_size 1",
    ),
    "ref pointed at a version that does not exist": (
        lambda h: h.shell.run("UPDATE ref SET version = ? WHERE name = 'v1.0'", ("cd" * 32,)),
        "refs",
        "points at missing version",
    ),
    "unapproved version deleted under its children": (
        lambda h: h.shell.run("DELETE FROM version WHERE id = ?", (h.v1,)),
        "foreign_keys",
        "refers to a missing row of version",
    ),
    "review edit with an unknown class": (
        lambda h: h.shell.run(
            "UPDATE session_edit SET boxes = ? WHERE session = ?",
            (_box_json(**{"class": 9}), h.session),
        ),
        "session_edits",
        "the session does not know",
    ),
    "review edit with a NaN box": (
        lambda h: h.shell.run(
            "UPDATE session_edit SET boxes = ? WHERE session = ?",
            (_box_json(x=float("nan")), h.session),
        ),
        "session_edits",
        "finite",
    ),
    "review edit with a negative size": (
        lambda h: h.shell.run(
            "UPDATE session_edit SET boxes = ? WHERE session = ?",
            (_box_json(w=-2.0), h.session),
        ),
        "session_edits",
        "positive size",
    ),
    "protecting trigger dropped": (
        lambda h: h.shell.run("DROP TRIGGER version_approved_kept"),
        "schema_and_triggers",
        "trigger version_approved_kept is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_detected_by_its_check(history: History, case: str) -> None:
    tamper, check, words = TAMPERING[case]
    tamper(history)
    report = fsck(history.project)
    assert not report.ok
    found = report.by_check(check)
    assert any(words in f for f in found), (check, found, report.errors)


def test_every_check_has_a_tampering_case_or_its_own_test() -> None:
    own_tests = {
        "database_pages",
        "object_files",
        "orphan_objects",
        "temp_files",
        "image_objects",
    }
    covered = {check for _t, check, _w in TAMPERING.values()} | own_tests
    assert {name for name, _c, _n in CHECKS} <= covered
    for _name, check, _needs in CHECKS:
        assert check.__doc__ and check.__doc__.strip(), f"{check.__name__} states no invariant"


# -- prevented in the database ----------------------------------------------------------------


def _refused(shell: Shell, sql: str, params: tuple = ()) -> str:
    with pytest.raises(sqlite3.IntegrityError) as e:
        shell.run(sql, params)
    return str(e.value)


def test_replace_cannot_rewrite_an_approved_version(history: History) -> None:
    """REPLACE deletes the old row without firing delete triggers; the insert trigger stops it."""
    before = history.shell.one("SELECT * FROM version WHERE id = ?", (history.v0,))
    message = _refused(
        history.shell,
        "INSERT OR REPLACE INTO version SELECT id, seq, parents, kind, author, message, "
        "created, (SELECT tree FROM version WHERE id = ?), classes, provenance, n_images, "
        "n_boxes, 'committed', NULL, NULL, NULL FROM version WHERE id = ?",
        (history.v1, history.v0),
    )
    assert "versions are immutable" in message
    # nor by reusing another version's seq (REPLACE would delete that row instead)
    row = list(history.shell.one("SELECT * FROM version WHERE id = ?", (history.v1,)))
    row[0] = "ef" * 32
    row[1] = 1
    _refused(
        history.shell, f"INSERT OR REPLACE INTO version VALUES ({','.join('?' * 16)})", tuple(row)
    )
    assert history.shell.one("SELECT * FROM version WHERE id = ?", (history.v0,)) == before
    assert fsck(history.project).ok


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT OR REPLACE INTO annotation_set SELECT hash, '[]', 0 FROM annotation_set "
        "WHERE n_boxes = 2",
        "INSERT OR REPLACE INTO manifest_bucket SELECT hash, '{}', 0, 0 FROM manifest_bucket",
        "INSERT OR REPLACE INTO manifest_tree SELECT hash, '{}', 0, 0 FROM manifest_tree",
        "INSERT OR REPLACE INTO ref SELECT name, kind, (SELECT id FROM version WHERE seq = 2), "
        "updated_at, updated_by FROM ref WHERE name = 'v1.0'",
        "INSERT OR REPLACE INTO decision SELECT id, version, 'rejected', by, at, note "
        "FROM decision",
        "UPDATE image SET orientation = 6",
        "UPDATE decision SET by = 'mallory'",
        "DELETE FROM decision WHERE decision = 'approved'",
        "INSERT INTO decision (version, decision, by, at, note) SELECT id, 'approved', "
        "'mallory', created, '' FROM version WHERE status = 'committed'",
    ],
)
def test_writes_that_would_change_history_are_refused(history: History, sql: str) -> None:
    before = snapshot(history.project)
    _refused(history.shell, sql)
    assert snapshot(history.project) == before
    assert fsck(history.project).ok


def test_replacing_an_image_row_is_skipped(history: History) -> None:
    before = snapshot(history.project)
    history.shell.run(
        "INSERT OR REPLACE INTO image SELECT sha256, format, width + 1, height, orientation, "
        "raw_width, raw_height, mode, byte_size, added_at FROM image"
    )
    assert snapshot(history.project) == before


def test_adding_existing_content_is_still_a_no_op(history: History) -> None:
    """The insert triggers skip equal content, so INSERT OR IGNORE (LabelDesk's own) and a
    repeated import keep working."""
    row = history.shell.one("SELECT hash, boxes, n_boxes FROM annotation_set WHERE n_boxes = 2")
    history.shell.run("INSERT OR IGNORE INTO annotation_set VALUES (?, ?, ?)", row)
    history.shell.run("INSERT OR REPLACE INTO annotation_set VALUES (?, ?, ?)", row)
    src = [history.project.objects.path(s) for s in history.shas]
    assert add_images(history.project, src).added == []
    assert fsck(history.project).ok


# -- detected, with the triggers gone -----------------------------------------------------------


def test_sqlite_utils_transform_drops_triggers_and_fsck_says_so(history: History) -> None:
    """``sqlite-utils transform`` rebuilds the table without its triggers; after it, deleting
    the approved version works, and fsck reports both the lost triggers and what they guarded."""
    db = history.project.root / "labeldesk.db"
    history.project.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    subprocess.run(
        [sys.executable, "-m", "sqlite_utils", "transform", str(db), "version"],
        check=True,
        capture_output=True,
    )
    report = fsck(history.project)
    triggers = report.by_check("schema_and_triggers")
    assert any("trigger version_approved_kept is missing" in f for f in triggers), triggers
    assert any("table version differs" in f for f in triggers), triggers
    # The hole is real: the approved import goes (with its children re-parented by nobody).
    history.shell.run("DELETE FROM version WHERE id = ?", (history.v0,))
    report = fsck(history.project)
    assert any(history.v0 in f for f in report.by_check("decisions")), report.errors
    assert any("v1.0" in f for f in report.by_check("refs")), report.errors
    assert any(history.v0 in f for f in report.by_check("version_parents")), report.errors


def test_every_kind_of_version_verifies(history: History) -> None:
    """Import, review, merge and rollback ids all recompute with the one id function."""
    project = history.project
    a = ReviewSession.start(project)
    b = ReviewSession.start(project)
    a.set_boxes(history.shas[5], [Box(1, 3, 3, 3, 3)])
    a.commit("a")
    b.set_boxes(history.shas[6], [Box(1, 4, 4, 4, 4)])
    assert b.commit("b").kind == "merge"
    revert(project, history.v1)
    rows = project.db.execute(
        "SELECT id, tree, classes, parents, kind, author, message, created, provenance FROM version"
    ).fetchall()
    assert {r[4] for r in rows} == {"import", "review", "merge", "rollback"}
    for vid, *content in rows:
        assert version_id_of_row(*content) == vid
    assert fsck(project).ok


# -- objects and files ----------------------------------------------------------------------------


def test_clean_project_is_ok_after_reading_every_byte(stored) -> None:
    project, shas = stored
    report = fsck(project)
    assert report.ok and not report.errors
    assert report.objects_checked == len(shas)
    assert report.bytes_checked == sum(project.objects.path(s).stat().st_size for s in shas)
    assert report.versions_checked == 1
    assert report.checks_run == [name for name, _c, _n in CHECKS]


def test_flipped_byte_is_found(stored) -> None:
    project, shas = stored
    path = _writable(project.objects.path(shas[3]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit different
    path.write_bytes(bytes(data))
    report = fsck(project)
    assert not report.ok
    assert any(shas[3] in e and "corrupt" in e for e in report.by_check("object_files"))


def test_truncated_object_is_found(stored) -> None:
    project, shas = stored
    path = _writable(project.objects.path(shas[1]))
    path.write_bytes(path.read_bytes()[:100])
    (err,) = fsck(project).errors
    assert shas[1] in err and "truncated" in err


@pytest.mark.timeout(60)
def test_object_replaced_by_a_fifo_is_reported_not_waited_on(stored) -> None:
    """Opening a FIFO for reading blocks until a writer comes: fsck must never open one."""
    project, shas = stored
    path = _writable(project.objects.path(shas[0]))
    path.unlink()
    os.mkfifo(path)
    report = fsck(project)
    assert report.by_check("object_files") == [f"object {shas[0]}: a FIFO, not a regular file"]
    assert report.objects_checked == len(shas) - 1


def test_object_replaced_by_a_symlink_is_not_followed(stored, tmp_path) -> None:
    project, shas = stored
    path = _writable(project.objects.path(shas[0]))
    outside = tmp_path / "outside.png"
    outside.write_bytes(path.read_bytes())  # the right bytes, but not in the store
    path.unlink()
    path.symlink_to(outside)
    assert fsck(project).by_check("object_files") == [
        f"object {shas[0]}: a symbolic link, not a regular file"
    ]


def test_missing_object_is_found_with_its_source(stored) -> None:
    project, shas = stored
    _writable(project.objects.path(shas[2])).unlink()
    (err,) = fsck(project).errors
    assert shas[2] in err and "missing" in err and "imported from" in err


def test_orphan_object_is_found(stored, tmp_path) -> None:
    project, shas = stored
    data = write_image(tmp_path / "stray.png", seed=1234).read_bytes()
    project.objects.put_bytes(data)
    orphan = hashlib.sha256(data).hexdigest()
    (err,) = fsck(project).by_check("orphan_objects")
    assert orphan in err and "orphan" in err


def test_temp_file_is_a_note(stored) -> None:
    project, shas = stored
    stray = project.objects.path(shas[0]).parent / ".tmp-999999999-abc"
    stray.write_bytes(b"half")
    report = fsck(project)
    assert report.ok
    assert report.by_check("temp_files") == [
        "temporary file .tmp-999999999-abc left by an interrupted write"
    ]


def test_exif_rotated_image_row_is_checked_in_the_upright_frame(project, tmp_path) -> None:
    """A row swapped back to the stored (raw) size is wrong for an EXIF-rotated image."""
    src = write_exif_oriented(tmp_path / "rot.jpg", 6, size=(60, 40))
    (added,) = add_images(project, [src]).added
    assert fsck(project).ok
    Shell(project).run(
        "UPDATE image SET width = 60, height = 40 WHERE sha256 = ?",
        (added.sha256,),
        drop=("image_immutable",),
    )
    (err,) = fsck(project).by_check("image_rows")
    assert "width 60 (the file says 40)" in err and "height 40 (the file says 60)" in err


def test_row_pointing_at_missing_annotation_set_is_found(stored) -> None:
    project, shas = stored
    project.db.execute("PRAGMA foreign_keys = OFF")
    project.db.execute("DELETE FROM annotation_set")
    errors = fsck(project).errors
    assert errors and all("annotation set" in e and "missing" in e for e in errors)


# -- the database file --------------------------------------------------------------------------


def _corrupt_page_of(db_path: Path, table: str, offset: int, length: int | None) -> None:
    """Overwrite ``length`` bytes (None: the rest of the page) at ``offset`` in the root page
    of ``table`` in the database file."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        sql = "SELECT rootpage FROM sqlite_master WHERE name = ?"
        (root,) = conn.execute(sql, [table]).fetchone()
    finally:
        conn.close()
    with open(db_path, "r+b") as f:
        f.seek((root - 1) * page_size + offset)
        f.write(b"\xa5" * (page_size - offset if length is None else length))


def test_packed_copy_of_predictions_not_matching_them_is_found(history: History) -> None:
    from helpers import model_row

    from labeldesk.core.inference import predictions
    from labeldesk.core.inference.predictions import Prediction

    model_row(history.project, "m1", "first")
    cat = Prediction("cat", 1, 2, 10, 10, 0.9)
    predictions.store(history.project, "m1", {"conf": 0.25}, [(history.shas[0], [cat])])
    assert fsck(history.project).ok
    # the JSON still says (1, 2); the copy the review queue reads puts the box elsewhere
    history.shell.run(
        "UPDATE prediction SET packed = ? WHERE image = ?",
        (struct.pack("<6d", 0, 50, 50, 10, 10, 0.9), history.shas[0]),
    )
    found = fsck(history.project).by_check("packed_boxes")
    assert any("does not match" in f and history.shas[0] in f for f in found), found


def test_the_migration_gives_existing_rows_their_packed_copies(history: History) -> None:
    """A project made before m008: its annotation sets and prediction rows get packed copies
    when it is opened, equal to the ones LabelDesk writes today."""
    from helpers import model_row

    from labeldesk.core.inference import predictions
    from labeldesk.core.inference.predictions import Prediction
    from labeldesk.core.store.schema_version import SCHEMA_VERSION

    model_row(history.project, "m1", "first")
    preds = [Prediction("cat", 1, 2, 10, 10, 0.9), Prediction("dog", 3, 4, 5, 6, 0.25)]
    predictions.store(history.project, "m1", {"conf": 0.25}, [(history.shas[0], preds)])
    db = history.project.db
    sets = "SELECT hash, packed FROM annotation_set_packed ORDER BY hash"
    want_sets = db.execute(sets).fetchall()
    want_preds = db.execute("SELECT image, packed, packed_names FROM prediction").fetchall()
    assert len(want_sets) == 2 and want_sets[1][1] and want_preds[0][1]  # [] and two cats
    root = history.project.root
    history.project.close()
    conn = sqlite3.connect(root / "labeldesk.db")  # back to schema 7, as an older LabelDesk left it
    conn.executescript(
        "DROP TABLE annotation_set_packed; ALTER TABLE prediction DROP COLUMN packed; "
        "ALTER TABLE prediction DROP COLUMN packed_names; "
        "DELETE FROM _sqlite_migrations WHERE name = 'm008_packed_boxes';"
    )
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.commit()
    conn.close()
    with Project.open(root) as p:
        assert p.db.execute(sets).fetchall() == want_sets
        got = p.db.execute("SELECT image, packed, packed_names FROM prediction").fetchall()
        assert got == want_preds
        assert fsck(p).ok


@pytest.mark.parametrize(
    ("damage", "offset", "length", "said"),
    [
        # cell pointers bent: integrity_check lists what is wrong, page by page
        ("cell pointers", 8, 4, "On tree page"),
        # the page header gone: SQLite cannot even finish integrity_check
        ("whole page", 0, None, "database disk image is malformed"),
    ],
)
def test_malformed_database_page_is_a_finding_not_a_traceback(
    history: History, capsys, damage: str, offset: int, length: int | None, said: str
) -> None:
    project = history.project
    root = project.root
    project.close()
    _corrupt_page_of(root / "labeldesk.db", "manifest_bucket", offset, length)
    code = main(["-p", str(root), "fsck", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and not out["ok"]
    pages = [f["message"] for f in out["findings"] if f["check"] == "database_pages"]
    assert len(pages) == 1 and "integrity_check failed" in pages[0], out["findings"]
    assert said in pages[0]
    # the rest still ran: every object was re-hashed in spite of the broken page
    assert out["objects_checked"] == len(history.shas)
    assert "session_edits" in out["checks"]


def test_cli_fsck_exit_status(stored, capsys) -> None:
    project, shas = stored
    assert main(["-p", str(project.root), "fsck"]) == 0
    assert "OK: re-hashed 10 objects" in capsys.readouterr().out
    _writable(project.objects.path(shas[0])).unlink()
    assert main(["-p", str(project.root), "fsck"]) == 1
    out = capsys.readouterr().out
    assert shas[0] in out and "1 problem(s) found" in out


def test_cli_fsck_json_names_the_check_of_each_finding(stored, capsys) -> None:
    project, shas = stored
    _writable(project.objects.path(shas[0])).unlink()
    assert main(["-p", str(project.root), "fsck", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"ok", "errors", "notes", "objects_checked", "bytes_checked"}
    assert out["errors"] == [f["message"] for f in out["findings"]]
    assert [f["check"] for f in out["findings"]] == ["image_objects"]
