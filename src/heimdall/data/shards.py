"""Dataset storage: shards of `SampleArrays` plus a manifest, published whole.

Layout under the artifact store: `datasets/{name}/manifest.json` (written last),
`network.yaml`, `shard-00000.npz`, ... A dataset without its manifest does not exist.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from heimdall.data.layout import SPLIT_NAMES, SampleArrays
from heimdall.errors import ConflictError, DataError, HeimdallError, InputError, NotFoundError
from heimdall.geo import ReferencePoint
from heimdall.names import is_slug, to_slug
from heimdall.network import ReceiverNetwork
from heimdall.pausepoints import pause_point
from heimdall.storage.artifacts import ArtifactStore
from heimdall.storage.staging import owned_dir

__all__ = [
    "DatasetManifest",
    "ShardInfo",
    "DatasetWriter",
    "DatasetReader",
    "dataset_prefix",
    "validate_dataset_name",
    "plan_digest",
    "staging_in_use",
]

MANIFEST = "manifest.json"
NETWORK_FILE = "network.yaml"
#: The plan and finished shards of a resumable generation, in its staging directory.
PROGRESS_FILE = "progress.json"
FORMAT_VERSION = 1

log = logging.getLogger(__name__)


def validate_dataset_name(name: str) -> str:
    """The stored name (slug) of dataset `name`; a display name becomes its slug (`heimdall.names`)."""
    return to_slug(name, "dataset")


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
    #: The name as the user wrote it, when it was not already a slug ("Test Dataset 1k").
    display_name: str | None = None
    created_at: str

    @property
    def reference(self) -> ReferencePoint:
        """The dataset's local-coordinate origin."""
        return ReferencePoint(**self.reference_point)


def _split_counts(split: np.ndarray) -> dict[str, int]:
    return {name: int(np.sum(split == code)) for code, name in enumerate(SPLIT_NAMES)}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez` with fixed zip timestamps (same arrays, same bytes), via a temporary name."""
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    os.replace(partial, path)


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(partial, path)


def plan_digest(plan: dict[str, Any]) -> str:
    """SHA-256 of a generation plan's canonical JSON."""
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def staging_in_use(staging_root: Path, name: str) -> bool:
    """Whether a live process (on this machine) is writing the staged run of dataset `name`.

    The writer holds an advisory lock for as long as it lives; a killed one holds none.
    """
    lock = staging_root / validate_dataset_name(name) / ".lock"
    if not lock.is_file():
        return False
    descriptor = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


class DatasetWriter:
    """Writes shards to a staging directory and publishes them with the manifest.

    Use as a context manager. Without a `plan`, staging is private and leaving the block
    with an exception discards everything. With a `plan` (a JSON-ready description of a
    deterministic generation) staging is `staging_root/name` and survives a crash or an
    interruption (not a HeimdallError, which the same plan would raise again): each
    finished shard is recorded in `progress.json`, and `resume=True` picks up those shards
    when the plan is the same. An existing staging directory without `resume` is an error
    (it would be silently thrown away otherwise); a staging directory another process is
    writing is a ConflictError.
    """

    def __init__(
        self,
        store: ArtifactStore,
        name: str,
        staging_root: Path,
        plan: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.store = store
        self.name = validate_dataset_name(name)
        self.display_name = None if is_slug(name) else name.strip()
        self.prefix = dataset_prefix(name)
        if store.exists(f"{self.prefix}/{MANIFEST}"):
            raise InputError(f"dataset {name!r} already exists")
        staging_root.mkdir(parents=True, exist_ok=True)
        self.shards: list[ShardInfo] = []
        #: JSON-ready statistics of each shard (draws, acceptance, ...), for a resumed run.
        self.shard_stats: list[dict[str, Any]] = []
        self.num_receivers: int | None = None
        self.plan = plan
        self._lock: int | None = None
        if plan is None:
            # Private and owned: a killed import's directory is found and removed later.
            self.staging = owned_dir(staging_root, self.name)
            return
        self.staging = staging_root / self.name
        self.staging.mkdir(exist_ok=True)
        self._lock = os.open(self.staging / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise ConflictError(f"dataset {name!r} is being generated by another process") from None
        try:
            self._load_progress(resume)
            self._remove_unrecorded()
        except BaseException:
            self._release()
            raise

    def _load_progress(self, resume: bool) -> None:
        progress = self.staging / PROGRESS_FILE
        if not progress.is_file():
            return
        if not resume:
            raise ConflictError(
                f"an interrupted generation of dataset {self.name!r} is staged in {self.staging}; "
                "run the same command with --resume to continue it, or delete that directory to start over"
            )
        record = json.loads(progress.read_text())
        staged = record.get("plan", {})
        assert self.plan is not None
        differing = sorted(k for k in set(staged) | set(self.plan) if staged.get(k) != self.plan.get(k))
        if differing:
            raise InputError(
                f"cannot resume dataset {self.name!r}: the staged run differs in {', '.join(differing)} "
                f"(staged {', '.join(f'{k}={staged.get(k)!r}' for k in differing if k != 'network_scenario_sha256')}); "
                f"use the same options, or delete {self.staging} to start over"
            )
        for info, stats in zip(record.get("shards", []), record.get("shard_stats", [])):
            shard = ShardInfo(**info)
            if not (self.staging / shard.file).is_file():
                break
            self.shards.append(shard)
            self.shard_stats.append(stats)
            self.num_receivers = stats.get("num_receivers", self.num_receivers)
        log.info("resuming dataset %s: %d shards already staged", self.name, len(self.shards))

    def _remove_unrecorded(self) -> None:
        # A killed run may leave a half-written file, or shards it never recorded.
        recorded = {s.file for s in self.shards}
        for path in self.staging.iterdir():
            if path.name.endswith(".partial") or (path.name.startswith("shard-") and path.name not in recorded):
                path.unlink()

    def _save_progress(self) -> None:
        _write_json(
            self.staging / PROGRESS_FILE,
            {"plan": self.plan, "shards": [s.model_dump() for s in self.shards], "shard_stats": self.shard_stats},
        )

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # A planned generation keeps its finished shards when interrupted (resumable), not
        # when its input was at fault: the same plan would fail the same way again.
        interrupted = exc_type is not None and not issubclass(exc_type, HeimdallError)
        if self.plan is None or not interrupted:
            shutil.rmtree(self.staging, ignore_errors=True)
        self._release()

    def write_shard(self, samples: SampleArrays, stats: dict[str, Any] | None = None) -> ShardInfo:
        """Append one shard (written whole under its final name, then recorded)."""
        if self.num_receivers is None:
            self.num_receivers = samples.num_receivers
        elif samples.num_receivers != self.num_receivers:
            raise DataError("all shards of a dataset must share the receiver axis")
        info = ShardInfo(
            file=f"shard-{len(self.shards):05d}.npz",
            num_samples=len(samples),
            split_counts=_split_counts(samples.split),
        )
        _write_npz(self.staging / info.file, samples.to_dict())
        self.shards.append(info)
        self.shard_stats.append({**(stats or {}), "num_receivers": samples.num_receivers})
        if self.plan is not None:
            self._save_progress()
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
            display_name=self.display_name,
            **extra,
        )
        network.save(self.staging / NETWORK_FILE)
        (self.staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        # Bookkeeping of a resumable run is not part of the dataset.
        for private in (PROGRESS_FILE, ".lock"):
            (self.staging / private).unlink(missing_ok=True)
        pause_point("dataset:staged")
        self.store.publish_dir(self.prefix, self.staging, MANIFEST)
        return manifest


class DatasetReader:
    """Read access to one published dataset."""

    def __init__(self, store: ArtifactStore, name: str, keep_loaded: bool = False) -> None:
        """`keep_loaded`: `load` keeps each split it read in memory, for a job that reads one
        split several times (an export calibrates, stages, evaluates and quantises on them)."""
        prefix = dataset_prefix(name)
        self._loaded: dict[str, SampleArrays] | None = {} if keep_loaded else None
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
        if self._loaded is not None and split in self._loaded:
            return self._loaded[split]
        parts = [p for p in self.iter_shards(split) if len(p)]
        if not parts:
            raise DataError(f"dataset {self.name!r} has no samples in split {split!r}")
        samples = SampleArrays.concatenate(parts)
        if self._loaded is not None:
            self._loaded[split] = samples
        return samples

    def describe(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (without the shard list)."""
        data = json.loads(self.manifest.model_dump_json())
        data.pop("shards")
        data["num_shards"] = len(self.manifest.shards)
        return data
