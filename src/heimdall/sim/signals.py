"""Baseband waveforms of narrow-band FM transmissions and the channel to each receiver.

Conventions, shared with `heimdall.features`:

- Audio is float32 in [-1, 1]; an audio value of 1 swings the carrier by the full deviation.
- IQ is complex64 baseband at `sample_rate_hz`, centred on the nominal channel frequency.
- Power: IQ samples are in sqrt(mW), so `10 log10(mean |x|^2)` is the power in dBm. The
  transmitted waveform has unit power (0 dBm in this convention); the channel sets the level.
- SNR: `snr_db` is the signal power over the noise power inside the `CHANNEL_BANDWIDTH_HZ`
  (12.5 kHz) channel. Noise is white over the whole sample rate, so its total power is the
  in-channel power plus `10 log10(sample_rate_hz / 12.5 kHz)` dB (5.85 dB at 48 kHz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.fft as sfft
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.signal import lfilter, lfilter_zi

from heimdall.errors import InputError
from heimdall.sim.audio import (
    CTCSS_TONES_HZ,
    DTMF_COLUMNS_HZ,
    DTMF_KEYS,
    DTMF_ROWS_HZ,
    _normalise_peak,
    _positive_float,
    _positive_int,
    dtmf_audio,
    load_audio_dir,
    speech_like_audio,
    tone_audio,
)

__all__ = [
    "SignalType", "SIGNAL_TYPES", "CHANNEL_BANDWIDTH_HZ", "NBFM_DEVIATION_HZ",
    "WIDE_DEVIATION_HZ", "PRE_EMPHASIS_TIME_CONSTANT_S", "EMPHASIS_SHELF_HZ", "CTCSS_TONES_HZ",
    "DTMF_ROWS_HZ", "DTMF_COLUMNS_HZ", "DTMF_KEYS", "speech_like_audio", "tone_audio",
    "dtmf_audio", "pre_emphasis", "de_emphasis", "fm_modulate", "fm_demodulate",
    "WaveformConfig", "draw_signal_types", "transmitter_waveforms", "apply_channel",
]  # fmt: skip

SignalType = Literal["voice", "tone", "dtmf"]
SIGNAL_TYPES: tuple[SignalType, ...] = ("voice", "tone", "dtmf")
CHANNEL_BANDWIDTH_HZ = 12_500.0
NBFM_DEVIATION_HZ = 2_500.0
WIDE_DEVIATION_HZ = 5_000.0
PRE_EMPHASIS_TIME_CONSTANT_S = 750e-6
EMPHASIS_SHELF_HZ = 10_000.0  # above the voice band; bounds the boost as real networks do
Float32Array = NDArray[np.float32]
Complex64Array = NDArray[np.complex64]


def _emphasis(audio: ArrayLike, fs: float, tau_s: float, inverse: bool):
    """Bilinear transform of H(s) = (1 + s tau) / (1 + s tau_shelf) (unit gain at DC), or 1/H."""
    k = 2.0 * _positive_float(fs, "sample_rate_hz")
    tau = _positive_float(tau_s, "time_constant_s")
    tau_shelf = 1.0 / (2.0 * np.pi * EMPHASIS_SHELF_HZ)
    b = np.array([1.0 + k * tau, 1.0 - k * tau]) / (1.0 + k * tau_shelf)
    a = np.array([1.0, (1.0 - k * tau_shelf) / (1.0 + k * tau_shelf)])
    # Swapping b and a inverts the filter (stable: the pre-emphasis zero is inside the unit
    # circle). Both start in the steady state of the first sample, as if the audio had been
    # running (a step from silence would spike the high-pass), so the cascade is the identity.
    b, a = (a / b[0], b / b[0]) if inverse else (b, a)
    x = np.asarray(audio)
    out = lfilter(b, a, x, axis=-1, zi=lfilter_zi(b, a) * x[..., :1].astype(np.float64))[0]
    return out if x.dtype == np.float64 else out.astype(np.float32)


def pre_emphasis(
    audio: ArrayLike, sample_rate_hz: float, time_constant_s: float = PRE_EMPHASIS_TIME_CONSTANT_S
) -> NDArray[np.floating]:
    """FM pre-emphasis along the last axis: a first-order high-pass shelf, unit gain at DC.

    The zero sits at 1 / (2 pi tau) (212 Hz for the 750 us NBFM standard), the pole at
    `EMPHASIS_SHELF_HZ`. Float64 in gives float64 out, anything else float32.
    """
    return _emphasis(audio, sample_rate_hz, time_constant_s, inverse=False)


def de_emphasis(
    audio: ArrayLike, sample_rate_hz: float, time_constant_s: float = PRE_EMPHASIS_TIME_CONSTANT_S
) -> NDArray[np.floating]:
    """The exact inverse of `pre_emphasis` with the same arguments (a first-order low shelf)."""
    return _emphasis(audio, sample_rate_hz, time_constant_s, inverse=True)


def fm_modulate(
    audio: ArrayLike, sample_rate_hz: float, deviation_hz: float = NBFM_DEVIATION_HZ
) -> Complex64Array:
    """Unit-amplitude FM along the last axis: phase = 2 pi deviation_hz cumsum(audio) / fs."""
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    # Accumulated in float64 (float32 would drift), wrapped before the float32 cos and sin.
    phase = (2.0 * np.pi * deviation_hz / fs) * np.cumsum(np.asarray(audio, np.float64), axis=-1)
    wrapped = np.remainder(phase, 2.0 * np.pi).astype(np.float32)
    iq = np.empty(wrapped.shape, dtype=np.complex64)
    iq.real, iq.imag = np.cos(wrapped), np.sin(wrapped)
    return iq


def fm_demodulate(iq: ArrayLike, sample_rate_hz: float) -> Float32Array:
    """Instantaneous frequency in Hz, [..., T-1]: element i lies between samples i and i+1."""
    x = np.asarray(iq)
    dphi = np.angle(x[..., 1:] * np.conj(x[..., :-1]))
    return (dphi * (sample_rate_hz / (2.0 * np.pi))).astype(np.float32)


@dataclass(frozen=True)
class WaveformConfig:
    """How transmitted waveforms are drawn; `mix` weighs voice, tone and DTMF.

    The default 2048 + 31 * 512 = 17920 samples (373 ms at 48 kHz) give exactly 32 STFT
    frames of n_fft 2048 and hop 512. With `audio_dir`, voice transmissions carry audio
    from the WAV files there (`sim.audio.load_audio_dir`) instead of synthetic speech."""

    sample_rate_hz: float = 48_000.0
    num_samples: int = 2048 + 31 * 512
    deviation_hz: float = NBFM_DEVIATION_HZ
    mix: tuple[float, float, float] = (0.9, 0.05, 0.05)
    pre_emphasis: bool = True
    audio_dir: str | None = None

    def __post_init__(self) -> None:
        _positive_float(self.sample_rate_hz, "sample_rate_hz")
        _positive_int(self.num_samples, "num_samples")
        _positive_float(self.deviation_hz, "deviation_hz")
        _mix_probabilities(self.mix)


def _mix_probabilities(mix: tuple[float, ...]) -> NDArray[np.float64]:
    p = np.asarray(mix, dtype=np.float64)
    if p.shape != (len(SIGNAL_TYPES),) or not np.all(np.isfinite(p) & (p >= 0)) or p.sum() <= 0:
        raise InputError(f"mix must be {len(SIGNAL_TYPES)} non-negative weights, got {mix!r}")
    return p / p.sum()


def draw_signal_types(
    rng: np.random.Generator, n: int, mix: tuple[float, float, float] = (0.9, 0.05, 0.05)
) -> NDArray[np.str_]:
    """`n` signal types drawn with probabilities `mix` (voice, tone, dtmf; normalised)."""
    p = _mix_probabilities(mix)
    return np.asarray(SIGNAL_TYPES)[rng.choice(len(SIGNAL_TYPES), size=int(n), p=p)]


def transmitter_waveforms(
    rng: np.random.Generator, n: int, config: WaveformConfig | None = None
) -> tuple[Complex64Array, NDArray[np.str_]]:
    """(`n` transmitted FM waveforms, complex64 [n, T] at unit power; their types [n]).

    Pre-emphasised audio is rescaled to peak 1, so the peak deviation is exactly
    `config.deviation_hz`, as a transmitter's deviation limiter makes it.
    """
    config = config or WaveformConfig()
    fs, num_samples = config.sample_rate_hz, config.num_samples
    types = draw_signal_types(rng, _positive_int(n, "n"), config.mix)
    audio = np.empty((len(types), num_samples), dtype=np.float32)
    voice = types == "voice"
    if voice.any() and config.audio_dir is not None:
        audio[voice] = load_audio_dir(config.audio_dir, fs).draw(rng, int(voice.sum()), num_samples)
    elif voice.any():
        audio[voice] = speech_like_audio(rng, num_samples, fs, batch_size=int(voice.sum()))
    for i in np.flatnonzero(~voice):
        audio[i] = (tone_audio if types[i] == "tone" else dtmf_audio)(rng, num_samples, fs)[0]
    if config.pre_emphasis:
        audio = _normalise_peak(pre_emphasis(audio, fs))
    return fm_modulate(audio, fs, config.deviation_hz), types


def _shift_in_place(x: Complex64Array, frequency_hz: NDArray[np.float64], fs: float) -> None:
    """x[..., t] *= exp(2j pi f t / fs) in place, `x` [..., T] contiguous, f [...] in Hz."""
    num_samples = x.shape[-1]
    # t = a * block + b: exp(2j pi f t / fs) is a coarse factor (per a) times a fine one (per
    # b), two complex multiplies per sample instead of one complex exponential.
    block = next(d for d in range(math.isqrt(num_samples), 0, -1) if num_samples % d == 0)
    w = 2j * np.pi * frequency_hz[..., None] / fs
    view = x.reshape(*x.shape[:-1], num_samples // block, block)
    view *= np.exp(w * np.arange(0, num_samples, block)).astype(np.complex64)[..., :, None]
    view *= np.exp(w * np.arange(block)).astype(np.complex64)[..., None, :]


def _per_rx(value: ArrayLike, name: str, shape: tuple[int, int], per_sample: bool = False):
    """`value` broadcast to [n, R]; with `per_sample` a 1-D value is one per sample."""
    arr = np.asarray(value, dtype=np.float64)
    arr = arr[:, None] if per_sample and arr.ndim == 1 else arr
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError as exc:
        raise InputError(f"{name} of shape {arr.shape} does not fit [n, R] = {shape}") from exc
    if np.any(np.isnan(arr)):
        raise InputError(f"{name} must not be NaN")
    return arr


def apply_channel(
    rng: np.random.Generator,
    tx_iq: ArrayLike,
    rx_power_dbm: ArrayLike,
    snr_db: ArrayLike | None,
    sample_rate_hz: float,
    tx_offset_hz: ArrayLike = 0.0,
    rx_lo_offset_hz: ArrayLike = 0.0,
    k_factor_db: ArrayLike = 3.0,
    num_taps: int = 3,
    delay_spread_s: float = 2e-6,
    noise_floor_dbm: ArrayLike | None = None,
    channel_bandwidth_hz: float = CHANNEL_BANDWIDTH_HZ,
) -> Complex64Array:
    """What R receivers record of one transmission each: complex64 [n, R, T] (or [R, T]).

    `tx_iq` is [n, T] (or [T]); `rx_power_dbm` [n, R] (or [R]) is exactly the mean signal
    power, fading included (`propagation.fading_gain_db`): the multipath here only shapes
    phase and spectrum (`num_taps` taps evenly spaced over [0, `delay_spread_s`], exp(-k)
    power profile, the first Rician with `k_factor_db`, the rest Rayleigh, realised gain
    divided out). The carrier then moves by `tx_offset_hz` (scalar or [n], the transmitter's
    oscillator error) plus `rx_lo_offset_hz` (scalar, [R] or [n, R], receiver LO errors).
    White complex Gaussian noise over `sample_rate_hz` has power `rx_power_dbm - snr_db`
    inside `channel_bandwidth_hz` (or `noise_floor_dbm` there; both None: no noise).
    """
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    num_taps = _positive_int(num_taps, "num_taps")
    tx, power_dbm = np.asarray(tx_iq), np.asarray(rx_power_dbm, dtype=np.float64)
    single = tx.ndim == 1
    tx, power_dbm = (tx[None], power_dbm[None]) if single else (tx, power_dbm)
    if tx.ndim != 2 or power_dbm.ndim != 2 or len(power_dbm) != len(tx):
        raise InputError(f"tx_iq {tx.shape}, rx_power_dbm {power_dbm.shape} must be [n, T], [n, R]")
    if snr_db is not None and noise_floor_dbm is not None:
        raise InputError("give snr_db or noise_floor_dbm, not both")
    if not np.all(np.isfinite(power_dbm)):
        raise InputError("rx_power_dbm must be finite")
    tx = tx.astype(np.complex64, copy=False)
    (n, num_samples), shape = tx.shape, power_dbm.shape
    offset_hz = _per_rx(tx_offset_hz, "tx_offset_hz", shape, per_sample=not single)
    offset_hz = offset_hz + _per_rx(rx_lo_offset_hz, "rx_lo_offset_hz", shape)
    noise_rms = None
    if snr_db is not None or noise_floor_dbm is not None:
        if snr_db is not None:
            noise_dbm = power_dbm - _per_rx(snr_db, "snr_db", shape)
        else:
            noise_dbm = _per_rx(noise_floor_dbm, "noise_floor_dbm", shape)
        # White noise over fs carries fs / B times the power it has inside the B-wide channel.
        bandwidth_hz = _positive_float(channel_bandwidth_hz, "channel_bandwidth_hz")
        noise_rms = np.sqrt(10.0 ** (noise_dbm / 10.0) * (fs / bandwidth_hz)).astype(np.float32)

    # Multipath: y = sum_k h_k x(t - tau_k). The delayed copies are shared by all receivers,
    # so only num_taps - 1 inverse FFTs per sample are needed (the first tap is undelayed).
    tap_power = np.exp(-np.arange(num_taps)) / np.exp(-np.arange(num_taps)).sum()
    k_lin = 10.0 ** (_per_rx(k_factor_db, "k_factor_db", shape) / 10.0)
    draws = rng.standard_normal((2, *shape, num_taps))
    taps = (draws[0] + 1j * draws[1]) * np.sqrt(tap_power / 2.0)  # [n, R, K]
    direct = np.exp(2j * np.pi * rng.random(shape)) * np.sqrt(tap_power[0])
    # Rician first tap: K/(K+1) of its power in the direct path, 1/(K+1) scattered.
    taps[..., 0] = direct * np.sqrt(k_lin / (k_lin + 1.0)) + taps[..., 0] / np.sqrt(k_lin + 1.0)
    delays_s = np.linspace(0.0, delay_spread_s, num_taps)
    threads = torch.get_num_threads()  # FFT threads follow torch's (1 in worker processes)
    copies = np.empty((n, num_taps, num_samples), dtype=np.complex64)
    copies[:, 0] = tx  # the first tap has no delay
    if num_taps > 1:
        delay_response = np.exp(-2j * np.pi * delays_s[1:, None] * sfft.fftfreq(num_samples, 1 / fs))
        spectrum = sfft.fft(tx, axis=-1, workers=threads)[:, None, :] * delay_response.astype(np.complex64)
        copies[:, 1:] = sfft.ifft(spectrum, axis=-1, workers=threads)
    # torch's vectorised Gaussian sampler (float32 pairs, viewed as complex) is several times
    # numpy's, and noise is most of the cost; its generator is seeded from `rng`, so the
    # same seed still gives the same bytes.
    generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    taps_t, copies_t = torch.from_numpy(taps.astype(np.complex64)), torch.from_numpy(copies)
    target_mw = torch.from_numpy((10.0 ** (power_dbm / 10.0)).astype(np.float32))
    out = np.empty((*shape, num_samples), dtype=np.complex64)
    out_t = torch.from_numpy(out)
    # One sample at a time keeps the working set in cache (these steps are memory-bound).
    for i in range(n):
        y = out_t[i]
        torch.matmul(taps_t[i], copies_t[i], out=y)
        # Dividing out each receiver's realised power makes the mean signal power exactly
        # rx_power_dbm (whatever the taps and the waveform's own power).
        realised = torch.linalg.vecdot(y, y).real / num_samples
        y.mul_(torch.sqrt(target_mw[i] / realised.clamp_min(1e-30))[:, None])
        _shift_in_place(out[i], offset_hz[i], fs)
        if noise_rms is not None:
            noise = torch.empty((*y.shape, 2)).normal_(generator=generator)  # each part N(0, 1)
            scale = torch.from_numpy(noise_rms[i] / np.float32(math.sqrt(2.0)))[:, None]
            y.addcmul_(torch.view_as_complex(noise), scale)
    return out[0] if single else out
