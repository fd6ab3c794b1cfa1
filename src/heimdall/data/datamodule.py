"""Torch access to samples: `HeimdallDataset`, the LightningDataModule, normalisation fit."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from heimdall.data.layout import SampleArrays
from heimdall.errors import DataError
from heimdall.models.localization_net import NormalizationStats

__all__ = ["HeimdallDataset", "HeimdallDataModule", "fit_normalization", "to_batch"]


def to_batch(samples: SampleArrays) -> dict[str, torch.Tensor]:
    """The model inputs and target of `samples` as tensors (NaN RSS kept; `heard` masks it)."""
    return {
        "rx_position_m": torch.from_numpy(np.ascontiguousarray(samples.rx_position_m, dtype=np.float32)),
        "rx_id": torch.from_numpy(np.ascontiguousarray(samples.rx_id, dtype=np.int64)),
        "rss_dbm": torch.from_numpy(np.ascontiguousarray(samples.rss_dbm, dtype=np.float32)),
        "heard": torch.from_numpy(np.ascontiguousarray(samples.heard, dtype=bool)),
        "present": torch.from_numpy(np.ascontiguousarray(samples.present, dtype=bool)),
        "tx_position_m": torch.from_numpy(np.ascontiguousarray(samples.tx_position_m, dtype=np.float32)),
        # float16 as stored (half the memory); the model converts per batch.
        **({"spectrogram": torch.from_numpy(np.ascontiguousarray(samples.spectrogram))} if samples.spectrogram is not None else {}),
    }


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


class HeimdallDataModule(L.LightningDataModule):
    """Train/val loaders over fixed splits; shuffling is seeded for reproducible runs."""

    def __init__(
        self,
        train: SampleArrays | IterableDataset,
        val: SampleArrays,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        # A ShardStream (data/streaming.py) yields whole batches itself.
        self.train_set = train if isinstance(train, IterableDataset) else HeimdallDataset(train)
        self.val_set = HeimdallDataset(val)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        #: Page-locked batches copy to a GPU asynchronously; pointless on CPU.
        self.pin_memory = pin_memory

    def _loader(self, dataset: HeimdallDataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=_identity,
            generator=generator,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        if isinstance(self.train_set, IterableDataset):
            return DataLoader(
                self.train_set,
                batch_size=None,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=self.pin_memory,
            )
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
