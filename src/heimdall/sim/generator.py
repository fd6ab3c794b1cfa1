"""Batched generation: fixed-size blocks, each with its own seeded generator.

Block b always covers samples [b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE) and draws from
`numpy.random.default_rng([seed, b])`, so a seed gives the same bytes whatever the number of
workers or how the caller batches the output.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from heimdall.errors import DataError, InputError
from heimdall.processes import spawn_pool
from heimdall.sim.scenario import (
    NetworkGeometry,
    ScenarioConfig,
    SimulatedBlock,
    simulate_block,
)

__all__ = ["BLOCK_SIZE", "block_rng", "generate_blocks", "num_blocks"]

BLOCK_SIZE = 1024


def block_rng(seed: int, block_index: int) -> np.random.Generator:
    """The generator of block `block_index` of a dataset drawn with `seed`."""
    return np.random.default_rng([seed, block_index])


def num_blocks(num_samples: int) -> int:
    """How many blocks `num_samples` samples take."""
    return (num_samples + BLOCK_SIZE - 1) // BLOCK_SIZE


def _block_size(num_samples: int, block_index: int) -> int:
    return min(BLOCK_SIZE, num_samples - block_index * BLOCK_SIZE)


def _run_block(
    seed: int, block_index: int, size: int, geometry: NetworkGeometry, config: ScenarioConfig
) -> SimulatedBlock:
    return simulate_block(block_rng(seed, block_index), size, geometry, config)


def generate_blocks(
    geometry: NetworkGeometry,
    config: ScenarioConfig,
    num_samples: int,
    seed: int,
    workers: int = 1,
    first_block: int = 0,
) -> Iterator[tuple[int, SimulatedBlock]]:
    """Yield `(first_sample_index, block)` in order from block `first_block` (a resumed run);
    at most ~2 blocks per worker in flight."""
    if num_samples <= 0:
        raise InputError(f"--samples must be positive, got {num_samples}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    total = num_blocks(num_samples)
    if workers == 1 or total == 1:
        for b in range(first_block, total):
            yield b * BLOCK_SIZE, _run_block(seed, b, _block_size(num_samples, b), geometry, config)
        return
    with spawn_pool(workers) as pool:
        pending: deque[tuple[int, Future[SimulatedBlock]]] = deque()
        next_block = first_block
        while next_block < total or pending:
            while next_block < total and len(pending) < 2 * workers:
                size = _block_size(num_samples, next_block)
                pending.append(
                    (next_block, pool.submit(_run_block, seed, next_block, size, geometry, config))
                )
                next_block += 1
            b, future = pending.popleft()
            try:
                simulated = future.result()
            except BrokenProcessPool as exc:
                raise DataError(f"a generation worker process died ({exc}); rerun the same command with --resume") from exc
            yield b * BLOCK_SIZE, simulated
