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
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import scipy.fft as sfft
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.signal import lfilter, lfilter_zi

from heimdall.errors import InputError

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
CTCSS_TONES_HZ: tuple[float, ...] = (  # the 38 EIA/TIA-603 sub-audible tones
    67.0, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8, 97.4, 100.0, 103.5, 107.2,
    110.9, 114.8, 118.8, 123.0, 127.3, 131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 162.2,
    167.9, 173.8, 179.9, 186.2, 192.8, 203.5, 210.7, 218.1, 225.7, 233.6, 241.8, 250.3,
)  # fmt: skip
DTMF_ROWS_HZ: tuple[int, ...] = (697, 770, 852, 941)
DTMF_COLUMNS_HZ: tuple[int, ...] = (1209, 1336, 1477, 1633)
_KEYPAD = ("123A", "456B", "789C", "*0#D")  # rows top to bottom, as in ITU-T Q.23
DTMF_KEYS: Mapping[str, tuple[int, int]] = MappingProxyType(  # key -> (row, column) tone in Hz
    {k: (DTMF_ROWS_HZ[r], DTMF_COLUMNS_HZ[c]) for r in range(4) for c, k in enumerate(_KEYPAD[r])}
)

Float32Array = NDArray[np.float32]
Complex64Array = NDArray[np.complex64]


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _positive_float(value: float, name: str) -> float:
    if not (math.isfinite(value) and value > 0.0):
        raise InputError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def _normalise_peak(audio: NDArray[np.floating]) -> Float32Array:
    """Rows of `audio` minus their mean, scaled to peak 1 (silent rows stay zero)."""
    audio = audio - audio.mean(axis=-1, keepdims=True)
    peak = np.max(np.abs(audio), axis=-1, keepdims=True)
    return (audio / np.where(peak > 0.0, peak, 1.0)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, t_s: Float32Array, rate_hz: float):
    """[n, T] unit-variance Gaussian noise, linearly interpolated between points 1/rate apart."""
    pos = t_s * np.float32(rate_hz)
    coarse = rng.standard_normal((n, int(pos[-1]) + 2), dtype=np.float32)
    idx = pos.astype(np.int64)
    frac = pos - idx
    return coarse[:, idx] * (1.0 - frac) + coarse[:, idx + 1] * frac


def speech_like_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float, batch_size: int | None = None
) -> Float32Array:
    """Synthetic speech-like audio at `sample_rate_hz`: zero mean, peak 1, float32.

    Voiced sound from a jittered 90-220 Hz pitch through three moving formants, band-limited
    to the 250 Hz-3 kHz radio audio band, under a ~4 Hz syllabic envelope with pauses.
    Returns [num_samples], or [batch_size, num_samples] when `batch_size` is given.
    """
    num_samples = _positive_int(num_samples, "num_samples")
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    n = 1 if batch_size is None else _positive_int(batch_size, "batch_size")
    t_s = (np.arange(num_samples) / fs).astype(np.float32)
    # Pitch: a base in the adult range, slow intonation and fast jitter, kept to 90-220 Hz.
    f0_hz = rng.uniform(95.0, 205.0, (n, 1)).astype(np.float32) * (
        1.0 + 0.04 * _smooth_noise(rng, n, t_s, 3.0) + 0.01 * _smooth_noise(rng, n, t_s, 80.0)
    )
    cycles = np.cumsum(np.clip(f0_hz, 90.0, 220.0) / fs, axis=-1, dtype=np.float64)
    # Glottal source: a sawtooth (harmonics fall as 1/k, as after lip radiation) and breath.
    source = ((cycles % 1.0) - 0.5).astype(np.float32)
    source += 0.03 * rng.standard_normal((n, num_samples), dtype=np.float32)
    spectrum = sfft.rfft(source, axis=-1)
    f_hz = sfft.rfftfreq(num_samples, 1.0 / fs)
    # Microphone and radio audio chain: 2nd-order high-pass at 250 Hz, 8th-order low-pass at 3 kHz.
    band = 1 / np.sqrt((1 + (250 / np.maximum(f_hz, 1.0)) ** 4) * (1 + (f_hz / 3e3) ** 16))
    # Three formants (Lorentzian resonances) drawn for the start and for the end of the clip;
    # the vocal tract moves between them by cross-fading the two filtered signals.
    halfwidths_hz, gains = np.array([45.0, 60.0, 80.0]), np.array([1.0, 0.6, 0.3])
    filtered = []
    for _ in range(2):
        formants_hz = rng.uniform([300.0, 900.0, 2300.0], [800.0, 2300.0, 3000.0], (n, 3))
        detune = ((f_hz - formants_hz[..., None]) / halfwidths_hz[:, None]).astype(np.float32)
        tract = 0.02 + np.einsum("k,nkf->nf", gains.astype(np.float32), 1 / (1 + detune**2))
        filtered.append(sfft.irfft(spectrum * (tract * band.astype(np.float32)), num_samples))
    fade = t_s / max(t_s[-1], 1.0 / fs)
    voiced = filtered[0] + (filtered[1] - filtered[0]) * fade
    # Syllables at 3-5.5 Hz with varying loudness; in 30 % of clips a 80-250 ms pause.
    rate_hz, phase = rng.uniform(3.0, 5.5, (n, 1)), rng.uniform(0.0, 2.0 * np.pi, (n, 1))
    cycle = (2.0 * np.pi * rate_hz).astype(np.float32) * t_s + phase.astype(np.float32)
    syllable = np.clip((np.sin(cycle) + 0.3) / 1.3, 0.0, 1.0)
    envelope = syllable * np.sqrt(syllable) * (0.7 + 0.3 * np.tanh(_smooth_noise(rng, n, t_s, 4.0)))
    centre_s = rng.uniform(0.0, num_samples / fs, (n, 1))
    half_s = np.where(rng.random((n, 1)) < 0.3, rng.uniform(0.04, 0.125, (n, 1)), -1.0)
    envelope *= np.clip((np.abs(t_s - centre_s) - half_s) / 0.02, 0.0, 1.0)  # 20 ms ramps
    audio = _normalise_peak(voiced * envelope)
    return audio[0] if batch_size is None else audio


def tone_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float, ctcss_probability: float = 0.5
) -> tuple[Float32Array, float]:
    """(A 400-2500 Hz tone as float32 [num_samples] with peak 1; its frequency in Hz).

    With probability `ctcss_probability` a CTCSS tone at 15 % of full scale rides along."""
    t_s = np.arange(_positive_int(num_samples, "num_samples")) / sample_rate_hz
    tone_hz = float(rng.uniform(400.0, 2500.0))
    audio = np.sin(2.0 * np.pi * tone_hz * t_s + rng.uniform(0.0, 2.0 * np.pi))
    if rng.random() < ctcss_probability:
        # Sub-audible squelch tones ride at ~10-15 % of the peak deviation.
        ctcss_hz = CTCSS_TONES_HZ[int(rng.integers(len(CTCSS_TONES_HZ)))]
        audio += 0.15 * np.sin(2.0 * np.pi * ctcss_hz * t_s + rng.uniform(0.0, 2.0 * np.pi))
    return _normalise_peak(audio[None])[0], tone_hz


def dtmf_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float
) -> tuple[Float32Array, str]:
    """(Audio float32 [num_samples], peak <= 1; the DTMF keys it sends, in order).

    Tones of 50-100 ms with 5 ms raised-cosine edges, gaps of 50-100 ms (exactly zero); the
    first tone starts 0-50 ms in and only whole tones are placed."""
    num_samples = _positive_int(num_samples, "num_samples")
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    audio = np.zeros(num_samples, dtype=np.float32)
    ramp = max(1, int(0.005 * fs))
    # Raised-cosine edges keep key clicks from splattering outside the channel.
    edge = (0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)).astype(np.float32)
    keys, sent = "".join(DTMF_KEYS), []
    position = int(rng.uniform(0.0, 0.05) * fs)
    while position + (length := int(rng.uniform(0.05, 0.1) * fs)) <= num_samples:
        key = keys[int(rng.integers(len(keys)))]
        phase = 2.0 * np.pi * np.arange(length) / fs
        tone = 0.5 * np.sin(np.multiply.outer(phase, DTMF_KEYS[key])).sum(axis=-1)
        tone[:ramp] *= edge
        tone[length - ramp :] *= edge[::-1]
        audio[position : position + length] = tone  # float64 -> float32 on assignment
        sent.append(key)
        position += length + int(rng.uniform(0.05, 0.1) * fs)
    return audio, "".join(sent)


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
    frames of n_fft 2048 and hop 512."""

    sample_rate_hz: float = 48_000.0
    num_samples: int = 2048 + 31 * 512
    deviation_hz: float = NBFM_DEVIATION_HZ
    mix: tuple[float, float, float] = (0.9, 0.05, 0.05)
    pre_emphasis: bool = True

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
    if voice.any():
        audio[voice] = speech_like_audio(rng, num_samples, fs, batch_size=int(voice.sum()))
    for i in np.flatnonzero(~voice):
        audio[i] = (tone_audio if types[i] == "tone" else dtmf_audio)(rng, num_samples, fs)[0]
    if config.pre_emphasis:
        audio = _normalise_peak(pre_emphasis(audio, fs))
    return fm_modulate(audio, fs, config.deviation_hz), types


def _phasor(frequency_hz: NDArray[np.float64], num_samples: int, fs: float) -> Complex64Array:
    """exp(2j pi f t) for t = arange(num_samples) / fs, as [..., num_samples] complex64."""
    # An outer product of a coarse and a fine table (t = a * block + b): one complex multiply
    # per sample instead of one complex exponential.
    block = max(1, math.isqrt(num_samples))
    blocks = -(-num_samples // block)
    w = 2j * np.pi * frequency_hz[..., None] / fs
    fine = np.exp(w * np.arange(block)).astype(np.complex64)
    coarse = np.exp(w * (np.arange(blocks) * block)).astype(np.complex64)
    table = coarse[..., :, None] * fine[..., None, :]
    return table.reshape(*frequency_hz.shape, blocks * block)[..., :num_samples]


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
    # so only num_taps inverse FFTs per sample are needed, then a small matrix product.
    tap_power = np.exp(-np.arange(num_taps)) / np.exp(-np.arange(num_taps)).sum()
    k_lin = 10.0 ** (_per_rx(k_factor_db, "k_factor_db", shape) / 10.0)
    draws = rng.standard_normal((2, *shape, num_taps))
    taps = (draws[0] + 1j * draws[1]) * np.sqrt(tap_power / 2.0)
    direct = np.exp(2j * np.pi * rng.random(shape)) * np.sqrt(tap_power[0])
    # Rician first tap: K/(K+1) of its power in the direct path, 1/(K+1) scattered.
    taps[..., 0] = direct * np.sqrt(k_lin / (k_lin + 1.0)) + taps[..., 0] / np.sqrt(k_lin + 1.0)
    delays_s = np.linspace(0.0, delay_spread_s, num_taps)
    delay_response = np.exp(-2j * np.pi * delays_s[:, None] * sfft.fftfreq(num_samples, 1 / fs))
    spectrum = sfft.fft(tx, axis=-1, workers=-1)[:, None, :] * delay_response.astype(np.complex64)
    copies = sfft.ifft(spectrum, axis=-1, workers=-1)  # [n, K, T]
    # Each receiver's realised power is h^H G h, G the copies' Gram matrix; dividing it out
    # makes the mean signal power exactly rx_power_dbm.
    gram = np.matmul(np.conj(copies), copies.transpose(0, 2, 1)) / num_samples
    realised = np.einsum("nrk,nkl,nrl->nr", np.conj(taps), gram, taps).real
    taps *= np.sqrt(10.0 ** (power_dbm / 10.0) / np.maximum(realised, 1e-300))[..., None]
    taps = taps.astype(np.complex64)
    # torch's vectorised Gaussian sampler is ~2.5x numpy's, and noise is most of the cost;
    # its generator is seeded from `rng`, so the same seed still gives the same bytes.
    generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    out = np.empty((*shape, num_samples), dtype=np.complex64)
    # A few samples at a time keep the working set in cache (these steps are memory-bound).
    step = max(1, (1 << 17) // (shape[1] * num_samples))
    for i in range(0, n, step):
        rows = slice(i, i + step)
        np.matmul(taps[rows], copies[rows], out=out[rows])
        out[rows] *= _phasor(offset_hz[rows], num_samples, fs)
        if noise_rms is not None:
            noise = torch.randn(out[rows].shape, generator=generator, dtype=torch.complex64)
            out[rows] += noise.numpy() * noise_rms[rows][..., None]  # randn has E|z|^2 = 1
    return out[0] if single else out
