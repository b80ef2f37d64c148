"""Shared pytest fixtures; the S3 server fixtures live in tests/s3server.py."""

pytest_plugins = ["tests.s3server"]
