"""Recordings jobs: import a directory of SigMF transmissions as a dataset of kind iq."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heimdall.data.catalog import register_dataset
from heimdall.data.measured import MeasuredSplitMode
from heimdall.data.shards import DatasetReader, dataset_prefix
from heimdall.errors import InputError
from heimdall.pipelines.context import Context
from heimdall.pipelines.publishing import clean_stale_work

__all__ = ["RecordingsImportResult", "import_recordings"]


@dataclass(frozen=True)
class RecordingsImportResult:
    dataset: str
    samples: int
    recordings: int
    receivers: int
    sample_rate_hz: float
    splits: dict[str, int]


def import_recordings(
    ctx: Context, directory: Path, name: str, split_mode: MeasuredSplitMode = "random", seed: int = 0
) -> RecordingsImportResult:
    """Import `directory` (`DIR/<sample_id>/<receiver_id>.sigmf-meta|-data`) as dataset `name`.

    Every transmission must carry its truth position; see
    `heimdall.data.recordings.write_recordings_dataset` for what is checked.
    """
    from heimdall.data.recordings import write_recordings_dataset

    if split_mode not in ("random", "grid"):
        raise InputError(f"--split-mode must be random or grid, got {split_mode!r}")
    clean_stale_work(ctx)
    manifest = write_recordings_dataset(ctx.store, ctx.staging_dir, name, Path(directory), split_mode, seed)
    register_dataset(ctx.db, DatasetReader(ctx.store, name), ctx.store.uri(dataset_prefix(name)))
    iq = (manifest.scenario or {})["iq"]
    return RecordingsImportResult(
        dataset=manifest.name,
        samples=manifest.num_samples,
        recordings=int(iq["recordings"]),
        receivers=len(manifest.station_ids),
        sample_rate_hz=float(iq["sample_rate_hz"]),
        splits=manifest.split_counts,
    )
