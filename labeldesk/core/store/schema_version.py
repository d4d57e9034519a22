"""The schema version this LabelDesk writes: one per migration in :mod:`.schema`.

A module of its own so that opening a project (``core.db``) can compare ``PRAGMA user_version``
with it without importing sqlite-utils, which only the migrations need: read commands start
that much faster. :mod:`.schema` refuses to load if the two disagree.
"""

SCHEMA_VERSION = 8
