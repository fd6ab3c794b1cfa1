"""Training from shards without loading a dataset whole.

`ShardStream` yields ready-made batches: each epoch it shuffles the shard order and the
samples inside each shard with a generator seeded by (seed, epoch), holding one shard in
memory at a time. Under DDP each rank (and each DataLoader worker) reads its own shards.
The epoch is the number of times the stream has been iterated in this process, which is
also right inside persistent DataLoader workers (each keeps its own copy).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from heimdall.data.datamodule import to_batch
from heimdall.data.shards import DatasetReader

__all__ = ["ShardStream"]


class ShardStream(IterableDataset):
    """Batches of one split, streamed shard by shard."""

    def __init__(self, reader: DatasetReader, split: str, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
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
        mine = order[self.rank * workers + worker_id :: self.world_size * workers]
        for index in mine:
            samples = self.reader.load_shard(self.shard_files[index], self.split)
            permutation = np.random.default_rng([self.seed, epoch, int(index)]).permutation(len(samples))
            tensors = to_batch(samples.select(permutation))
            for start in range(0, len(samples), self.batch_size):
                yield {k: v[start : start + self.batch_size] for k, v in tensors.items()}
