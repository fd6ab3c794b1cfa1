"""Synthetic feature-level datasets: simulate blocks, split, write shards, publish."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.data.shards import DatasetManifest, DatasetWriter, plan_digest
from heimdall.data.splits import SplitFractions, SplitMode, assign_splits
from heimdall.geo import ReferencePoint, local_to_ground
from heimdall.network import ReceiverNetwork
from heimdall.sim import propagation
from heimdall.sim.dem import DemTerrain, load_elevation_grid
from heimdall.sim.generator import generate_blocks
from heimdall.sim.scenario import NetworkGeometry, ScenarioConfig, SimulatedBlock
from heimdall.sim.terrain import StaticMap, TerrainField
from heimdall.storage.artifacts import ArtifactStore

__all__ = [
    "network_geometry",
    "effective_sigma_db",
    "generate_dataset",
    "to_samples",
    "SimulationPlan",
    "write_simulated",
    "SHARD_BLOCKS",
]

log = logging.getLogger(__name__)

#: Blocks per shard file (16 x 1024 = 16,384 samples, a few MB).
SHARD_BLOCKS = 16

def network_geometry(network: ReceiverNetwork, reference: ReferencePoint, config: ScenarioConfig) -> NetworkGeometry:
    """The simulator's view of `network` about `reference` (terrain of `config.terrain_seed`,
    and the DEM of `config.dem_dir` when set)."""
    bounds_m = network.bounds_enu_m(reference, config.area_margin_m)
    dem = None
    if config.dem_dir is not None:
        grid = load_elevation_grid(Path(config.dem_dir), reference, bounds_m)
        dem = DemTerrain.build(grid, network.frequency_hz, config.rx_height_m, config.terrain_profile_points)
    fitted = config.rx_offset_db or config.rx_detection_threshold_db or config.rx_offline_probability
    return NetworkGeometry(
        rx_position_m=network.positions_enu_m(reference),
        rx_gain_dbi=np.array([r.antenna_gain_dbi for r in network.receivers]),
        noise_figure_db=np.array([r.noise_figure_db for r in network.receivers]),
        frequency_hz=network.frequency_hz,
        bandwidth_hz=network.bandwidth_hz,
        bounds_m=network.bounds_enu_m(reference, config.area_margin_m),
        terrain=TerrainField.draw(
            config.terrain_seed, len(network.receivers), config.terrain_sigma_db, config.terrain_correlation_m
        ),
        receivers=config.per_receiver(network.ids) if fitted else None,
        dem=dem,
        static_map=None if config.static_field_file is None else StaticMap.load(Path(config.static_field_file), network.ids),
    )

def effective_sigma_db(config: ScenarioConfig) -> float:
    """Standard deviation (dB) of all per-link RSS errors together.

    Terrain and per-transmission shadowing, station calibration and (looks-averaged) fading
    are independent, so their
    variances add; the fading part is estimated by a fixed-seed Monte Carlo because the
    dB-domain variance of an averaged Rician power has no short closed form.
    """
    fading = propagation.fading_gain_db(
        np.random.default_rng(0), config.fading_k_factor_db, 200_000, config.fading_looks
    )
    # A randomised sigma, uniform on [a, b], has mean square (a^2 + ab + b^2) / 3.
    a = config.shadowing_sigma_db
    b = config.shadowing_sigma_max_db if config.shadowing_sigma_max_db is not None else a
    variance = (
        config.terrain_sigma_db**2
        + (a * a + a * b + b * b) / 3.0
        + config.calibration_sigma_db**2
        + float(np.var(fading))
    )
    return float(np.sqrt(variance))

def to_samples(
    first_id: int,
    block: SimulatedBlock,
    geometry: NetworkGeometry,
    reference: ReferencePoint,
    split_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> SampleArrays:
    n = block.tx_position_m.shape[0]
    r = geometry.rx_position_m.shape[0]
    sample_id = np.arange(first_id, first_id + n, dtype=np.int64)
    tx = block.tx_position_m
    lat, lon = local_to_ground(tx[:, 0], tx[:, 1], reference)
    return SampleArrays(
        sample_id=sample_id,
        rx_position_m=np.broadcast_to(geometry.rx_position_m.astype(np.float32), (n, r, 3)).copy(),
        rx_id=np.broadcast_to(np.arange(r, dtype=np.int64), (n, r)).copy(),
        rss_dbm=block.rss_dbm.astype(np.float32),
        snr_db=block.snr_db.astype(np.float32),
        heard=block.heard,
        present=block.present,
        tx_position_m=tx.astype(np.float32),
        tx_lat_deg=np.asarray(lat, dtype=np.float64),
        tx_lon_deg=np.asarray(lon, dtype=np.float64),
        tx_power_dbm=block.tx_power_dbm.astype(np.float32),
        split=split_of(sample_id, tx),
        line_of_sight=block.line_of_sight,
        obstructions=block.obstructions,
        diffraction_loss_db=block.diffraction_loss_db,
    )

@dataclass(frozen=True)
class SimulationPlan:
    """What both dataset kinds simulate: network, scenario, size, seed and splits."""

    network: ReceiverNetwork
    config: ScenarioConfig
    num_samples: int
    seed: int
    workers: int = 1
    split_mode: SplitMode = "random"
    fractions: SplitFractions = (0.8, 0.1, 0.1)

    def describe(self, kind: str, blocks_per_shard: int) -> dict[str, Any]:
        """What fixes a dataset's bytes (not `workers`), to tell whether a staged run can resume."""
        physics = {"network": self.network.to_dict(), "scenario": self.config.model_dump()}
        return {
            "kind": kind,
            "samples": self.num_samples,
            "seed": self.seed,
            "split_mode": self.split_mode,
            "fractions": list(self.fractions),
            "blocks_per_shard": blocks_per_shard,
            "network_scenario_sha256": plan_digest(physics),
        }


SimulatedItem = tuple[int, SimulatedBlock, SampleArrays]
#: Maps the stream of (first sample id, block, feature-level samples) to the samples to write,
#: in the same order; a stream (not one call per block) lets a transform keep work in flight.
BlockTransform = Callable[[Iterator[SimulatedItem]], Iterator[SimulatedItem]]


def write_simulated(
    writer: DatasetWriter,
    plan: SimulationPlan,
    blocks_per_shard: int,
    transform: BlockTransform | None = None,
    progress: Callable[[int, int], None] | None = None,
    shard_stats: Callable[[], dict[str, Any]] | None = None,
) -> float:
    """Simulate `plan` block by block into `writer`'s shards; return the acceptance rate.

    `transform` may replace the feature-level samples of each block (the IQ kind does: it
    yields each item with its samples replaced); shards hold `blocks_per_shard` blocks, one shard in memory at a time.
    Shards the writer already holds (a resumed run) are skipped: every block has its own
    seeded generator, so the shards simulated now are the bytes an uninterrupted run writes.
    `shard_stats()` returns JSON-ready statistics of the blocks since its last call, kept
    with each shard so a resumed run can still report them for the whole dataset.
    """
    reference = plan.network.reference_point()
    geometry = network_geometry(plan.network, reference, plan.config)

    def split_of(sample_id: np.ndarray, tx: np.ndarray) -> np.ndarray:
        return assign_splits(sample_id, tx, plan.split_mode, plan.seed, plan.fractions, bounds_m=geometry.bounds_m)

    counts = {"draws": 0, "accepted": 0}
    pending: list[SampleArrays] = []

    def flush() -> None:
        writer.write_shard(SampleArrays.concatenate(pending), {**counts, **(shard_stats() if shard_stats else {})})
        pending.clear()
        counts.update(draws=0, accepted=0)

    done = sum(s.num_samples for s in writer.shards)
    first_block = len(writer.shards) * blocks_per_shard
    blocks = generate_blocks(geometry, plan.config, plan.num_samples, plan.seed, plan.workers, first_block=first_block)
    items = ((first_id, block, to_samples(first_id, block, geometry, reference, split_of)) for first_id, block in blocks)
    for _, block, samples in transform(items) if transform else items:
        counts["draws"] += block.draws
        counts["accepted"] += block.accepted
        pending.append(samples)
        done += len(samples)
        if len(pending) == blocks_per_shard:
            flush()
        if progress is not None:
            progress(done, plan.num_samples)
    if pending:
        flush()
    draws = sum(s["draws"] for s in writer.shard_stats)
    return sum(s["accepted"] for s in writer.shard_stats) / draws


def generate_dataset(
    store: ArtifactStore,
    staging_root: Path,
    name: str,
    plan: SimulationPlan,
    description: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> DatasetManifest:
    """Simulate `plan` (its network, scenario, size, seed and splits) and publish it as dataset `name`.

    The run stages under `staging_root/name`; `resume` continues one that was interrupted.
    """
    network, config = plan.network, plan.config
    with DatasetWriter(store, name, staging_root, plan.describe("features", SHARD_BLOCKS), resume) as writer:
        acceptance = write_simulated(writer, plan, SHARD_BLOCKS, progress=progress)
        log.info("generated %d samples, acceptance rate %.3f", plan.num_samples, acceptance)
        return writer.publish(
            network,
            network.reference_point(),
            kind="features",
            seed=plan.seed,
            split_mode=plan.split_mode,
            scenario=config.model_dump(),
            acceptance_rate=acceptance,
            effective_sigma_db=effective_sigma_db(config),
            description=description,
        )
