"""Samples as the tensors a model step takes."""

from __future__ import annotations

import numpy as np
import torch

from heimdall.data.layout import SampleArrays

__all__ = ["to_batch"]


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
