"""Dataset jobs: generate, list, show, export."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from heimdall.data.catalog import dataset_row, list_datasets, register_dataset
from heimdall.data.measurement_files import write_measurements
from heimdall.data.shards import DatasetReader, dataset_prefix
from heimdall.data.splits import SplitMode
from heimdall.data.synthetic import SimulationPlan, generate_dataset
from heimdall.errors import DataError, InputError, NotFoundError
from heimdall.network import ReceiverNetwork, default_network
from heimdall.pipelines.context import Context
from heimdall.pipelines.publishing import clean_stale_work
from heimdall.progress import ProgressFn
from heimdall.requests import GenerateRequest, check_bounds
from heimdall.sim.scenario import ScenarioConfig

__all__ = [
    "GenerateResult",
    "generate",
    "datasets_list",
    "dataset_show",
    "dataset_export",
    "ImportResult",
    "import_measurements",
    "network_from_dataset",
]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class GenerateResult:
    dataset: str
    samples: int
    samples_per_s: float
    acceptance_rate: float
    splits: dict[str, int]


def generate(
    ctx: Context,
    name: str,
    num_samples: int,
    seed: int = 0,
    network_path: Path | None = None,
    kind: Literal["features", "iq"] = "features",
    workers: int = 1,
    split_mode: SplitMode = "random",
    scenario: ScenarioConfig | None = None,
    description: str | None = None,
    audio_dir: Path | None = None,
    progress: ProgressFn | None = None,
    resume: bool = False,
    network: ReceiverNetwork | None = None,
) -> GenerateResult:
    """Simulate a dataset for a network (default: the Italian WebSDRs) and catalogue it.

    `audio_dir` (kind iq): WAV files whose audio voice transmissions carry. `progress`
    receives ("generate", samples done, samples requested, note). A run stages its
    finished shards under `staging/NAME`; after a crash, the same call with `resume=True`
    keeps them and simulates the rest (same bytes as an uninterrupted run). Without
    `resume`, a staged run of that name is a ConflictError saying so. The receivers are
    `network`, or those of the file `network_path`, else the default network.
    """
    check_bounds(GenerateRequest(name=name, num_samples=num_samples, seed=seed, kind=kind, split_mode=split_mode))
    if audio_dir is not None and kind != "iq":
        raise InputError("--audio-dir needs --kind iq (feature datasets have no waveforms)")
    if network is not None and network_path is not None:
        raise InputError("give a receiver network or a network file, not both")
    if network is None:
        network = ReceiverNetwork.load(network_path) if network_path else default_network()
    if scenario is None and network_path is not None:
        from heimdall.pipelines.scenario import scenario_path_beside
        from heimdall.sim.scenario import load_scenario

        # `network from-measurements` writes the scenario fitted to the network beside it:
        # the network's own physics, not the default WebSDR scenario's.
        beside = scenario_path_beside(network_path)
        if beside.is_file():
            scenario = load_scenario(beside)
            log.info("simulating with the scenario fitted beside the network: %s", beside)
    clean_stale_work(ctx)
    start = time.perf_counter()
    make = generate_dataset
    options: dict[str, Any] = {}
    if kind == "iq":
        from heimdall.data.iq import IQConfig, generate_iq_dataset
        from heimdall.sim.signals import WaveformConfig

        make = generate_iq_dataset  # type: ignore[assignment]
        if audio_dir is not None:
            options["iq_config"] = IQConfig(waveform=WaveformConfig(audio_dir=str(Path(audio_dir).resolve())))
    plan = SimulationPlan(network, scenario or ScenarioConfig(), num_samples, seed, workers, split_mode)
    manifest = make(
        ctx.store,
        ctx.staging_dir,
        name,
        plan,
        description=description,
        progress=(lambda done, total: progress("generate", done, total, name)) if progress else None,
        resume=resume,
        **options,
    )
    elapsed = time.perf_counter() - start
    register_dataset(ctx.db, DatasetReader(ctx.store, name), ctx.store.uri(dataset_prefix(name)))
    return GenerateResult(
        dataset=manifest.name,
        samples=manifest.num_samples,
        samples_per_s=manifest.num_samples / max(elapsed, 1e-9),
        acceptance_rate=float(manifest.acceptance_rate or 1.0),
        splits=manifest.split_counts,
    )


def datasets_list(ctx: Context) -> list[dict[str, Any]]:
    """A summary row per catalogued dataset."""
    return [
        {
            "name": row.name,
            "kind": row.kind,
            "samples": row.num_samples,
            "network": row.network_name,
            "split_mode": row.split_mode,
            "splits": row.split_counts,
            "created_at": row.created_at.isoformat(),
        }
        for row in list_datasets(ctx.db)
    ]


def dataset_show(ctx: Context, name: str) -> dict[str, Any]:
    """A dataset's manifest plus where it is stored."""
    reader = DatasetReader(ctx.store, name)
    info = reader.describe()
    info["storage_uri"] = ctx.store.uri(dataset_prefix(name))
    info["network"] = reader.network.to_dict()
    try:
        info["database_row_id"] = dataset_row(ctx.db, name).id
    except NotFoundError:
        info["database_row_id"] = None
    return info


def dataset_export(
    ctx: Context, name: str, split: str, output: Path, file_format: str = "long", limit: int = 100
) -> dict[str, Any]:
    """Write a split in the long measurement format (or as SigMF recordings), truth included."""
    reader = DatasetReader(ctx.store, name)
    if file_format == "sigmf":
        from heimdall.data.recordings import export_sigmf

        counts = export_sigmf(reader, Path(output), split, limit)
        return {"dataset": name, "split": split, "format": "sigmf", "directory": str(output), **counts}
    if file_format != "long":
        raise InputError(f"--format must be long or sigmf, got {file_format!r}")
    samples = reader.load(split)
    rows = write_measurements(output, samples, reader.manifest.reference, reader.manifest.station_ids)
    return {"dataset": name, "split": split, "samples": len(samples), "rows": rows, "file": str(output)}


@dataclass(frozen=True)
class ImportResult:
    dataset: str
    samples: int
    rows_read: int
    rows_dropped: dict[str, int]
    splits: dict[str, int]
    #: Readings below -174 dBm kept as "listened, heard nothing" ("not received" markers).
    readings_not_received: int = 0


def import_measurements(
    ctx: Context,
    path: Path,
    name: str,
    file_format: Literal["long", "powder-json"] = "long",
    split_mode: Literal["random", "grid", "time"] = "grid",
    seed: int = 0,
    frequency_hz: float | None = None,
    receivers: Path | None = None,
) -> ImportResult:
    """Import real measurements (long CSV/Parquet or POWDER JSON) as a `measured` dataset.

    Invalid rows are dropped and counted (logged as one warning); missing columns, an
    unreadable file or nothing left are errors. `frequency_hz` (Hz) is the carrier when the
    file has no `frequency_hz` column (it overrides the file's when given). With
    `receivers` (their positions), `path` is a wide table: one row per transmission, one
    column of dBm per receiver (`data.wide_format`).
    """
    if frequency_hz is not None and not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise InputError(f"--frequency-hz must be a positive number of Hz, got {frequency_hz}")
    from heimdall.data.importers import read_measurements_lenient
    from heimdall.data.measured import write_measured_dataset
    from heimdall.data.powder import read_powder_json

    if file_format not in ("long", "powder-json"):
        raise InputError(f"--format must be long or powder-json, got {file_format!r}")
    if receivers is not None and file_format != "long":
        raise InputError("--receivers reads a wide CSV/Parquet table; a POWDER JSON file lists its receivers itself")
    imported = (read_powder_json(Path(path)) if file_format == "powder-json"
                else read_measurements_lenient(Path(path), receivers))
    # The importer has already logged one warning with the drop counts.
    dropped = {k: v for k, v in imported.report.rows_dropped.items() if v}
    clean_stale_work(ctx)
    manifest = write_measured_dataset(ctx.store, ctx.staging_dir, name, imported, split_mode, seed, frequency_hz)
    register_dataset(ctx.db, DatasetReader(ctx.store, name), ctx.store.uri(dataset_prefix(name)))
    return ImportResult(
        dataset=manifest.name,
        samples=manifest.num_samples,
        rows_read=imported.report.rows_read,
        rows_dropped=dropped,
        splits=manifest.split_counts,
        readings_not_received=imported.report.readings_not_received,
    )


def network_from_dataset(ctx: Context, name: str, output: Path) -> dict[str, Any]:
    """Write the receiver network of a (measured) dataset, for `generate --network`, and
    beside it (`NET.scenario.yaml`) the scenario fitted to its training split."""
    from heimdall.pipelines.scenario import fit_scenario, scenario_path_beside

    reader = DatasetReader(ctx.store, name)
    path = reader.network.save(Path(output))
    result: dict[str, Any] = {"dataset": name, "network": str(path), "receivers": len(reader.network.receivers),
                              "frequency_hz": reader.network.frequency_hz, "scenario": None}
    if reader.manifest.kind == "measured":
        try:
            fitted = fit_scenario(ctx, name, scenario_path_beside(path))
        except DataError as exc:
            result["scenario_not_fitted"] = str(exc)
        else:
            result["scenario"] = fitted["scenario"]
    return result
