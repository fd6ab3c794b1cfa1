"""Features from complex baseband IQ: spectrograms, mel spectrograms, MFCCs, measurements.

One implementation, batched in torch, serves training (simulated IQ) and serving (recorded
IQ); every function also accepts numpy arrays and then returns numpy arrays.

Units follow `heimdall.sim.signals`: IQ samples are in sqrt(mW), so a bin's power is in mW
and the dB features are dBm. Spectra are two-sided (complex baseband has no mirror image:
a carrier above the channel centre is a different thing from one below it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from numpy.typing import NDArray

from heimdall.errors import InputError

__all__ = [
    "DEFAULT_POWER_FLOOR_MW", "hz_to_mel", "mel_to_hz", "mel_filterbank", "power_spectrogram",
    "iq_to_mel_spectrogram", "dct_matrix", "compute_mfcc", "normalize_features",
    "augment_features", "IQMeasurements", "measure_iq", "iq_features",
]  # fmt: skip

DEFAULT_POWER_FLOOR_MW = 1e-20
"""Power floor before taking logs: -200 dBm, far below thermal noise in any one bin."""

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def _to_tensor(x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """(`x` as a tensor without copying where possible, whether it came in as numpy)."""
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.from_numpy(np.ascontiguousarray(x)), True


#: Most complex samples one call takes (2**28 complex64 = 2 GiB); larger input is refused unread.
MAX_IQ_SAMPLES = 2**28


def _iq_tensor(iq: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """`_to_tensor(iq)` once `iq` is known to be a complex array of a size worth reading."""
    if not isinstance(iq, (np.ndarray, torch.Tensor)):
        raise InputError(f"iq must be a numpy array or torch tensor, got {type(iq).__name__}")
    if isinstance(iq, np.ndarray) and not np.iscomplexobj(iq):
        raise InputError(f"iq must be complex baseband, got dtype {iq.dtype}")
    size = int(np.prod(iq.shape, dtype=np.float64))
    if size > MAX_IQ_SAMPLES:
        # Checked on the shape alone: a broadcast view may be far larger than memory.
        raise InputError(f"iq holds {size:.3g} samples; at most {MAX_IQ_SAMPLES} per call")
    return _to_tensor(iq)


def _back(x: torch.Tensor, as_numpy: bool):
    return x.numpy() if as_numpy else x


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


# STFT bins handled at once on CPU (2 MiB of complex64): staying in cache makes the memory-
# bound steps after the FFT about three times faster than one pass over the whole batch.
_CHUNK_BINS = 1 << 18


def _stft_pass(
    iq: torch.Tensor,
    n_fft: int,
    hop_length: int,
    num_frames: int | None,
    mel_bank: torch.Tensor | None = None,
    keep_power: bool = False,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """One chunked STFT over complex `iq` [..., T] (Hann window, no centring).

    Returns (mel band power [..., frames, n_mels] in mW when `mel_bank` [n_mels, n_fft] (FFT
    column order) is given, mean bin power over frames [..., n_fft] in mW, bin power
    [..., frames, n_fft] when `keep_power`), bins in FFT (not fftshifted) order. Bin powers
    are |X|^2 / (n_fft sum(w^2)), so the bins of a frame sum to its mean power (Parseval).
    """
    if not torch.is_complex(iq):
        raise InputError(f"iq must be complex baseband, got dtype {iq.dtype}")
    if iq.ndim == 0:
        raise InputError("iq must have a time axis, got a scalar")
    if not bool(torch.isfinite(iq).all()):
        raise InputError("iq holds non-finite samples (NaN or inf)")
    num_samples = iq.shape[-1]
    if n_fft < 1 or hop_length < 1 or num_samples < n_fft:
        raise InputError(f"need n_fft >= 1, hop_length >= 1 and at least n_fft={n_fft} samples")
    available = 1 + (num_samples - n_fft) // hop_length
    frames = available if num_frames is None else int(num_frames)
    if not 1 <= frames <= available:
        raise InputError(f"{num_samples} samples give {available} frames, {num_frames} asked")
    lead = iq.shape[:-1]
    flat = iq.reshape(-1, num_samples)[:, : n_fft + (frames - 1) * hop_length]
    rows = flat.shape[0]
    device = iq.device
    window = _hann(n_fft).to(device)
    scale = 1.0 / (n_fft * float(window.square().sum()))
    bank_t = None if mel_bank is None else (mel_bank.T.to(device) * scale).contiguous()
    mel = None if mel_bank is None else torch.empty(rows, frames, len(mel_bank), device=device)
    mean = torch.empty(rows, n_fft, device=device)
    power = torch.empty(rows, frames, n_fft, device=device) if keep_power else None
    step = max(1, _CHUNK_BINS // (n_fft * frames)) if device.type == "cpu" else max(rows, 1)
    for i in range(0, rows, step):
        chunk = flat[i : i + step].to(torch.complex64)
        spec = torch.stft(
            chunk, n_fft, hop_length, window=window, center=False, onesided=False,
            return_complex=True,
        )  # fmt: skip
        parts = torch.view_as_real(spec.transpose(-1, -2))
        raw = parts[..., 0].square() + parts[..., 1].square()  # [c, frames, n_fft], unscaled
        torch.mean(raw, dim=1, out=mean[i : i + step])
        if bank_t is not None:
            torch.matmul(raw, bank_t, out=mel[i : i + step])
        if power is not None:
            torch.mul(raw, scale, out=power[i : i + step])
    mean *= scale
    restore = lambda x: None if x is None else x.reshape(*lead, *x.shape[1:])  # noqa: E731
    return restore(mel), restore(mean), restore(power)


def power_spectrogram(
    iq: ArrayT, n_fft: int = 2048, hop_length: int = 512, num_frames: int | None = None
) -> ArrayT:
    """Two-sided power spectrogram in mW per bin, fftshifted: [..., n_fft, frames] float32.

    Hann window, no centring (frame f covers samples f * hop .. f * hop + n_fft); the bins of
    a frame sum to its mean power. `num_frames` None keeps every whole frame.
    """
    x, as_numpy = _iq_tensor(iq)
    power = _stft_pass(x, n_fft, hop_length, num_frames, keep_power=True)[2]
    return _back(torch.fft.fftshift(power.transpose(-1, -2), dim=-2).contiguous(), as_numpy)


@functools.lru_cache(maxsize=16)
def _bank_fft_order(n_fft: int, fs: float, n_mels: int, f_min_hz: float, f_max_hz: float | None):
    """`mel_filterbank` with its columns in FFT order, to skip fftshifting the (larger) data."""
    f_max = fs / 2.0 if f_max_hz is None else f_max_hz
    return torch.fft.ifftshift(_filterbank(n_fft, fs, n_mels, f_min_hz, f_max), dim=-1)


def _to_db(mel_mw: torch.Tensor, floor_mw: float) -> torch.Tensor:
    """[..., frames, n_mels] band powers in mW -> [..., n_mels, frames] in dBm."""
    return (10.0 * torch.log10(mel_mw.clamp_min(floor_mw))).transpose(-1, -2).contiguous()


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
    x, as_numpy = _iq_tensor(iq)
    fs = float(sample_rate_hz)
    bank = _bank_fft_order(int(n_fft), fs, int(n_mels), float(f_min_hz), f_max_hz)
    mel = _stft_pass(x, n_fft, hop_length, num_frames, mel_bank=bank)[0]
    out = _to_db(mel, power_floor_mw) if log else mel.transpose(-1, -2).contiguous()
    return _back(out, as_numpy)


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
    x, as_numpy = _to_tensor(mel_db)
    basis = _dct(int(n_mfcc), x.shape[-2]).to(x.dtype)
    return _back(torch.matmul(basis, x), as_numpy)


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
    t, as_numpy = _to_tensor(x)
    axis = channel_axis % t.ndim
    others = [d for d in range(t.ndim) if d != axis]
    m = t.mean(dim=others) if mean is None else _to_tensor(mean)[0].to(t.dtype)
    s = t.std(dim=others, correction=0) if std is None else _to_tensor(std)[0].to(t.dtype)
    shape = [t.shape[d] if d == axis else 1 for d in range(t.ndim)]
    if m.shape != (t.shape[axis],) or s.shape != (t.shape[axis],):
        raise InputError(f"mean and std must have shape ({t.shape[axis]},)")
    out = (t - m.reshape(shape)) / (s.reshape(shape) + eps)
    return _back(out, as_numpy), _back(m, as_numpy), _back(s, as_numpy)


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
    t, as_numpy = _to_tensor(x)
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
    return _back(out.reshape(*lead, num_f, num_t), as_numpy)


@dataclass(frozen=True, eq=False)
class IQMeasurements:
    """What one recording says about its channel; each field has the IQ's leading shape.

    `power_dbm`: signal power in the channel, noise removed; `channel_power_dbm`: all power in
    the channel; `noise_floor_dbm`: noise power over the channel bandwidth; `snr_db` =
    `power_dbm - noise_floor_dbm`; `frequency_offset_hz`: power-weighted mean frequency of the
    signal in the channel (NaN without signal); `signal_present`: snr_db >= the threshold."""

    power_dbm: NDArray[np.float64]
    channel_power_dbm: NDArray[np.float64]
    noise_floor_dbm: NDArray[np.float64]
    snr_db: NDArray[np.float64]
    frequency_offset_hz: NDArray[np.float64]
    signal_present: NDArray[np.bool_]


def _measure(
    power: torch.Tensor,
    fs: float,
    channel_bandwidth_hz: float,
    detection_snr_db: float,
    guard_hz: float,
) -> IQMeasurements:
    """Measurements from the mean bin power [..., n_fft] in mW, FFT order."""
    n_fft = power.shape[-1]
    mean_power = power.to(torch.float64).cpu()
    f_hz = torch.fft.fftfreq(n_fft, d=1.0 / fs, dtype=torch.float64)
    in_channel = f_hz.abs() <= channel_bandwidth_hz / 2.0
    # Noise is read outside the channel (past a guard for FM splatter and LO error) and below
    # 0.45 fs, where a real receiver's anti-alias filter has not started to roll off.
    outside = (f_hz.abs() >= channel_bandwidth_hz / 2.0 + guard_hz) & (f_hz.abs() <= 0.45 * fs)
    if not outside.any() or not in_channel.any():
        raise InputError(f"sample_rate_hz {fs} leaves no bins outside the channel to read noise")
    # The median shrugs off adjacent-channel signals and splatter; with 32 averaged frames
    # it reads the noise < 0.1 dB low (median of a chi-square below its mean).
    noise_per_bin = mean_power[..., outside].median(dim=-1).values
    bin_width_hz = fs / n_fft
    channel = mean_power[..., in_channel]
    channel_mw = channel.sum(dim=-1)
    noise_mw = (noise_per_bin * (channel_bandwidth_hz / bin_width_hz)).clamp_min(1e-300)
    excess = channel - noise_per_bin[..., None]
    signal_mw = torch.maximum(excess.sum(dim=-1), 1e-3 * noise_mw)  # SNR floor of -30 dB
    snr_db = 10.0 * torch.log10(signal_mw / noise_mw)
    present = snr_db >= detection_snr_db
    offset_hz = (excess * f_hz[in_channel]).sum(dim=-1) / excess.sum(dim=-1)
    offset_hz = torch.where(present, offset_hz, torch.nan)
    return IQMeasurements(
        power_dbm=(10.0 * torch.log10(signal_mw)).numpy(),
        channel_power_dbm=(10.0 * torch.log10(channel_mw.clamp_min(1e-300))).numpy(),
        noise_floor_dbm=(10.0 * torch.log10(noise_mw)).numpy(),
        snr_db=snr_db.numpy(),
        frequency_offset_hz=offset_hz.numpy(),
        signal_present=present.numpy(),
    )


def measure_iq(
    iq: torch.Tensor | np.ndarray,
    sample_rate_hz: float,
    channel_bandwidth_hz: float = 12_500.0,
    detection_snr_db: float = 3.0,
    n_fft: int = 2048,
    hop_length: int = 512,
    num_frames: int | None = None,
    guard_hz: float = 2_000.0,
) -> IQMeasurements:
    """Channel power, noise floor, SNR and carrier offset of complex IQ [..., T].

    A Welch spectrum (Hann, `n_fft`, `hop_length`; bins in mW) is split into the channel
    (|f| <= channel_bandwidth_hz / 2) and the noise region (|f| >= channel edge + `guard_hz`,
    |f| <= 0.45 fs). The noise per bin is the region's median, scaled to the channel
    bandwidth; SNR is then (channel power - noise in channel) / noise in channel, the
    convention `heimdall.sim.signals.apply_channel` draws with.
    """
    x, _ = _iq_tensor(iq)
    mean_power = _stft_pass(x, n_fft, hop_length, num_frames)[1]
    fs = float(sample_rate_hz)
    return _measure(mean_power, fs, channel_bandwidth_hz, detection_snr_db, guard_hz)


def iq_features(
    iq: torch.Tensor | np.ndarray,
    sample_rate_hz: float,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    num_frames: int | None = 32,
    channel_bandwidth_hz: float = 12_500.0,
    detection_snr_db: float = 3.0,
) -> tuple[NDArray[np.float32], IQMeasurements]:
    """Mel spectrogram in dBm ([..., n_mels, frames]) and measurements from one STFT.

    Equal to `iq_to_mel_spectrogram` and `measure_iq` called with the same arguments, at
    about half their combined cost.
    """
    x, _ = _iq_tensor(iq)
    fs = float(sample_rate_hz)
    bank = _bank_fft_order(int(n_fft), fs, int(n_mels), 0.0, None)
    mel, mean_power, _ = _stft_pass(x, n_fft, hop_length, num_frames, mel_bank=bank)
    measurements = _measure(mean_power, fs, channel_bandwidth_hz, detection_snr_db, 2_000.0)
    return _to_db(mel, DEFAULT_POWER_FLOOR_MW).cpu().numpy(), measurements
