"""Training from shards without loading a dataset whole.

`ShardStream` yields ready-made batches: each epoch it shuffles the shard order and the
samples inside each shard with a generator seeded by (seed, epoch), holding one shard in
memory at a time. The epoch is the number of times the stream has been iterated in this
process, which is also right inside persistent DataLoader workers (each keeps its own copy).

Under DDP every rank must run the same number of optimizer steps (each step is a collective
all-reduce; a rank with one batch more waits forever). So every rank walks the same shards
in the same order and takes its own strided share of each shuffled shard, cut to
`len(shard) // world_size` samples: the ranks see disjoint samples in equally many batches.
DataLoader workers of one rank split that rank's shards between them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from heimdall.data.batches import to_batch
from heimdall.data.shards import DatasetReader

__all__ = ["ShardStream"]


class ShardStream(IterableDataset):
    """Batches of one split, streamed shard by shard (this rank's share under DDP)."""

    def __init__(self, reader: DatasetReader, split: str, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.reader = reader
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._iterations = 0
        self.shard_files = [s.file for s in reader.manifest.shards if s.split_counts.get(split, 0) > 0]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        workers = worker.num_workers if worker else 1
        worker_id = worker.id if worker else 0
        epoch = self._iterations
        self._iterations += 1
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.shard_files))
        for index in order[worker_id::workers]:
            samples = self.reader.load_shard(self.shard_files[index], self.split)
            permutation = np.random.default_rng([self.seed, epoch, int(index)]).permutation(len(samples))
            share = len(samples) // self.world_size
            mine = permutation[self.rank :: self.world_size][:share]
            tensors = to_batch(samples.select(mine))
            for start in range(0, share, self.batch_size):
                yield {k: v[start : start + self.batch_size] for k, v in tensors.items()}
