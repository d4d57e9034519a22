"""The database schema, as an ordered list of sqlite-utils migrations.

``PRAGMA user_version`` holds the number of migrations applied, so an older LabelDesk can see at
once that a database is newer than it understands and refuse it, instead of misreading it.
Never edit a migration that has shipped: add a new one. docs/database.md documents the tables.
"""

from __future__ import annotations

import functools
import re

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .schema_version import SCHEMA_VERSION

migrations = Migrations("labeldesk")

# Content-addressed rows never change once written; versions never change except their review
# status, and an approved version not even that. Triggers enforce it in the database itself, so
# a user poking at the file with the sqlite-utils CLI cannot break the history by accident.
_IMMUTABLE_TRIGGERS = """
CREATE TRIGGER annotation_set_immutable BEFORE UPDATE ON annotation_set
BEGIN SELECT RAISE(ABORT, 'annotation sets are content-addressed and immutable'); END;
CREATE TRIGGER manifest_bucket_immutable BEFORE UPDATE ON manifest_bucket
BEGIN SELECT RAISE(ABORT, 'manifest buckets are content-addressed and immutable'); END;
CREATE TRIGGER manifest_tree_immutable BEFORE UPDATE ON manifest_tree
BEGIN SELECT RAISE(ABORT, 'manifest trees are content-addressed and immutable'); END;
CREATE TRIGGER version_content_immutable BEFORE UPDATE OF
    id, seq, parents, kind, author, message, created, tree, classes, provenance,
    n_images, n_boxes ON version
BEGIN SELECT RAISE(ABORT, 'a committed version is immutable'); END;
CREATE TRIGGER version_approved_final BEFORE UPDATE OF status, status_by, status_at,
    status_note ON version WHEN OLD.status = 'approved'
BEGIN SELECT RAISE(ABORT, 'an approved version cannot be altered'); END;
CREATE TRIGGER version_approved_kept BEFORE DELETE ON version WHEN OLD.status = 'approved'
BEGIN SELECT RAISE(ABORT, 'an approved version cannot be deleted'); END;
"""


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
CREATE TABLE project_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE member (
    user TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('annotator', 'lead')),
    added_at TEXT NOT NULL
);

CREATE TABLE image (
    sha256 TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    orientation INTEGER NOT NULL,
    raw_width INTEGER NOT NULL,
    raw_height INTEGER NOT NULL,
    mode TEXT NOT NULL,
    byte_size INTEGER NOT NULL,
    added_at TEXT NOT NULL
);

CREATE TABLE image_source (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL REFERENCES image(sha256),
    path TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    UNIQUE (sha256, path)
);
CREATE INDEX image_source_path ON image_source(path);

CREATE TABLE pending_object (
    sha256 TEXT NOT NULL,
    op TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started TEXT NOT NULL,
    PRIMARY KEY (sha256, op)
);

CREATE TABLE annotation_set (
    hash TEXT PRIMARY KEY,
    boxes TEXT NOT NULL,
    n_boxes INTEGER NOT NULL
);

CREATE TABLE manifest_bucket (
    hash TEXT PRIMARY KEY,
    entries TEXT NOT NULL,
    n_images INTEGER NOT NULL,
    n_boxes INTEGER NOT NULL
);

CREATE TABLE manifest_tree (
    hash TEXT PRIMARY KEY,
    buckets TEXT NOT NULL,
    n_images INTEGER NOT NULL,
    n_boxes INTEGER NOT NULL
);

CREATE TABLE version (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    parents TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('import', 'review', 'rollback', 'merge')),
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created TEXT NOT NULL,
    tree TEXT NOT NULL REFERENCES manifest_tree(hash),
    classes TEXT NOT NULL,
    provenance TEXT NOT NULL,
    n_images INTEGER NOT NULL,
    n_boxes INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'committed'
        CHECK (status IN ('committed', 'approved', 'rejected')),
    status_by TEXT,
    status_at TEXT,
    status_note TEXT
);

CREATE TABLE decision (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL REFERENCES version(id),
    decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT NOT NULL
);

CREATE TABLE ref (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    version TEXT NOT NULL REFERENCES version(id),
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE review_session (
    id INTEGER PRIMARY KEY,
    base TEXT NOT NULL REFERENCES version(id),
    author TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'committed', 'abandoned')),
    new_classes TEXT NOT NULL DEFAULT '[]',
    version TEXT REFERENCES version(id),
    message TEXT
);

CREATE TABLE session_edit (
    session INTEGER NOT NULL REFERENCES review_session(id),
    image TEXT NOT NULL REFERENCES image(sha256),
    boxes TEXT NOT NULL,
    seq INTEGER NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (session, image)
);
"""
    )
    db.executescript(_IMMUTABLE_TRIGGERS)


@migrations()
def m002_models_and_predictions(db: Database) -> None:
    db.executescript(
        """
CREATE TABLE model (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    format TEXT NOT NULL,
    task TEXT NOT NULL,
    class_names TEXT NOT NULL,
    trained_on TEXT,
    trusted INTEGER NOT NULL DEFAULT 0,
    watched INTEGER NOT NULL DEFAULT 0,
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL
);

CREATE TABLE prediction (
    model TEXT NOT NULL REFERENCES model(id),
    image TEXT NOT NULL REFERENCES image(sha256),
    params TEXT NOT NULL,
    boxes TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (model, params, image)
);

ALTER TABLE review_session ADD COLUMN prelabel_model TEXT REFERENCES model(id);
ALTER TABLE review_session ADD COLUMN prelabel_params TEXT;
"""
    )


# Evaluations are history: a row records what was measured, against what, with which parameters,
# and how it compared with its baseline at the time. Its content never changes; the baseline link
# may only be cleared (when the baseline's version is deleted), never re-pointed.
_EVALUATION_TRIGGERS = """
CREATE TRIGGER evaluation_immutable BEFORE UPDATE OF
    id, run, role, version, subset, n_images, source_kind, source_hash, source_name, params,
    metrics, metric, value, baseline_value, metric_drop, max_drop, passed, created, author
    ON evaluation
BEGIN SELECT RAISE(ABORT, 'an evaluation is a record of what was measured and never changes'); END;
CREATE TRIGGER evaluation_baseline_kept BEFORE UPDATE OF baseline ON evaluation
    WHEN NEW.baseline IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'an evaluation keeps the baseline it was compared with'); END;
"""


@migrations()
def m003_evaluations(db: Database) -> None:
    db.executescript(
        """
CREATE TABLE evaluation (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('candidate', 'baseline')),
    version TEXT NOT NULL REFERENCES version(id) ON DELETE CASCADE,
    subset TEXT NOT NULL,
    n_images INTEGER NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('model', 'predictions')),
    source_hash TEXT NOT NULL,
    source_name TEXT NOT NULL,
    params TEXT NOT NULL,
    metrics TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    baseline INTEGER REFERENCES evaluation(id) ON DELETE SET NULL,
    baseline_value REAL,
    metric_drop REAL,
    max_drop REAL,
    passed INTEGER CHECK (passed IN (0, 1)),
    created TEXT NOT NULL,
    author TEXT NOT NULL
);
CREATE INDEX evaluation_version ON evaluation(version);
CREATE INDEX evaluation_source ON evaluation(source_kind, source_hash);
CREATE INDEX evaluation_run ON evaluation(run);
CREATE INDEX evaluation_baseline ON evaluation(baseline);

CREATE TABLE image_stats (
    image TEXT NOT NULL REFERENCES image(sha256),
    method TEXT NOT NULL,
    brightness REAL NOT NULL,
    contrast REAL NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (image, method)
);
"""
    )
    db.executescript(_EVALUATION_TRIGGERS)


@migrations()
def m004_watch_settings(db: Database) -> None:
    # How a watched model is evaluated on each new version (metric, allowed drop, inference
    # size, trust): JSON, NULL while the model is not watched.
    db.execute("ALTER TABLE model ADD COLUMN watch TEXT")


# ``INSERT OR REPLACE`` deletes the row it conflicts with *without firing delete triggers*
# (unless recursive_triggers is on, which a user's shell never has), so the update and delete
# triggers above can be walked around by re-inserting an existing key with other content: an
# approved version keeping its id but naming another tree. These refuse an insert whose key
# exists, before the conflict resolution runs. Content-addressed rows with equal content are
# silently skipped (adding what exists is a no-op; LabelDesk's own INSERT OR IGNORE relies on it).
# An existing image row is always kept as it is: its measurements come from probing the same
# bytes, and a newer Pillow measuring them differently must not make a re-import fail.
# Decisions are history: never changed, an approval never deleted, and each one records the
# status its version was just given (decide() updates the version first). Image rows describe
# immutable bytes, so they never change either. What triggers cannot stop (dropping them,
# rebuilding a table) `labeldesk fsck` detects: it recomputes every id and hash and compares the
# triggers with these.
_TAMPER_TRIGGERS = """
CREATE TRIGGER version_insert_new BEFORE INSERT ON version
    WHEN EXISTS (SELECT 1 FROM version WHERE id = NEW.id OR seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'a version with this id or seq exists; versions are immutable'); END;
CREATE TRIGGER decision_insert_new BEFORE INSERT ON decision
    WHEN EXISTS (SELECT 1 FROM decision WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'a decision with this id exists; decisions are history'); END;
CREATE TRIGGER decision_matches_version BEFORE INSERT ON decision
    WHEN NEW.decision IS NOT (SELECT status FROM version WHERE id = NEW.version)
BEGIN SELECT RAISE(ABORT, 'a decision must record the status its version was given'); END;
CREATE TRIGGER decision_immutable BEFORE UPDATE ON decision
BEGIN SELECT RAISE(ABORT, 'a decision is history and never changes'); END;
CREATE TRIGGER decision_approval_kept BEFORE DELETE ON decision WHEN OLD.decision = 'approved'
BEGIN SELECT RAISE(ABORT, 'an approval cannot be deleted'); END;
CREATE TRIGGER ref_insert_new BEFORE INSERT ON ref
    WHEN EXISTS (SELECT 1 FROM ref WHERE name = NEW.name)
BEGIN SELECT RAISE(ABORT, 'this ref exists; a ref moves by compare-and-swap, never by REPLACE');
END;
CREATE TRIGGER annotation_set_insert_once BEFORE INSERT ON annotation_set
    WHEN EXISTS (SELECT 1 FROM annotation_set WHERE hash = NEW.hash)
BEGIN SELECT CASE WHEN EXISTS (SELECT 1 FROM annotation_set WHERE hash = NEW.hash
        AND boxes IS NEW.boxes AND n_boxes IS NEW.n_boxes)
    THEN RAISE(IGNORE)
    ELSE RAISE(ABORT, 'annotation sets are content-addressed and immutable') END; END;
CREATE TRIGGER manifest_bucket_insert_once BEFORE INSERT ON manifest_bucket
    WHEN EXISTS (SELECT 1 FROM manifest_bucket WHERE hash = NEW.hash)
BEGIN SELECT CASE WHEN EXISTS (SELECT 1 FROM manifest_bucket WHERE hash = NEW.hash
        AND entries IS NEW.entries AND n_images IS NEW.n_images AND n_boxes IS NEW.n_boxes)
    THEN RAISE(IGNORE)
    ELSE RAISE(ABORT, 'manifest buckets are content-addressed and immutable') END; END;
CREATE TRIGGER manifest_tree_insert_once BEFORE INSERT ON manifest_tree
    WHEN EXISTS (SELECT 1 FROM manifest_tree WHERE hash = NEW.hash)
BEGIN SELECT CASE WHEN EXISTS (SELECT 1 FROM manifest_tree WHERE hash = NEW.hash
        AND buckets IS NEW.buckets AND n_images IS NEW.n_images AND n_boxes IS NEW.n_boxes)
    THEN RAISE(IGNORE)
    ELSE RAISE(ABORT, 'manifest trees are content-addressed and immutable') END; END;
CREATE TRIGGER image_insert_once BEFORE INSERT ON image
    WHEN EXISTS (SELECT 1 FROM image WHERE sha256 = NEW.sha256)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER image_immutable BEFORE UPDATE ON image
BEGIN SELECT RAISE(ABORT, 'an image row describes immutable bytes and never changes'); END;
"""


@migrations()
def m005_tamper_evidence(db: Database) -> None:
    db.executescript(_TAMPER_TRIGGERS)


@functools.cache
def expected_schema() -> dict[tuple[str, str], str]:
    """``(type, name) -> SQL`` of every table, index and trigger the migrations create.

    Built by applying the migrations to an empty in-memory database, so it is exactly what a
    project made by this LabelDesk holds; fsck compares a project's ``sqlite_master`` with it to
    find dropped or rewritten triggers and rebuilt tables.
    """
    db = Database(memory=True)
    migrations.apply(db)
    rows = db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND type IN ('table', 'index', 'trigger') AND tbl_name != '_sqlite_migrations'"
    ).fetchall()
    db.close()
    return {(t, n): sql for t, n, sql in rows}


@migrations()
def m006_training_runs(db: Database) -> None:
    # A training run: what was trained on (version, split manifest), from what (base model id
    # or config), how (every parameter, seed, library versions), what happened per epoch, and
    # what it produced. ``model`` is set only when the run completed and its weights registered.
    db.executescript(
        """
CREATE TABLE training_run (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL REFERENCES version(id),
    split_hash TEXT NOT NULL,
    base_kind TEXT NOT NULL CHECK (base_kind IN ('model', 'config')),
    base TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER NOT NULL,
    libs TEXT,
    epochs TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'completed', 'cancelled', 'failed')),
    error TEXT,
    started TEXT NOT NULL,
    finished TEXT,
    wall_s REAL,
    author TEXT NOT NULL,
    model TEXT REFERENCES model(id),
    partial TEXT,
    run_dir TEXT
);
CREATE INDEX training_run_version ON training_run(version);
CREATE INDEX training_run_model ON training_run(model);

CREATE TABLE promotion (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL REFERENCES model(id),
    over TEXT REFERENCES model(id),
    version TEXT NOT NULL REFERENCES version(id),
    subset TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    baseline_value REAL,
    min_gain REAL NOT NULL,
    passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
    run TEXT NOT NULL,
    at TEXT NOT NULL,
    by TEXT NOT NULL
);
"""
    )


@migrations()
def m007_remotes(db: Database) -> None:
    # Remotes (S3 bucket prefixes) and what this project knows of each: where its refs pointed
    # when last seen (with the etag a compare-and-swap needs) and which keys it is known to
    # hold, so a push sends only what is missing. Never a credential: those stay in the
    # standard AWS places.
    db.executescript(
        """
CREATE TABLE remote (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    endpoint_url TEXT,
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL,
    probed_at TEXT,
    lazy INTEGER NOT NULL DEFAULT 0 CHECK (lazy IN (0, 1))
);

CREATE TABLE remote_ref (
    remote TEXT NOT NULL REFERENCES remote(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    etag TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (remote, name)
);

CREATE TABLE remote_has (
    remote TEXT NOT NULL REFERENCES remote(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    PRIMARY KEY (remote, key)
) WITHOUT ROWID;
"""
    )


@migrations()
def m008_packed_boxes(db: Database) -> None:
    # Packed float64 copies of every annotation set and prediction row (core.packed), which the
    # review queue reads with numpy instead of parsing JSON. Derived from the JSON beside them,
    # re-derivable, and checked by fsck (packed_boxes); NULL: the arrays cannot represent the
    # set exactly (its images are ranked one by one). Existing rows get their copies here.
    from .packed import pack_labels, pack_predictions

    db.executescript(
        """
CREATE TABLE annotation_set_packed (
    hash TEXT PRIMARY KEY,  -- an annotation set's (fsck checks it exists)
    packed BLOB
);
ALTER TABLE prediction ADD COLUMN packed BLOB;
ALTER TABLE prediction ADD COLUMN packed_names TEXT;
"""
    )
    conn = db.conn
    conn.executemany(
        "INSERT INTO annotation_set_packed (hash, packed) VALUES (?, ?)",
        [
            (h, pack_labels(text))
            for h, text in conn.execute("SELECT hash, boxes FROM annotation_set")
        ],
    )
    rows = []
    for rowid, text in conn.execute("SELECT rowid, boxes FROM prediction"):
        copy = pack_predictions(text)
        if copy is not None:
            rows.append((*copy, rowid))
    conn.executemany("UPDATE prediction SET packed = ?, packed_names = ? WHERE rowid = ?", rows)


# The migrations above must match the number the database layer checks without loading this
# module (labeldesk.core.store.schema_version): a new migration bumps that constant too.
_DEFINED = sum(1 for name in globals() if re.fullmatch(r"m\d{3}_\w+", name))
if _DEFINED != SCHEMA_VERSION:
    raise RuntimeError(
        f"schema.py defines {_DEFINED} migrations but schema_version.SCHEMA_VERSION is "
        f"{SCHEMA_VERSION}: update labeldesk/core/store/schema_version.py"
    )
