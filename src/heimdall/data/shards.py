"""Dataset storage: shards of `SampleArrays` plus a manifest, published whole.

Layout under the artifact store: `datasets/{name}/manifest.json` (written last),
`network.yaml`, `shard-00000.npz`, ... A dataset without its manifest does not exist.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from heimdall.data.layout import SPLIT_NAMES, SampleArrays
from heimdall.errors import DataError, InputError, NotFoundError
from heimdall.geo import ReferencePoint
from heimdall.network import ReceiverNetwork
from heimdall.storage.artifacts import ArtifactStore

__all__ = [
    "DatasetManifest",
    "ShardInfo",
    "DatasetWriter",
    "DatasetReader",
    "dataset_prefix",
    "validate_dataset_name",
]

MANIFEST = "manifest.json"
NETWORK_FILE = "network.yaml"
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_dataset_name(name: str) -> str:
    """A dataset name: letters, digits, '.', '_' or '-', 1-128 characters."""
    if not _NAME_RE.match(name or ""):
        raise InputError(
            f"invalid dataset name {name!r}: use 1-128 letters, digits, '.', '_' or '-'"
        )
    return name


def dataset_prefix(name: str) -> str:
    """Artifact-store prefix of dataset `name`."""
    return f"datasets/{validate_dataset_name(name)}"


class ShardInfo(BaseModel):
    """One shard file and how many samples of each split it holds."""

    model_config = ConfigDict(frozen=True)

    file: str
    num_samples: int
    split_counts: dict[str, int]


class DatasetManifest(BaseModel):
    """Everything known about a dataset besides its arrays."""

    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    name: str
    kind: str  # "features", "iq" or "measured"
    num_samples: int
    num_receivers: int
    station_ids: list[str]
    reference_point: dict[str, float]
    frequency_hz: float
    seed: int | None = None
    split_mode: str
    split_counts: dict[str, int]
    shards: list[ShardInfo]
    scenario: dict[str, Any] | None = None
    acceptance_rate: float | None = None
    effective_sigma_db: float | None = None
    description: str | None = None
    created_at: str

    @property
    def reference(self) -> ReferencePoint:
        """The dataset's local-coordinate origin."""
        return ReferencePoint(**self.reference_point)


def _split_counts(split: np.ndarray) -> dict[str, int]:
    return {name: int(np.sum(split == code)) for code, name in enumerate(SPLIT_NAMES)}


class DatasetWriter:
    """Writes shards to a private staging directory and publishes them with the manifest.

    Use as a context manager: leaving the block with an exception discards everything.
    """

    def __init__(self, store: ArtifactStore, name: str, staging_root: Path) -> None:
        self.store = store
        self.name = validate_dataset_name(name)
        self.prefix = dataset_prefix(name)
        if store.exists(f"{self.prefix}/{MANIFEST}"):
            raise InputError(f"dataset {name!r} already exists")
        staging_root.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f"{self.name}.", dir=staging_root))
        self.shards: list[ShardInfo] = []
        self.num_receivers: int | None = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def write_shard(self, samples: SampleArrays) -> ShardInfo:
        """Append one shard."""
        if self.num_receivers is None:
            self.num_receivers = samples.num_receivers
        elif samples.num_receivers != self.num_receivers:
            raise DataError("all shards of a dataset must share the receiver axis")
        info = ShardInfo(
            file=f"shard-{len(self.shards):05d}.npz",
            num_samples=len(samples),
            split_counts=_split_counts(samples.split),
        )
        np.savez(self.staging / info.file, **samples.to_dict())
        self.shards.append(info)
        return info

    def publish(self, network: ReceiverNetwork, reference: ReferencePoint, kind: str, **extra: Any) -> DatasetManifest:
        """Write network and manifest, then make the dataset visible in the store."""
        total = sum(s.num_samples for s in self.shards)
        if total == 0:
            raise DataError(f"dataset {self.name!r} would be empty")
        counts = {n: sum(s.split_counts[n] for s in self.shards) for n in SPLIT_NAMES}
        manifest = DatasetManifest(
            name=self.name,
            kind=kind,
            num_samples=total,
            num_receivers=int(self.num_receivers or 0),
            station_ids=list(network.ids),
            reference_point={"lat_deg": reference.lat_deg, "lon_deg": reference.lon_deg, "alt_m": reference.alt_m},
            frequency_hz=network.frequency_hz,
            split_counts=counts,
            shards=self.shards,
            created_at=datetime.now(timezone.utc).isoformat(),
            **extra,
        )
        network.save(self.staging / NETWORK_FILE)
        (self.staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        self.store.publish_dir(self.prefix, self.staging, MANIFEST)
        return manifest


class DatasetReader:
    """Read access to one published dataset."""

    def __init__(self, store: ArtifactStore, name: str) -> None:
        prefix = dataset_prefix(name)
        if not store.exists(f"{prefix}/{MANIFEST}"):
            raise NotFoundError(f"dataset {name!r} not found")
        self.directory = store.local_dir(prefix)
        try:
            self.manifest = DatasetManifest.model_validate_json((self.directory / MANIFEST).read_text())
        except ValidationError as exc:
            raise DataError(f"dataset {name!r} has a malformed manifest: {exc.errors()[0]['msg']}") from exc
        self.network = ReceiverNetwork.load(self.directory / NETWORK_FILE)

    @property
    def name(self) -> str:
        return self.manifest.name

    def iter_shards(self, split: str = "all") -> Iterator[SampleArrays]:
        """Shards one at a time (memory stays at one shard), filtered to `split`."""
        for info in self.manifest.shards:
            if split != "all" and info.split_counts.get(split, 0) == 0:
                continue
            yield self.load_shard(info.file, split)

    def load_shard(self, file: str, split: str = "all") -> SampleArrays:
        """One shard's samples of `split`."""
        if file not in {s.file for s in self.manifest.shards}:
            raise NotFoundError(f"dataset {self.name!r} has no shard {file!r}")
        with np.load(self.directory / file) as arrays:
            return SampleArrays.from_dict(dict(arrays)).split_subset(split)

    def load(self, split: str = "all") -> SampleArrays:
        """Every sample of `split` in memory."""
        if split not in (*SPLIT_NAMES, "all"):
            raise InputError(f"unknown split {split!r}; expected train, val, test or all")
        parts = [p for p in self.iter_shards(split) if len(p)]
        if not parts:
            raise DataError(f"dataset {self.name!r} has no samples in split {split!r}")
        return SampleArrays.concatenate(parts)

    def describe(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (without the shard list)."""
        data = json.loads(self.manifest.model_dump_json())
        data.pop("shards")
        data["num_shards"] = len(self.manifest.shards)
        return data
