"""Torch access to samples: `HeimdallDataset`, the LightningDataModule, normalisation fit."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from heimdall.data.batches import to_batch
from heimdall.data.layout import SPLIT_CODES, SampleArrays
from heimdall.data.shards import DatasetReader
from heimdall.data.splits import hash_uniform
from heimdall.data.streaming import ShardStream
from heimdall.errors import DataError, InputError
from heimdall.models.localization_net import NormalizationStats

__all__ = [
    "HeimdallDataset", "HeimdallDataModule", "fit_normalization", "to_batch", "resplit", "STREAM_THRESHOLD",
    "NORMALIZATION_SAMPLES",
]


def fit_normalization(train: SampleArrays) -> NormalizationStats:
    """Statistics of the training split only (positions in m, powers in dB)."""
    if len(train) == 0:
        raise DataError("cannot fit normalisation on an empty training split")
    tx = train.tx_position_m.astype(np.float64)
    if not np.all(np.isfinite(tx)):
        raise DataError("training samples need a known transmitter position")
    heard_rss = train.rss_dbm[train.heard].astype(np.float64)
    if heard_rss.size == 0:
        raise DataError("no receiver heard anything in the training split")
    up = train.rx_position_m[..., 2][train.present].astype(np.float64)
    spectrogram_center, spectrogram_scale = 0.0, 1.0
    if train.spectrogram is not None:
        values = train.spectrogram[:2000][train.present[:2000]].astype(np.float32)
        spectrogram_center, spectrogram_scale = float(values.mean()), float(max(values.std(), 1e-3))
    center = tx.mean(axis=0)
    scale = float(max(tx.std(axis=0).max(), 1.0))
    return NormalizationStats(
        position_center_m=(float(center[0]), float(center[1])),
        position_scale_m=scale,
        up_center_m=float(up.mean()),
        up_scale_m=float(max(up.std(), 1.0)),
        rss_center_dbm=float(heard_rss.mean()),
        rss_scale_db=float(max(heard_rss.std(), 1.0)),
        spectrogram_center_db=spectrogram_center,
        spectrogram_scale_db=spectrogram_scale,
    )


class HeimdallDataset(Dataset):
    """In-memory samples served as whole batches (`__getitems__`), no per-item Python work."""

    def __init__(self, samples: SampleArrays) -> None:
        if len(samples) == 0:
            raise DataError("dataset split is empty")
        self.tensors = to_batch(samples)
        self._len = len(samples)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


def _identity(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


#: Training splits larger than this are streamed from shards instead of loaded whole.
STREAM_THRESHOLD = 500_000
#: Samples used to fit normalisation statistics when streaming.
NORMALIZATION_SAMPLES = 100_000


def resplit(train: SampleArrays, val: SampleArrays, fraction: float, seed: int) -> tuple[SampleArrays, SampleArrays]:
    """Re-draw the validation share of train+val (the test split is never touched)."""
    pool = SampleArrays.concatenate([train, val])
    is_val = hash_uniform(seed, pool.sample_id, salt=3) < fraction
    return pool.select(~is_val), pool.select(is_val)


class HeimdallDataModule(L.LightningDataModule):
    """Train/val loaders of one dataset; shuffling is seeded for reproducible runs.

    `setup()` loads the splits, re-draws the validation share when `validation_split` is
    given, and decides whether the training split streams from shards (`stream`; None:
    when it holds more than `STREAM_THRESHOLD` samples and is not re-split). When it
    streams, `train_samples` is only the first `NORMALIZATION_SAMPLES` or so, for
    normalisation statistics; the loader then reads every shard, this process's share
    of them under DDP.
    """

    def __init__(
        self,
        reader: DatasetReader | None,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
        validation_split: float | None = None,
        stream: bool | None = None,
    ) -> None:
        super().__init__()
        self.reader = reader
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        #: Page-locked batches copy to a GPU asynchronously; pointless on CPU.
        self.pin_memory = pin_memory
        self.validation_split = validation_split
        self.stream = stream
        self.train_samples: SampleArrays | None = None
        self.val_samples: SampleArrays | None = None

    @classmethod
    def from_samples(
        cls, train: SampleArrays, val: SampleArrays, batch_size: int = 256, seed: int = 0
    ) -> HeimdallDataModule:
        """Loaders over splits already in memory (benchmarks, tests): no reader, no streaming."""
        module = cls(None, batch_size=batch_size, seed=seed, stream=False)
        module.train_samples, module.val_samples = train, val
        return module

    @property
    def streams(self) -> bool:
        """Whether the training split streams from shards instead of being loaded whole."""
        if self.stream is not None or self.reader is None:
            return bool(self.stream)
        return self.reader.manifest.split_counts.get("train", 0) > STREAM_THRESHOLD and self.validation_split is None

    def setup(self, stage: str = "fit") -> None:
        """Load (once) the training and validation splits."""
        if self.train_samples is not None:
            return
        reader = self.reader
        if reader is None:
            raise DataError("a data module without a dataset reader needs its samples (from_samples)")
        if self.streams:
            if self.validation_split is not None:
                raise InputError("--validation-split needs the training split in memory; it cannot stream")
            parts, have = [], 0
            for part in reader.iter_shards("train"):
                parts.append(part)
                have += len(part)
                if have >= NORMALIZATION_SAMPLES:
                    break
            train = SampleArrays.concatenate(parts)
        else:
            train = reader.load("train")
        counts = reader.manifest.split_counts
        val = reader.load("val") if counts.get("val", 0) else train.select(np.zeros(len(train), dtype=bool))
        if self.validation_split is not None:
            train, val = resplit(train, val, self.validation_split, self.seed)
        if len(val) == 0:
            raise DataError(f"dataset {reader.name!r} has no validation samples; pass --validation-split")
        if np.any(train.split == SPLIT_CODES["test"]) or np.any(val.split == SPLIT_CODES["test"]):
            raise DataError("test samples must never reach training")
        self.train_samples, self.val_samples = train, val

    def _loader(self, samples: SampleArrays | None, shuffle: bool) -> DataLoader:
        if samples is None:
            raise DataError("the data module is not set up: call setup() first")
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            HeimdallDataset(samples),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=_identity,
            generator=generator,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        if self.streams:
            # Each DDP process streams its share of the shards; a ShardStream yields whole batches.
            rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
            stream = ShardStream(
                self.reader, "train", self.batch_size, seed=self.seed, rank=rank, world_size=world_size
            )
            return DataLoader(
                stream,
                batch_size=None,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=self.pin_memory,
            )
        return self._loader(self.train_samples, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_samples, shuffle=False)
