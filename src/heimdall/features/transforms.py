"""Transforms of feature maps: MFCCs (DCT-II), standardisation and training-time augmentation."""

from __future__ import annotations

import functools

import numpy as np
import torch

from heimdall.errors import InputError
from heimdall.features.arrays import ArrayT, back, to_tensor


@functools.lru_cache(maxsize=8)
def _dct(n_out: int, n_in: int) -> torch.Tensor:
    if not 1 <= n_out <= n_in:
        raise InputError(f"need 1 <= n_mfcc <= n_mels, got {n_out} and {n_in}")
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    basis[0] /= np.sqrt(2.0)  # orthonormal scaling of the DC row
    return torch.from_numpy(basis.astype(np.float32))


def dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """The first `n_out` rows of the orthonormal DCT-II of length `n_in`: [n_out, n_in]."""
    return _dct(int(n_out), int(n_in)).clone()


def compute_mfcc(mel_db: ArrayT, n_mfcc: int = 20) -> ArrayT:
    """MFCCs, [..., n_mfcc, frames]: orthonormal DCT-II of [..., n_mels, frames] over mels."""
    x, as_numpy = to_tensor(mel_db)
    basis = _dct(int(n_mfcc), x.shape[-2]).to(x.dtype)
    return back(torch.matmul(basis, x), as_numpy)


def normalize_features(
    x: ArrayT,
    mean: ArrayT | None = None,
    std: ArrayT | None = None,
    eps: float = 1e-6,
    channel_axis: int = -2,
) -> tuple[ArrayT, ArrayT, ArrayT]:
    """Per-channel standardisation: (x - mean) / (std + eps) -> (normalised, mean, std).

    Channels lie along `channel_axis` (default the mel or MFCC axis); `mean` and `std` are
    1-D, one value per channel, computed over every other axis when not given (fit them on
    the training split only and pass them in elsewhere).
    """
    t, as_numpy = to_tensor(x)
    axis = channel_axis % t.ndim
    others = [d for d in range(t.ndim) if d != axis]
    m = t.mean(dim=others) if mean is None else to_tensor(mean)[0].to(t.dtype)
    s = t.std(dim=others, correction=0) if std is None else to_tensor(std)[0].to(t.dtype)
    shape = [t.shape[d] if d == axis else 1 for d in range(t.ndim)]
    if m.shape != (t.shape[axis],) or s.shape != (t.shape[axis],):
        raise InputError(f"mean and std must have shape ({t.shape[axis]},)")
    out = (t - m.reshape(shape)) / (s.reshape(shape) + eps)
    return back(out, as_numpy), back(m, as_numpy), back(s, as_numpy)


def augment_features(
    x: ArrayT,
    generator: torch.Generator,
    dropout_p: float = 0.1,
    max_time_shift: int = 4,
    scale_db: float = 2.0,
) -> ArrayT:
    """Training-time augmentation of dB features [..., F, T], each [F, T] map independently.

    A circular time shift of up to `max_time_shift` frames (receivers share no clock), a
    gain offset uniform in [-scale_db, +scale_db] dB (uncalibrated receivers), then time-
    frequency dropout: each frequency row and each time column is replaced, with probability
    `dropout_p`, by the map's mean. Same generator state -> same output.
    """
    if not 0.0 <= dropout_p <= 1.0 or max_time_shift < 0 or scale_db < 0.0:
        raise InputError("need 0 <= dropout_p <= 1, max_time_shift >= 0 and scale_db >= 0")
    t, as_numpy = to_tensor(x)
    if t.ndim < 2:
        raise InputError(f"features must be [..., F, T], got shape {tuple(t.shape)}")
    lead, (num_f, num_t) = t.shape[:-2], t.shape[-2:]
    maps = t.reshape(-1, num_f, num_t)
    count = maps.shape[0]
    shift = torch.randint(-max_time_shift, max_time_shift + 1, (count,), generator=generator)
    gain_db = (torch.rand(count, generator=generator) * 2.0 - 1.0) * scale_db
    drop_f = torch.rand(count, num_f, generator=generator) < dropout_p
    drop_t = torch.rand(count, num_t, generator=generator) < dropout_p
    index = (torch.arange(num_t)[None, :] - shift[:, None]) % num_t
    shifted = torch.gather(maps, 2, index[:, None, :].expand(count, num_f, num_t))
    shifted = shifted + gain_db.to(maps.dtype)[:, None, None]
    fill = shifted.mean(dim=(1, 2), keepdim=True).expand_as(shifted)
    out = torch.where(drop_f[:, :, None] | drop_t[:, None, :], fill, shifted)
    return back(out.reshape(*lead, num_f, num_t), as_numpy)
