"""Push, fetch, pull and clone through an S3-compatible bucket (docs/remote.md).

Nothing here imports the S3 client at module level: it is loaded when a remote is first used.
"""
