"""Fixtures for storage tests: the real services `make test` starts, or a clear failure.

Service tests never skip: without the HEIMDALL_TEST_* variables they fail and say how to
get the services (`make test` starts them; by hand: `bash scripts/services.sh up &&
source .services/env`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from botocore.config import Config

from heimdall.storage.s3 import S3Store

# moto accepts any credentials; these only have to be non-empty.
S3_ACCESS_KEY_ID = "heimdall-test"
S3_SECRET_ACCESS_KEY = "heimdall-test-secret"


def require_env(name: str) -> str:
    """The value of a HEIMDALL_TEST_* variable, or a test failure naming it."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: this test needs the real services; run make test, which starts "
            "the services (by hand: bash scripts/services.sh up && source .services/env)",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def s3_endpoint_url() -> str:
    return require_env("HEIMDALL_TEST_S3_ENDPOINT_URL")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_env("HEIMDALL_TEST_DATABASE_URL")


def _raw_client(endpoint_url: str):  # noqa: ANN202 (boto3 clients have no importable type)
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY_ID,
        aws_secret_access_key=S3_SECRET_ACCESS_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_client(s3_endpoint_url: str):  # noqa: ANN201
    """A plain boto3 client on the test server, to look behind the store's back."""
    return _raw_client(s3_endpoint_url)


@pytest.fixture
def s3_store(s3_endpoint_url: str, tmp_path: Path) -> Iterator[S3Store]:
    """An `S3Store` with buckets of its own (a random prefix), removed afterwards."""
    store = S3Store(
        endpoint_url=s3_endpoint_url,
        access_key_id=S3_ACCESS_KEY_ID,
        secret_access_key=S3_SECRET_ACCESS_KEY,
        bucket_prefix=f"t-{uuid.uuid4().hex[:12]}",
        cache_dir=tmp_path / "s3-cache",
    )
    store.check()
    yield store
    client = _raw_client(s3_endpoint_url)
    for bucket in store.bucket_names():
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database on the test server, dropped afterwards.

    A database of its own, so that downgrading cannot pull tables from under other tests.
    """
    name = f"heimdall_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
