"""One contract, every `ArtifactStore`: LocalStore (offline) and S3Store (the S3 service)."""

from __future__ import annotations

from pathlib import Path

import pytest

from heimdall.errors import InputError, NotFoundError
from heimdall.storage.artifacts import ArtifactStore, LocalStore

MANIFEST = "manifest.json"
FILES = {MANIFEST: b'{"name": "small"}', "shard-00000.npz": b"\x01" * 1000, "nested/network.yaml": b"name: n\n"}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def source(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.mark.parametrize("prefix", ["datasets/small", "models/net/v1", "reports/r1"])
def test_publish_then_read_back(store: ArtifactStore, tmp_path: Path, prefix: str) -> None:
    store.publish_dir(prefix, source(tmp_path / "src"), MANIFEST)

    assert store.exists(f"{prefix}/{MANIFEST}")
    assert store.exists(prefix)
    assert store.list(prefix) == sorted(f"{prefix}/{name}" for name in FILES)
    assert store.list(f"{prefix}/{MANIFEST}") == [f"{prefix}/{MANIFEST}"]
    local = store.local_dir(prefix)
    for name, data in FILES.items():
        assert (local / name).read_bytes() == data
    copy = store.get_file(f"{prefix}/shard-00000.npz", tmp_path / "out" / "shard.npz")
    assert copy.read_bytes() == FILES["shard-00000.npz"]
    assert store.uri(prefix).split("://")[0] in ("file", "s3")


def test_keys_are_normalised(store: ArtifactStore, tmp_path: Path) -> None:
    store.publish_dir("/datasets//small/", source(tmp_path / "src"), MANIFEST)
    assert store.exists("datasets/small/manifest.json")
    assert store.list("datasets/small/") == store.list("datasets/small")


def test_absent_things(store: ArtifactStore, tmp_path: Path) -> None:
    assert not store.exists("datasets/none/manifest.json")
    assert not store.exists("datasets/none")
    assert store.list("datasets/none") == []
    with pytest.raises(NotFoundError):
        store.local_dir("datasets/none")
    with pytest.raises(NotFoundError):
        store.get_file("datasets/none/manifest.json", tmp_path / "x")
    assert store.delete_prefix("datasets/none") == 0


def test_publish_needs_the_manifest_in_the_source(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=MANIFEST):
        store.publish_dir("datasets/small", source(tmp_path / "src", {"a.bin": b"a"}), MANIFEST)
    assert not store.exists("datasets/small/a.bin")


def test_publish_twice_is_an_input_error(store: ArtifactStore, tmp_path: Path) -> None:
    store.publish_dir("datasets/small", source(tmp_path / "src"), MANIFEST)
    with pytest.raises(InputError, match="already exists"):
        store.publish_dir("datasets/small", source(tmp_path / "src2"), MANIFEST)
    assert (store.local_dir("datasets/small") / MANIFEST).read_bytes() == FILES[MANIFEST]


def test_delete_prefix_counts_and_spares_siblings(store: ArtifactStore, tmp_path: Path) -> None:
    store.publish_dir("datasets/a", source(tmp_path / "a"), MANIFEST)
    store.publish_dir("datasets/ab", source(tmp_path / "ab", {MANIFEST: b"{}"}), MANIFEST)
    assert store.delete_prefix("datasets/a") == len(FILES)
    assert not store.exists("datasets/a/manifest.json")
    assert store.list("datasets/a") == []
    assert store.list("datasets/ab") == ["datasets/ab/manifest.json"]
    assert store.delete_prefix("datasets/ab/manifest.json") == 1
    assert store.list("datasets/ab") == []


@pytest.mark.parametrize("key", ["", "..", "datasets/../etc", "datasets/./x"])
def test_invalid_keys(store: ArtifactStore, key: str) -> None:
    with pytest.raises(InputError):
        store.exists(key)
