"""The real S3 server (SeaweedFS from its wheel) for the remote tests."""

from s3server import remote_url, s3_env, s3_server  # noqa: F401 - fixtures
