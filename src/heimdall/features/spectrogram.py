"""Mel scale, mel filterbank, STFT power spectrograms and mel spectrograms of complex IQ."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from heimdall.errors import InputError
from heimdall.features.arrays import ArrayT, all_finite, back, iq_tensor
from heimdall.features.kernels import power_mean_mel, window_frames

DEFAULT_POWER_FLOOR_MW = 1e-20
"""Power floor before taking logs: -200 dBm, far below thermal noise in any one bin."""


def hz_to_mel(frequency_hz: float | np.ndarray) -> float | np.ndarray:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency_hz) / 700.0)


def mel_to_hz(mel: float | np.ndarray) -> float | np.ndarray:
    """Inverse of `hz_to_mel`, in Hz."""
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def _filterbank(n_fft: int, fs: float, n_mels: int, f_min_hz: float, f_max_hz: float):
    """`mel_filterbank` (cached; callers must not modify it)."""
    if n_mels < 2 or n_mels % 2:
        raise InputError(f"n_mels must be even and >= 2 (half per frequency sign), got {n_mels}")
    if not 0.0 <= f_min_hz < f_max_hz <= fs / 2.0:
        raise InputError(f"need 0 <= f_min_hz < f_max_hz <= fs / 2, got {f_min_hz}, {f_max_hz}")
    half = n_mels // 2
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), half + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    f_hz = (np.arange(n_fft) - n_fft // 2) * (fs / n_fft)  # fftshifted bin frequencies
    magnitude = np.abs(f_hz)[None, :]
    rising, falling = (magnitude - lower) / (centre - lower), (upper - magnitude) / (upper - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    # Rows 0..half-1: negative frequencies, from -f_max up to DC (the positive triangles
    # mirrored); rows half..n_mels-1: DC and positive frequencies up to +f_max. Centre
    # frequencies therefore rise with the row index and the sign of an offset is kept.
    negative = np.where(f_hz[None, :] < 0.0, triangles, 0.0)[::-1]
    positive = np.where(f_hz[None, :] >= 0.0, triangles, 0.0)
    bank = np.concatenate([negative, positive])
    if np.any(bank.sum(axis=1) <= 0.0):
        raise InputError(f"n_mels={n_mels} is too many for n_fft={n_fft}: a mel band holds no bin")
    return torch.from_numpy(bank.astype(np.float32))


def mel_filterbank(
    n_fft: int,
    sample_rate_hz: float,
    n_mels: int = 128,
    f_min_hz: float = 0.0,
    f_max_hz: float | None = None,
) -> torch.Tensor:
    """Triangular mel filters (peak 1) for a two-sided, fftshifted spectrum: [n_mels, n_fft].

    Column j is the bin at frequency (j - n_fft // 2) * fs / n_fft. Half the filters
    (n_mels / 2) are spaced on the HTK mel scale of |f| between `f_min_hz` and `f_max_hz`
    (default fs / 2) over positive frequencies; the other half mirror them over negative
    frequencies. Row order follows signed frequency (most negative first), so a carrier offset
    of +3 kHz and one of -3 kHz fall in different rows, mirrored about the middle.
    """
    fs = float(sample_rate_hz)
    f_max = fs / 2.0 if f_max_hz is None else float(f_max_hz)
    return _filterbank(int(n_fft), fs, int(n_mels), float(f_min_hz), f_max).clone()


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float32)


@functools.lru_cache(maxsize=8)
def _power_scale(n_fft: int) -> float:
    """mW per unit |X|^2 of a Hann-windowed `n_fft` DFT: the bins of a frame sum to its mean power."""
    return 1.0 / (n_fft * float(_hann(n_fft).square().sum()))


# STFT bins per FFT call on the CPU (4 receivers, 2 MiB of complex64): one call per chunk
# keeps the per-call cost small; chunks of 1, 2 or 8 receivers measured no faster.
_CHUNK_BINS = 1 << 18
_NO_BANDS = np.zeros(0, dtype=np.int64)
_NO_WEIGHTS = np.zeros(0, dtype=np.float32)
_NO_POWER = np.zeros((0, 0, 0), dtype=np.float32)
_NON_FINITE = "iq holds non-finite samples (NaN or inf)"


@dataclass(frozen=True, eq=False)
class _MelBank:
    """A mel filterbank ready for `stft_pass`, its columns in FFT order, scaled to mW.

    `dense_t` is [n_fft, n_mels], for devices other than the CPU. Each triangle covers one
    run of bins (in FFT order a band never straddles DC), so the CPU kernel reads only the
    runs: band b weighs bins start[b] <= k < stop[b] by weights[offset[b]:], 4 % of the dense
    bank's entries for the default 2048 bins and 128 bands.
    """

    dense_t: torch.Tensor
    start: np.ndarray
    stop: np.ndarray
    offset: np.ndarray
    weights: np.ndarray

    @property
    def n_mels(self) -> int:
        return self.dense_t.shape[1]

    @property
    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.start, self.stop, self.offset, self.weights


def _runs(bank_t: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start, stop, offset, weights) of each band's non-zero run of bins in `bank_t` [n_fft, n_mels]."""
    bank = bank_t.T.numpy()
    start = np.array([np.flatnonzero(row)[0] for row in bank], dtype=np.int64)
    stop = np.array([np.flatnonzero(row)[-1] + 1 for row in bank], dtype=np.int64)
    weights = [row[a:b] for row, a, b in zip(bank, start, stop, strict=True)]
    offset = np.concatenate(([0], np.cumsum(stop - start)[:-1])).astype(np.int64)
    return start, stop, offset, np.concatenate(weights).astype(np.float32)


def _output(given: torch.Tensor | None, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """`given` once checked to be a contiguous float32 tensor of `shape`, else a new one."""
    if given is None:
        return torch.empty(shape, device=device)
    if tuple(given.shape) != shape or given.dtype != torch.float32 or not given.is_contiguous():
        raise InputError(f"output must be contiguous float32 {shape}, got {given.dtype} {tuple(given.shape)}")
    return given


def stft_pass(
    iq: torch.Tensor,
    n_fft: int,
    hop_length: int,
    num_frames: int | None,
    mel_bank: _MelBank | None = None,
    keep_power: bool = False,
    mel_out: torch.Tensor | None = None,
    mean_out: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """One chunked STFT over complex `iq` [..., T] (Hann window, no centring).

    Returns (mel band power [..., frames, n_mels] in mW when `mel_bank` is given, mean bin
    power over frames [..., n_fft] in mW, bin power [..., frames, n_fft] when `keep_power`),
    bins in FFT (not fftshifted) order. Bin powers are |X|^2 / (n_fft sum(w^2)), so the bins
    of a frame sum to its mean power (Parseval). `mel_out` and `mean_out` (float32, those
    shapes) receive the results in place of new tensors: a caller looping over small batches
    then allocates nothing.
    """
    if not torch.is_complex(iq):
        raise InputError(f"iq must be complex baseband, got dtype {iq.dtype}")
    if iq.ndim == 0:
        raise InputError("iq must have a time axis, got a scalar")
    num_samples = iq.shape[-1]
    if n_fft < 1 or hop_length < 1 or num_samples < n_fft:
        raise InputError(f"need n_fft >= 1, hop_length >= 1 and at least n_fft={n_fft} samples")
    available = 1 + (num_samples - n_fft) // hop_length
    frames = available if num_frames is None else int(num_frames)
    if not 1 <= frames <= available:
        raise InputError(f"{num_samples} samples give {available} frames, {num_frames} asked")
    lead = iq.shape[:-1]
    flat = iq.reshape(-1, num_samples)
    rows = flat.shape[0]
    device = iq.device
    mel = None if mel_bank is None else _output(mel_out, (*lead, frames, mel_bank.n_mels), device)
    mean = _output(mean_out, (*lead, n_fft), device)
    mel = None if mel is None else mel.view(rows, frames, -1)
    mean = mean.view(rows, n_fft)
    power = torch.empty(rows, frames, n_fft, device=device) if keep_power else None
    # The CPU kernels check the samples the frames cover as they read them; the rest here.
    covered = (frames - 1) * hop_length + n_fft if device.type == "cpu" else 0
    if not all_finite(flat[:, covered:]):
        raise InputError(_NON_FINITE)
    passes = _stft_cpu if device.type == "cpu" else _stft_torch
    passes(flat, n_fft, hop_length, frames, mel_bank, mel, mean, power)
    restore = lambda x: None if x is None else x.reshape(*lead, *x.shape[1:])  # noqa: E731
    return restore(mel), restore(mean), restore(power)


def _stft_cpu(
    flat: torch.Tensor,
    n_fft: int,
    hop_length: int,
    frames: int,
    mel_bank: _MelBank | None,
    mel: torch.Tensor | None,
    mean: torch.Tensor,
    power: torch.Tensor | None,
) -> None:
    """`stft_pass` on the CPU: compiled framing, torch's FFT, then one compiled pass over the
    spectrum for power, mean and mel bands, a few rows at a time so the data stays in cache."""
    rows = flat.shape[0]
    step = max(1, _CHUNK_BINS // (n_fft * frames))
    window = _hann(n_fft).numpy()
    scale = _power_scale(n_fft)
    windowed = torch.empty((min(step, rows), frames, n_fft), dtype=torch.complex64)
    windowed_ri = _interleaved(windowed, len(windowed), frames)
    bands = (_NO_BANDS,) * 3 + (_NO_WEIGHTS,) if mel_bank is None else mel_bank.runs
    # numpy views made once: slicing them per chunk costs a fraction of slicing tensors.
    samples = _interleaved(flat.to(torch.complex64).contiguous(), rows)
    mean_np = mean.numpy()
    mel_np = _NO_POWER if mel is None else mel.numpy()
    power_np = _NO_POWER if power is None else power.numpy()
    for i in range(0, rows, step):
        count = min(step, rows - i)
        total = window_frames(samples[i : i + count], window, hop_length, windowed_ri[:count])
        if not math.isfinite(total) and not all_finite(flat[i : i + count]):  # (finite sums can overflow)
            raise InputError(_NON_FINITE)
        spectrum = torch.fft.fft(windowed[:count])
        power_mean_mel(
            _interleaved(spectrum, count, frames), scale / frames, *bands, mean_np[i : i + count],
            mel_np[i : i + count], power_np[i : i + count], scale,
        )  # fmt: skip


def _interleaved(x: torch.Tensor, *shape: int) -> np.ndarray:
    """Contiguous complex `x` as float32 numpy, re/im interleaved along the last axis of `shape`."""
    return torch.view_as_real(x).numpy().reshape(*shape, -1)


def _stft_torch(
    flat: torch.Tensor,
    n_fft: int,
    hop_length: int,
    frames: int,
    mel_bank: _MelBank | None,
    mel: torch.Tensor | None,
    mean: torch.Tensor,
    power: torch.Tensor | None,
) -> None:
    """`stft_pass` in torch operations alone, for tensors on an accelerator (the whole batch
    at once); on the CPU it gives what `_stft_cpu` gives, several times slower."""
    window = _hann(n_fft).to(flat.device)
    scale = _power_scale(n_fft)
    spectrum = torch.fft.fft(flat.to(torch.complex64).unfold(-1, n_fft, hop_length)[:, :frames] * window)
    parts = torch.view_as_real(spectrum).square_()
    raw = torch.add(parts[..., 0], parts[..., 1])  # [rows, frames, n_fft], unscaled
    torch.mean(raw, dim=1, out=mean)
    mean *= scale
    if mel is not None:
        torch.matmul(raw, mel_bank.dense_t.to(raw.device), out=mel)
    if power is not None:
        torch.mul(raw, scale, out=power)


def power_spectrogram(
    iq: ArrayT, n_fft: int = 2048, hop_length: int = 512, num_frames: int | None = None
) -> ArrayT:
    """Two-sided power spectrogram in mW per bin, fftshifted: [..., n_fft, frames] float32.

    Hann window, no centring (frame f covers samples f * hop .. f * hop + n_fft); the bins of
    a frame sum to its mean power. `num_frames` None keeps every whole frame.
    """
    x, as_numpy = iq_tensor(iq)
    power = stft_pass(x, n_fft, hop_length, num_frames, keep_power=True)[2]
    return back(torch.fft.fftshift(power.transpose(-1, -2), dim=-2).contiguous(), as_numpy)


@functools.lru_cache(maxsize=16)
def mel_bank_for_stft(n_fft: int, fs: float, n_mels: int, f_min_hz: float, f_max_hz: float | None) -> _MelBank:
    """`mel_filterbank` as `stft_pass` takes it: FFT column order (no fftshift of the larger
    data needed), scaled to mW, and banded for the CPU (cached; callers must not modify it)."""
    f_max = fs / 2.0 if f_max_hz is None else f_max_hz
    bank = torch.fft.ifftshift(_filterbank(n_fft, fs, n_mels, f_min_hz, f_max), dim=-1)
    bank_t = (bank.T * _power_scale(n_fft)).contiguous()
    return _MelBank(bank_t, *_runs(bank_t))


def power_to_db(mel_mw: torch.Tensor, floor_mw: float) -> torch.Tensor:
    """[..., frames, n_mels] band powers in mW -> [..., n_mels, frames] in dBm."""
    level_db = mel_mw.clamp_min(floor_mw).log10_().mul_(10.0)
    return level_db.transpose(-1, -2).contiguous()


def iq_to_mel_spectrogram(
    iq: ArrayT,
    sample_rate_hz: float,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    num_frames: int | None = 32,
    log: bool = True,
    f_min_hz: float = 0.0,
    f_max_hz: float | None = None,
    power_floor_mw: float = DEFAULT_POWER_FLOOR_MW,
) -> ArrayT:
    """Mel spectrogram of complex IQ [..., T]: [..., n_mels, num_frames] float32.

    With `log`, values are 10 log10(max(mel power in mW, `power_floor_mw`)), i.e. dBm per mel
    band; otherwise mW. Filters as in `mel_filterbank`; frames as in `power_spectrogram`
    (the first `num_frames`; None keeps all).
    """
    x, as_numpy = iq_tensor(iq)
    fs = float(sample_rate_hz)
    bank = mel_bank_for_stft(int(n_fft), fs, int(n_mels), float(f_min_hz), f_max_hz)
    mel = stft_pass(x, n_fft, hop_length, num_frames, mel_bank=bank)[0]
    out = power_to_db(mel, power_floor_mw) if log else mel.transpose(-1, -2).contiguous()
    return back(out, as_numpy)


