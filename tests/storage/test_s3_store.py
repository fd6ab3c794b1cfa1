"""S3Store: against the moto S3 server (services) and, for failures, offline.

moto accepts any credentials, so rejected credentials are exercised with botocore's
Stubber answering as S3 does (403 InvalidAccessKeyId / SignatureDoesNotMatch).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from botocore.stub import Stubber

from heimdall.errors import ConfigError, InputError, NotFoundError
from heimdall.storage.s3 import S3Store

MANIFEST = "manifest.json"


def make_source(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def offline_store(tmp_path: Path, endpoint_url: str = "http://127.0.0.1:9") -> S3Store:
    return S3Store(
        endpoint_url=endpoint_url,
        access_key_id="key",
        secret_access_key="secret",
        cache_dir=tmp_path / "cache",
    )


# --- offline -------------------------------------------------------------------------------


def test_keys_map_to_their_buckets(tmp_path: Path) -> None:
    store = S3Store(
        endpoint_url="http://127.0.0.1:9",
        access_key_id="key",
        secret_access_key="secret",
        bucket_prefix="acme",
        cache_dir=tmp_path,
    )
    assert store.uri("datasets/small/manifest.json") == "s3://acme-datasets/small/manifest.json"
    assert store.uri("models/heimdall-localizer/v1") == "s3://acme-models/heimdall-localizer/v1"
    assert store.uri("reports/r1/report.json") == "s3://acme-artifacts/reports/r1/report.json"
    assert store.uri("mlflow/1/run/artifacts") == "s3://acme-mlflow/1/run/artifacts"
    assert store.bucket_names() == ["acme-datasets", "acme-models", "acme-mlflow", "acme-artifacts"]


@pytest.mark.parametrize("key", ["", "/", "datasets/../x", "./a"])
def test_invalid_keys_are_input_errors(tmp_path: Path, key: str) -> None:
    with pytest.raises(InputError):
        offline_store(tmp_path).uri(key)


def test_missing_credentials_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="S3 credentials missing"):
        S3Store(endpoint_url=None, access_key_id=None, secret_access_key="x", cache_dir=tmp_path)


def test_invalid_bucket_prefix_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bucket prefix"):
        S3Store(endpoint_url=None, access_key_id="a", secret_access_key="b", bucket_prefix="a_b", cache_dir=tmp_path)


@pytest.mark.parametrize("call", ["exists", "list", "check"])
def test_unreachable_endpoint_fails_fast_with_one_line(tmp_path: Path, closed_port: int, call: str) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    store = offline_store(tmp_path, endpoint)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        if call == "check":
            store.check()
        else:
            getattr(store, call)("datasets/small/manifest.json")
    assert time.monotonic() - started < 5.0
    message = str(info.value)
    assert message.startswith(f"cannot reach S3 endpoint {endpoint}: ")
    assert "\n" not in message
    # Raised `from None`: no botocore chain for an adapter to print.
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("operation", "code", "call"),
    [
        ("head_object", "InvalidAccessKeyId", lambda s: s.exists("datasets/small/manifest.json")),
        ("list_objects_v2", "SignatureDoesNotMatch", lambda s: s.list("datasets/small")),
        ("head_bucket", "403", lambda s: s.check()),
    ],
)
def test_rejected_credentials_are_a_config_error(tmp_path: Path, operation: str, code: str, call) -> None:  # noqa: ANN001
    store = offline_store(tmp_path, "http://s3.example.invalid")
    with Stubber(store.client) as stub:
        stub.add_client_error(operation, service_error_code=code, http_status_code=403)
        with pytest.raises(ConfigError) as info:
            call(store)
    assert str(info.value).startswith(f"S3 credentials rejected by http://s3.example.invalid: {code}")


# --- against the S3 server -----------------------------------------------------------------


@pytest.mark.services
def test_publish_list_exists_local_dir_round_trip(s3_store: S3Store, s3_client, tmp_path: Path) -> None:  # noqa: ANN001
    files = {MANIFEST: b'{"name": "small"}', "shard-00000.npz": b"\x00" * 4096, "extra/network.yaml": b"name: x\n"}
    s3_store.publish_dir("datasets/small", make_source(tmp_path / "src", files), MANIFEST)

    keys = [f"datasets/small/{name}" for name in sorted(files)]
    assert s3_store.list("datasets/small") == keys
    assert s3_store.list("datasets") == keys
    assert s3_store.list("datasets/smal") == []
    assert s3_store.exists("datasets/small/manifest.json")
    assert s3_store.exists("datasets/small")
    assert not s3_store.exists("datasets/smal")
    # The datasets bucket holds them without the `datasets/` segment.
    stored = s3_client.list_objects_v2(Bucket=f"{s3_store.bucket_prefix}-datasets")["Contents"]
    assert sorted(o["Key"] for o in stored) == [f"small/{name}" for name in sorted(files)]

    local = s3_store.local_dir("datasets/small")
    assert local == s3_store.cache_dir / "datasets" / "small"
    for name, data in files.items():
        assert (local / name).read_bytes() == data
    copy = s3_store.get_file("datasets/small/extra/network.yaml", tmp_path / "copy.yaml")
    assert copy.read_bytes() == files["extra/network.yaml"]


@pytest.mark.services
def test_local_dir_downloads_only_what_changed(s3_store: S3Store, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    source = make_source(tmp_path / "v1", {MANIFEST: b"{}", "a.bin": b"aaaa", "b.bin": b"bbbb"})
    s3_store.publish_dir("models/m/v1", source, MANIFEST)
    s3_store.local_dir("models/m/v1")

    downloads: list[str] = []
    real = s3_store.client.download_file

    def counting(bucket: str, key: str, filename: str) -> None:
        downloads.append(key)
        real(bucket, key, filename)

    monkeypatch.setattr(s3_store.client, "download_file", counting)
    s3_store.local_dir("models/m/v1")
    assert downloads == []

    # Same size, other bytes (so another ETag); a file gone; a file new.
    s3_store.delete_prefix("models/m/v1")
    source2 = make_source(tmp_path / "v2", {MANIFEST: b"{}", "a.bin": b"AAAA", "c.bin": b"c"})
    s3_store.publish_dir("models/m/v1", source2, MANIFEST)
    local = s3_store.local_dir("models/m/v1")
    assert sorted(downloads) == ["m/v1/a.bin", "m/v1/c.bin"]
    assert (local / "a.bin").read_bytes() == b"AAAA"
    assert sorted(p.name for p in local.iterdir()) == ["a.bin", "c.bin", MANIFEST]


@pytest.mark.services
def test_interrupted_publish_leaves_no_manifest(s3_store: S3Store, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    source = make_source(tmp_path / "src", {MANIFEST: b"{}", "shard-00000.npz": b"x" * 100, "old.bin": b"o"})

    real_put = s3_store.client.put_object

    def dies_on_manifest(**kwargs: object) -> object:
        if str(kwargs["Key"]).endswith(MANIFEST):
            raise RuntimeError("connection lost while uploading the manifest")
        return real_put(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(s3_store.client, "put_object", dies_on_manifest)
        with pytest.raises(RuntimeError):
            s3_store.publish_dir("datasets/half", source, MANIFEST)

    # The data files are there, the manifest is not: a reader treats the dataset as absent.
    assert s3_store.exists("datasets/half/shard-00000.npz")
    assert not s3_store.exists("datasets/half/manifest.json")

    # Publishing again replaces the leftovers (the stale file included).
    (source / "old.bin").unlink()
    s3_store.publish_dir("datasets/half", source, MANIFEST)
    assert s3_store.list("datasets/half") == ["datasets/half/manifest.json", "datasets/half/shard-00000.npz"]


@pytest.mark.services
def test_publishing_over_a_published_prefix_is_an_input_error(s3_store: S3Store, tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", {MANIFEST: b"{}", "a.bin": b"a"})
    s3_store.publish_dir("datasets/dup", source, MANIFEST)
    with pytest.raises(InputError, match="already exists"):
        s3_store.publish_dir("datasets/dup", source, MANIFEST)


@pytest.mark.services
def test_concurrent_publishers_cannot_both_win(s3_store: S3Store, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The manifest is created with If-None-Match: the loser of a race gets InputError."""
    first = make_source(tmp_path / "first", {MANIFEST: b'{"by": "first"}', "a.bin": b"1"})
    second = make_source(tmp_path / "second", {MANIFEST: b'{"by": "second"}', "a.bin": b"2"})
    s3_store.publish_dir("datasets/race", first, MANIFEST)
    # The second publisher checked before the first one finished.
    monkeypatch.setattr(s3_store, "exists", lambda key: False)
    with pytest.raises(InputError, match="already exists"):
        s3_store.publish_dir("datasets/race", second, MANIFEST)
    assert s3_store.get_file("datasets/race/manifest.json", tmp_path / "m.json").read_bytes() == b'{"by": "first"}'


@pytest.mark.services
def test_delete_prefix(s3_store: S3Store, tmp_path: Path) -> None:
    s3_store.publish_dir("datasets/a", make_source(tmp_path / "a", {MANIFEST: b"{}", "x": b"1", "y/z": b"2"}), MANIFEST)
    s3_store.publish_dir("datasets/ab", make_source(tmp_path / "ab", {MANIFEST: b"{}"}), MANIFEST)
    assert s3_store.delete_prefix("datasets/a") == 3
    assert s3_store.list("datasets/a") == []
    assert not s3_store.exists("datasets/a/manifest.json")
    assert s3_store.list("datasets/ab") == ["datasets/ab/manifest.json"]
    assert s3_store.delete_prefix("datasets/a") == 0
    with pytest.raises(NotFoundError):
        s3_store.local_dir("datasets/a")


@pytest.mark.services
def test_missing_buckets_read_as_empty_and_are_created_on_write(
    s3_endpoint_url: str, s3_client, tmp_path: Path  # noqa: ANN001
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    store = S3Store(
        endpoint_url=s3_endpoint_url,
        access_key_id="any",
        secret_access_key="any",
        bucket_prefix=prefix,
        cache_dir=tmp_path / "cache",
    )
    assert store.list("models/x") == []
    assert not store.exists("models/x/config.yaml")
    store.publish_dir("models/x/v1", make_source(tmp_path / "src", {"config.yaml": b"a: 1\n"}), "config.yaml")
    try:
        assert store.exists("models/x/v1/config.yaml")
    finally:
        store.delete_prefix("models")
        s3_client.delete_bucket(Bucket=f"{prefix}-models")
