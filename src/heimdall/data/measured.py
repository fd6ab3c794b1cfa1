"""Measured datasets: a receiver network from the measurements, samples, splits, shards.

The pieces between an import (`heimdall.data.importers`) and a published dataset of kind
"measured":

- `network_from_measurements`: one `Receiver` per receiver id at its median position;
- `measured_samples`: the padded `SampleArrays` (per-sample receiver positions, so mobile
  receivers are where they were) with one timestamp per sample;
- `assign_measured_splits`: random, spatial-grid or chronological splits;
- `write_measured_dataset`: all of the above, written through `DatasetWriter`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from heimdall.data.importers import ImportedMeasurements
from heimdall.data.layout import SPLIT_CODES, SampleArrays
from heimdall.data.measurement_files import timestamp_seconds
from heimdall.data.measurements import MeasurementTable
from heimdall.data.shards import DatasetManifest, DatasetWriter
from heimdall.data.splits import SplitFractions, assign_splits, check_fractions
from heimdall.errors import DataError, InputError
from heimdall.geo import ReferencePoint, enu_to_geodetic, geodetic_to_enu, haversine_m
from heimdall.network import MIN_RECEIVER_SEPARATION_M, Receiver, ReceiverNetwork
from heimdall.storage.artifacts import ArtifactStore

__all__ = [
    "CARRIER_RANGE_HZ",
    "MeasuredSplitMode",
    "MOBILE_SPREAD_M",
    "MOBILE_SUFFIX",
    "COLLISION_NUDGE_M",
    "MeasuredSamples",
    "network_from_measurements",
    "measured_samples",
    "default_cell_size_m",
    "assign_measured_splits",
    "write_measured_dataset",
]

log = logging.getLogger(__name__)

MeasuredSplitMode = Literal["random", "grid", "time"]

#: A receiver whose positions stray further than this (metres) from their median is mobile.
MOBILE_SPREAD_M = 25.0
#: The end of a mobile receiver's name in the network `network_from_measurements` writes.
MOBILE_SUFFIX = "(mobile)"
#: Step (metres, eastward) by which a receiver colliding with another is moved in the network.
COLLISION_NUDGE_M = 2.0 * MIN_RECEIVER_SEPARATION_M
#: Collision warnings logged one by one; beyond this, one line with the count.
_NUDGE_WARNINGS = 10
#: Samples per shard file.
_SHARD_SAMPLES = 16_384
#: Carriers (Hz) an import accepts: HF to millimetre waves; outside it a unit is wrong.
CARRIER_RANGE_HZ = (1.0e6, 1.0e11)


@dataclass(frozen=True)
class MeasuredSamples:
    """Samples of a measured campaign, with what `SampleArrays` has no field for.

    `sample_names[i]` is the file's sample id of `samples.sample_id == i`; `timestamps` is
    [N] `datetime64[s]`, the earliest timestamp of each sample's rows (NaT when unknown).
    """

    samples: SampleArrays
    sample_names: tuple[str, ...]
    timestamps: np.ndarray

    def with_splits(
        self,
        mode: MeasuredSplitMode,
        seed: int,
        fractions: SplitFractions = (0.7, 0.15, 0.15),
        cell_size_m: float | None = None,
    ) -> MeasuredSamples:
        """A copy whose `samples.split` is set by `assign_measured_splits`."""
        codes = assign_measured_splits(self.samples, mode, seed, fractions, cell_size_m, self.timestamps)
        return replace(self, samples=replace(self.samples, split=codes))


class _PlacedPositions:
    """Points (ENU metres) in a hash grid of cells `radius_m` wide: a collision test looks at
    the 27 cells around a point, so placing n receivers costs O(n), not O(n^2)."""

    def __init__(self, radius_m: float) -> None:
        self.radius_m = radius_m
        self._cells: dict[tuple[int, int, int], list[np.ndarray]] = {}

    def _cell(self, position: np.ndarray) -> tuple[int, int, int]:
        return tuple(int(v) for v in np.floor(position / self.radius_m))  # type: ignore[return-value]

    def collides(self, position: np.ndarray) -> bool:
        """Whether a placed point lies closer than `radius_m` to `position`."""
        cx, cy, cz = self._cell(position)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    for other in self._cells.get((cx + dx, cy + dy, cz + dz), ()):
                        if np.linalg.norm(position - other) < self.radius_m:
                            return True
        return False

    def add(self, position: np.ndarray) -> None:
        self._cells.setdefault(self._cell(position), []).append(position.copy())


def network_from_measurements(
    table: MeasurementTable, name: str, frequency_hz: float, bandwidth_hz: float = 12_500.0
) -> ReceiverNetwork:
    """One `Receiver` per receiver id, at the median of its reported positions (degrees, m).

    Receivers are in sorted id order. A receiver whose positions spread further than
    `MOBILE_SPREAD_M` from the median (e.g. POWDER's "bus-*") is mobile: its name says
    "(mobile)" and its network position is only nominal; samples keep each row's position.

    Two ids whose median positions lie within `MIN_RECEIVER_SEPARATION_M` are kept as two
    stations (each device has its own calibration offset, so merging them would mix two
    offsets under one station index); the later id in sorted order is moved east in steps of
    `COLLISION_NUDGE_M` until it is clear. Only the network file sees the nudge (metres,
    far below what RSS localisation resolves); samples use the measured positions.
    """
    frame = pd.DataFrame(
        {"id": table.receiver_id, "lat": table.rx_lat_deg, "lon": table.rx_lon_deg, "alt": table.rx_alt_m}
    )
    if frame.empty:
        raise DataError("no measurements to build a receiver network from")
    median = frame.groupby("id", sort=True)[["lat", "lon", "alt"]].median()
    spread_m = (
        frame.join(median, on="id", rsuffix="_median")
        .assign(d=lambda f: haversine_m(f.lat, f.lon, f.lat_median, f.lon_median))
        .groupby("id", sort=True)["d"].max()
    )
    reference = ReferencePoint(float(median.lat.mean()), float(median.lon.mean()), 0.0)
    east, north, up = geodetic_to_enu(median.lat.to_numpy(), median.lon.to_numpy(), median.alt.to_numpy(), reference)
    placed = _PlacedPositions(MIN_RECEIVER_SEPARATION_M)
    # Where the last receiver nudged away from each measured position ended up: the next one
    # at that position starts there, since every step before it is already taken.
    last_at: dict[tuple[float, float, float], np.ndarray] = {}
    receivers: list[Receiver] = []
    moved = 0
    for i, receiver_id in enumerate(median.index):
        original = np.array([east[i], north[i], up[i]])
        key = (float(east[i]), float(north[i]), float(up[i]))
        position = last_at.get(key, original).copy()
        while placed.collides(position):
            position[0] += COLLISION_NUDGE_M
        placed.add(position)
        last_at[key] = position
        lat, lon, alt = float(median.lat.iloc[i]), float(median.lon.iloc[i]), float(median.alt.iloc[i])
        if position[0] != original[0]:
            lat, lon, alt = (float(v) for v in enu_to_geodetic(*position, reference))
            moved += 1
            if moved <= _NUDGE_WARNINGS:
                log.warning(
                    "receiver %r collides with another station; moved %.1f m east in network %r",
                    receiver_id, position[0] - original[0], name,
                )
        mobile = bool(spread_m[receiver_id] > MOBILE_SPREAD_M)
        receivers.append(
            Receiver(
                receiver_id=str(receiver_id),
                name=f"{receiver_id} {MOBILE_SUFFIX}" if mobile else str(receiver_id),
                lat_deg=lat,
                lon_deg=lon,
                alt_m=alt,
            )
        )
    if moved > _NUDGE_WARNINGS:
        log.warning("%d receivers in all moved east to clear another station in network %r", moved, name)
    return ReceiverNetwork(name=name, receivers=tuple(receivers), frequency_hz=frequency_hz, bandwidth_hz=bandwidth_hz)


def measured_samples(
    table: MeasurementTable,
    timestamps: np.ndarray | None,
    network: ReceiverNetwork,
    reference: ReferencePoint,
) -> MeasuredSamples:
    """Pad `table` into samples about `reference`, `rx_id` indexing `network.ids`.

    `timestamps` is per table row ([M] datetime64, NaT when unknown; None: all unknown).
    Samples are in order of first appearance in the table; `split` is left at "test" until
    `assign_measured_splits` / `MeasuredSamples.with_splits` sets it.
    """
    samples, names = table.to_samples(reference, list(network.ids))
    m = len(table.sample_id)
    if timestamps is None:
        timestamps = np.full(m, np.datetime64("NaT", "s"))
    timestamps = np.asarray(timestamps).astype("datetime64[s]")
    if timestamps.shape != (m,):
        raise InputError(f"timestamps have shape {timestamps.shape}, expected one per table row ({m},)")
    earliest = pd.Series(timestamps).groupby(pd.Series(table.sample_id).astype(str).to_numpy(), sort=False).min()
    per_sample = earliest.reindex(names).to_numpy().astype("datetime64[s]")
    if not np.isnat(per_sample).all():
        # Kept in the dataset so training can hold out later transmissions (time-ordered
        # calibration); NaT becomes NaN.
        samples = replace(samples, timestamp_s=timestamp_seconds(per_sample))
    return MeasuredSamples(samples=samples, sample_names=tuple(names), timestamps=per_sample)


def default_cell_size_m(tx_position_m: np.ndarray) -> float:
    """Grid-split cell side (metres): a tenth of the transmitters' larger extent, at least 1 m.

    About 180 m for the POWDER April campaign (transmitters over ~1.8 km x 1.5 km): cells
    wide enough that a test cell's neighbours in training are not a few metres away.
    """
    finite = np.all(np.isfinite(tx_position_m), axis=1)
    if not finite.any():
        raise DataError("grid splits need transmitter positions; none is known")
    tx = tx_position_m[finite]
    extent_m = float(np.max(tx.max(axis=0) - tx.min(axis=0)))
    return max(extent_m / 10.0, 1.0)


def assign_measured_splits(
    samples: SampleArrays,
    mode: MeasuredSplitMode,
    seed: int,
    fractions: SplitFractions = (0.7, 0.15, 0.15),
    cell_size_m: float | None = None,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """Split code per sample ([N] int8: 0 train, 1 val, 2 test).

    - "random": a hash of (seed, sample_id), as for synthetic data (`measured_samples`
      numbers samples in file order, so the split is fixed for a given file and seed).
    - "grid": square cells of `cell_size_m` (default `default_cell_size_m`) over the
      transmitters' bounding box; every sample of a cell gets the cell's split, so the
      fractions hold for cells, not exactly for samples.
    - "time": chronological by `timestamps` ([N], one per sample, required): the first
      `fractions[0]` of samples train, the next `fractions[1]` val, the rest test. Samples
      sharing a timestamp share a split (the earlier one), so every train timestamp is
      strictly before every val and test timestamp. `seed` is not used.
    """
    check_fractions(fractions)
    n = len(samples)
    if mode == "random":
        return assign_splits(samples.sample_id, samples.tx_position_m, "random", seed, fractions)
    if mode == "grid":
        tx = samples.tx_position_m.astype(np.float64)
        if not np.all(np.isfinite(tx)):
            raise DataError("grid splits need every transmitter position; some are unknown")
        size_m = default_cell_size_m(tx) if cell_size_m is None else float(cell_size_m)
        bounds_m = (float(tx[:, 0].min()), float(tx[:, 0].max()), float(tx[:, 1].min()), float(tx[:, 1].max()))
        return assign_splits(samples.sample_id, tx, "grid", seed, fractions, bounds_m=bounds_m, cell_size_m=size_m)
    if mode != "time":
        raise InputError(f"unknown split mode {mode!r}; expected random, grid or time")
    if timestamps is None:
        raise InputError("time splits need one timestamp per sample")
    times = np.asarray(timestamps).astype("datetime64[s]")
    if times.shape != (n,):
        raise InputError(f"timestamps have shape {times.shape}, expected ({n},)")
    if np.isnat(times).any():
        raise DataError(f"time split: {int(np.isnat(times).sum())} of {n} samples have no timestamp")
    order = np.argsort(times, kind="stable")
    rank_codes = np.full(n, SPLIT_CODES["test"], dtype=np.int8)
    n_train = int(round(fractions[0] * n))
    n_val = int(round((fractions[0] + fractions[1]) * n))
    rank_codes[:n_val] = SPLIT_CODES["val"]
    rank_codes[:n_train] = SPLIT_CODES["train"]
    # Ties across a boundary: each timestamp takes the code of its earliest-ranked sample.
    sorted_times = times[order]
    first_of_time = np.searchsorted(sorted_times, sorted_times, side="left")
    codes = np.empty(n, dtype=np.int8)
    codes[order] = rank_codes[first_of_time]
    return codes


def write_measured_dataset(
    store: ArtifactStore,
    staging_root: Path,
    name: str,
    imported: ImportedMeasurements,
    split_mode: MeasuredSplitMode,
    seed: int,
    frequency_hz: float | None = None,
    fractions: SplitFractions = (0.7, 0.15, 0.15),
) -> DatasetManifest:
    """Publish `imported` as dataset `name` (kind "measured"); return its manifest.

    `frequency_hz` defaults to the import's (POWDER: 462.7 MHz); one of them must be known.
    The network is `network_from_measurements` and the reference point its
    `reference_point()`. The description records the import's drop counts.
    """
    frequency_hz = imported.frequency_hz if frequency_hz is None else frequency_hz
    if frequency_hz is None:
        raise InputError(
            f"dataset {name!r}: the file has no frequency_hz column; add one, or give the carrier "
            "with `heimdall import-measurements --frequency-hz HZ`"
        )
    low, high = CARRIER_RANGE_HZ
    if not low <= frequency_hz <= high:
        # 868.1 in a frequency_hz column is a carrier written in MHz.
        in_mhz = low <= frequency_hz * 1e6 <= high
        unit = f"; {frequency_hz:g} reads as MHz: write {frequency_hz * 1e6:.0f}" if in_mhz else ""
        raise InputError(
            f"dataset {name!r}: frequency_hz {frequency_hz:g} Hz is no radio carrier (1 MHz to 100 GHz){unit}"
        )
    network = network_from_measurements(imported.table, name, frequency_hz)
    reference = network.reference_point()
    measured = measured_samples(imported.table, imported.timestamps, network, reference)
    measured = measured.with_splits(split_mode, seed, fractions)
    samples = measured.samples
    with DatasetWriter(store, name, staging_root) as writer:
        for start in range(0, len(samples), _SHARD_SAMPLES):
            writer.write_shard(samples.select(np.arange(start, min(start + _SHARD_SAMPLES, len(samples)))))
        manifest = writer.publish(
            network,
            reference,
            kind="measured",
            seed=seed,
            split_mode=split_mode,
            scenario=None,
            description=f"measured import: {imported.report.summary()}",
        )
    log.info("published measured dataset %r: %d samples, splits %s", name, manifest.num_samples, manifest.split_counts)
    return manifest
