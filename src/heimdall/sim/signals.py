"""Baseband waveforms of narrow-band FM transmissions and the channel to each receiver.

Conventions used here and by `heimdall.features`:

- Audio is float32 in [-1, 1]; an audio value of 1 swings the carrier by the full deviation.
- IQ is complex64 baseband at `sample_rate_hz`, centred on the nominal channel frequency.
- Power: IQ samples are in sqrt(mW), so `10 log10(mean |x|^2)` is the power in dBm. The
  transmitted waveform has unit power (0 dBm in this convention); the channel sets the level.
- SNR: `snr_db` is the signal power over the noise power inside the `CHANNEL_BANDWIDTH_HZ`
  (12.5 kHz) channel. The noise added is white over the whole sample rate, so its total power
  is the in-channel noise power plus `10 log10(sample_rate_hz / 12.5 kHz)` dB (5.85 dB at
  48 kHz).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import scipy.fft as sfft
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.io import wavfile
from scipy.signal import lfilter, resample_poly

from heimdall.errors import InputError

__all__ = [
    "SignalType",
    "SIGNAL_TYPES",
    "CHANNEL_BANDWIDTH_HZ",
    "NBFM_DEVIATION_HZ",
    "WIDE_DEVIATION_HZ",
    "PRE_EMPHASIS_TIME_CONSTANT_S",
    "CTCSS_TONES_HZ",
    "DTMF_ROWS_HZ",
    "DTMF_COLUMNS_HZ",
    "DTMF_KEYS",
    "speech_like_audio",
    "audio_from_directory",
    "tone_audio",
    "dtmf_tone",
    "dtmf_audio",
    "pre_emphasis",
    "de_emphasis",
    "fm_modulate",
    "fm_demodulate",
    "WaveformConfig",
    "draw_signal_types",
    "transmitter_waveforms",
    "apply_channel",
]

SignalType = Literal["voice", "tone", "dtmf"]
SIGNAL_TYPES: tuple[SignalType, ...] = ("voice", "tone", "dtmf")
CHANNEL_BANDWIDTH_HZ = 12_500.0
NBFM_DEVIATION_HZ = 2_500.0
WIDE_DEVIATION_HZ = 5_000.0
PRE_EMPHASIS_TIME_CONSTANT_S = 750e-6
CTCSS_TONES_HZ: tuple[float, ...] = (
    67.0, 71.9, 74.4, 77.0, 79.7, 82.5, 85.4, 88.5, 91.5, 94.8, 97.4, 100.0, 103.5, 107.2,
    110.9, 114.8, 118.8, 123.0, 127.3, 131.8, 136.5, 141.3, 146.2, 151.4, 156.7, 162.2,
    167.9, 173.8, 179.9, 186.2, 192.8, 203.5, 210.7, 218.1, 225.7, 233.6, 241.8, 250.3,
)  # fmt: skip
"""The 38 EIA/TIA-603 CTCSS sub-audible tones (Hz)."""
DTMF_ROWS_HZ: tuple[int, ...] = (697, 770, 852, 941)
DTMF_COLUMNS_HZ: tuple[int, ...] = (1209, 1336, 1477, 1633)
_DTMF_LAYOUT = ("123A", "456B", "789C", "*0#D")  # keypad rows top to bottom (ITU-T Q.23)
DTMF_KEYS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        key: (DTMF_ROWS_HZ[row], DTMF_COLUMNS_HZ[col])
        for row, keys in enumerate(_DTMF_LAYOUT)
        for col, key in enumerate(keys)
    }
)
"""Key -> (row tone, column tone) in Hz."""

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


def _normalise_peak(audio: NDArray[np.float64]) -> Float32Array:
    """Rows of `audio` minus their mean, scaled to peak 1 (silent rows stay zero)."""
    audio = audio - audio.mean(axis=-1, keepdims=True)
    peak = np.max(np.abs(audio), axis=-1, keepdims=True)
    return (audio / np.where(peak > 0.0, peak, 1.0)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, t_s: NDArray[np.float64], rate_hz: float):
    """[n, T] unit-variance Gaussian noise linearly interpolated from points `rate_hz` apart."""
    pos = t_s * rate_hz
    coarse = rng.standard_normal((n, int(pos[-1]) + 2))
    idx = pos.astype(np.int64)
    frac = pos - idx
    return coarse[:, idx] * (1.0 - frac) + coarse[:, idx + 1] * frac


def _speech_batch(rng: np.random.Generator, n: int, num_samples: int, sample_rate_hz: float):
    """[n, num_samples] speech-like audio; see `speech_like_audio`."""
    t_s = np.arange(num_samples) / sample_rate_hz
    # Pitch: a base in the adult range with slow intonation and jitter, clipped to 90-220 Hz.
    f0_hz = rng.uniform(95.0, 205.0, (n, 1)) * (
        1.0 + 0.04 * _smooth_noise(rng, n, t_s, 3.0) + 0.01 * _smooth_noise(rng, n, t_s, 80.0)
    )
    f0_hz = np.clip(f0_hz, 90.0, 220.0)
    # Glottal source: a sawtooth (harmonics fall as 1/k, like the glottal flow derivative
    # after lip radiation) plus a little aspiration noise.
    cycles = np.cumsum(f0_hz / sample_rate_hz, axis=-1)
    source = (cycles % 1.0) - 0.5 + 0.03 * rng.standard_normal((n, num_samples))
    spectrum = sfft.rfft(source, axis=-1)
    f_hz = sfft.rfftfreq(num_samples, 1.0 / sample_rate_hz)
    # Microphone/radio audio chain: 2nd-order high-pass at 250 Hz, 8th-order low-pass at 3 kHz.
    band = 1.0 / np.sqrt((1.0 + (250.0 / np.maximum(f_hz, 1.0)) ** 4) * (1.0 + (f_hz / 3e3) ** 16))
    # Three formants (Lorentzian resonances) at the start and at the end of the clip; the
    # vocal tract moves between them by cross-fading the two filtered signals.
    centres = np.array([[300.0, 900.0, 2300.0], [800.0, 2300.0, 3000.0]])
    halfwidths_hz = np.array([45.0, 60.0, 80.0])
    gains = np.array([1.0, 0.6, 0.3])
    out = []
    for _ in range(2):
        formants_hz = rng.uniform(centres[0], centres[1], (n, 3))
        detune = (f_hz[None, None, :] - formants_hz[..., None]) / halfwidths_hz[:, None]
        tract = 0.02 + np.einsum("k,nkf->nf", gains, 1.0 / (1.0 + detune**2))
        out.append(sfft.irfft(spectrum * tract * band, n=num_samples, axis=-1))
    fade = t_s / t_s[-1] if num_samples > 1 else np.zeros(1)
    voiced = out[0] * (1.0 - fade) + out[1] * fade
    # Syllables at 3-5.5 Hz with varying loudness, and in some clips a pause of 80-250 ms.
    rate_hz = rng.uniform(3.0, 5.5, (n, 1))
    phase = rng.uniform(0.0, 2.0 * np.pi, (n, 1))
    envelope = np.clip((np.sin(2.0 * np.pi * rate_hz * t_s + phase) + 0.3) / 1.3, 0.0, 1.0) ** 1.5
    envelope *= 0.7 + 0.3 * np.tanh(_smooth_noise(rng, n, t_s, 4.0))
    centre_s = rng.uniform(0.0, t_s[-1] + 1.0 / sample_rate_hz, (n, 1))
    half_s = np.where(rng.random((n, 1)) < 0.3, rng.uniform(0.04, 0.125, (n, 1)), -1.0)
    envelope *= np.clip((np.abs(t_s - centre_s) - half_s) / 0.02, 0.0, 1.0)  # 20 ms ramps
    return _normalise_peak(voiced * envelope)


def speech_like_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float, batch_size: int | None = None
) -> Float32Array:
    """Synthetic speech-like audio at `sample_rate_hz`, zero mean, peak 1.

    Voiced sound from a jittered 90-220 Hz pitch through three moving formants, band-limited
    to the 250 Hz-3 kHz radio audio band, under a ~4 Hz syllabic envelope with pauses.
    Returns [num_samples], or [batch_size, num_samples] when `batch_size` is given.
    """
    num_samples = _positive_int(num_samples, "num_samples")
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    n = 1 if batch_size is None else _positive_int(batch_size, "batch_size")
    audio = _speech_batch(rng, n, num_samples, fs)
    return audio[0] if batch_size is None else audio


def audio_from_directory(
    path: str | Path, rng: np.random.Generator, num_samples: int, sample_rate_hz: float
) -> Float32Array:
    """A random `num_samples` stretch of a random WAV file under `path` (recursive).

    The file is mixed to mono, resampled to `sample_rate_hz`, looped if too short, and the
    stretch is returned with zero mean and peak 1 (float32 [num_samples]).
    """
    num_samples = _positive_int(num_samples, "num_samples")
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    files = sorted(Path(path).rglob("*.wav")) if Path(path).is_dir() else []
    if not files:
        raise InputError(f"no .wav files found under {path}")
    chosen = files[int(rng.integers(len(files)))]
    try:
        file_rate_hz, data = wavfile.read(chosen)
    except ValueError as exc:
        raise InputError(f"cannot read WAV file {chosen}: {exc}") from exc
    audio = np.asarray(data, dtype=np.float64)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.size == 0:
        raise InputError(f"WAV file {chosen} is empty")
    ratio = math.gcd(int(round(fs)), int(file_rate_hz))
    audio = resample_poly(audio, int(round(fs)) // ratio, int(file_rate_hz) // ratio)
    audio = np.tile(audio, -(-num_samples // audio.size))
    start = int(rng.integers(audio.size - num_samples + 1))
    return _normalise_peak(audio[None, start : start + num_samples])[0]


def tone_audio(
    rng: np.random.Generator,
    num_samples: int,
    sample_rate_hz: float,
    ctcss_probability: float = 0.5,
) -> tuple[Float32Array, float]:
    """A 400-2500 Hz tone (random phase) with, at `ctcss_probability`, a CTCSS tone at 15 %.

    Returns (audio float32 [num_samples] with peak 1, tone frequency in Hz).
    """
    num_samples = _positive_int(num_samples, "num_samples")
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    t_s = np.arange(num_samples) / fs
    tone_hz = float(rng.uniform(400.0, 2500.0))
    audio = np.sin(2.0 * np.pi * tone_hz * t_s + rng.uniform(0.0, 2.0 * np.pi))
    if rng.random() < ctcss_probability:
        # Sub-audible squelch tones are sent at ~10-15 % of peak deviation.
        ctcss_hz = CTCSS_TONES_HZ[int(rng.integers(len(CTCSS_TONES_HZ)))]
        audio = audio + 0.15 * np.sin(2.0 * np.pi * ctcss_hz * t_s + rng.uniform(0, 2 * np.pi))
    return _normalise_peak(audio[None])[0], tone_hz


def dtmf_tone(key: str, num_samples: int, sample_rate_hz: float) -> Float32Array:
    """One DTMF key as float32 [num_samples]: its row and column tones at half amplitude each."""
    if key not in DTMF_KEYS:
        raise InputError(f"unknown DTMF key {key!r}; expected one of {''.join(DTMF_KEYS)}")
    row_hz, col_hz = DTMF_KEYS[key]
    t_s = np.arange(_positive_int(num_samples, "num_samples")) / sample_rate_hz
    tone = np.sin(2 * np.pi * row_hz * t_s) + np.sin(2 * np.pi * col_hz * t_s)
    return (0.5 * tone).astype(np.float32)


def dtmf_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float
) -> tuple[Float32Array, str]:
    """A sequence of DTMF keys: 50-100 ms tones with 5 ms raised-cosine edges, 50-100 ms gaps.

    Returns (audio float32 [num_samples], peak <= 1, the keys sent in order). The first tone
    starts 0-50 ms in; only whole tones are placed, and gaps are exactly zero.
    """
    num_samples = _positive_int(num_samples, "num_samples")
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    audio = np.zeros(num_samples, dtype=np.float32)
    keys = "".join(DTMF_KEYS)
    ramp = int(0.005 * fs)
    digits = []
    position = int(rng.uniform(0.0, 0.05) * fs)
    while True:
        length = int(rng.uniform(0.05, 0.1) * fs)
        if position + length > num_samples:
            break
        key = keys[int(rng.integers(len(keys)))]
        tone = dtmf_tone(key, length, fs)
        # Raised-cosine edges keep key clicks from splattering outside the channel.
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / max(ramp, 1))
        tone[:ramp] *= edge
        tone[length - ramp :] *= edge[::-1]
        audio[position : position + length] = tone
        digits.append(key)
        position += length + int(rng.uniform(0.05, 0.1) * fs)
    return audio, "".join(digits)


def _emphasis_coefficients(fs: float, time_constant_s: float, shelf_hz: float):
    """Bilinear-transform (b, a) of H(s) = (1 + s tau) / (1 + s tau_shelf), unit gain at DC."""
    k = 2.0 * _positive_float(fs, "sample_rate_hz")
    tau = _positive_float(time_constant_s, "time_constant_s")
    tau_shelf = 1.0 / (2.0 * np.pi * _positive_float(shelf_hz, "shelf_frequency_hz"))
    b = np.array([1.0 + k * tau, 1.0 - k * tau]) / (1.0 + k * tau_shelf)
    a = np.array([1.0, (1.0 - k * tau_shelf) / (1.0 + k * tau_shelf)])
    return b, a


def _filter(audio: ArrayLike, b: NDArray[np.float64], a: NDArray[np.float64]):
    x = np.asarray(audio)
    out = lfilter(b, a, x.astype(np.float64), axis=-1)
    return out if x.dtype == np.float64 else out.astype(np.float32)


def pre_emphasis(
    audio: ArrayLike,
    sample_rate_hz: float,
    time_constant_s: float = PRE_EMPHASIS_TIME_CONSTANT_S,
    shelf_frequency_hz: float = 10_000.0,
) -> NDArray[np.floating]:
    """FM pre-emphasis along the last axis: a first-order high-pass shelf, unit gain at DC.

    The zero sits at 1 / (2 pi tau) (212 Hz for the 750 us NBFM standard); a pole at
    `shelf_frequency_hz` (above the ~3 kHz voice band) bounds the boost, as real emphasis
    networks do. Float64 in -> float64 out, anything else -> float32.
    """
    return _filter(audio, *_emphasis_coefficients(sample_rate_hz, time_constant_s, shelf_frequency_hz))


def de_emphasis(
    audio: ArrayLike,
    sample_rate_hz: float,
    time_constant_s: float = PRE_EMPHASIS_TIME_CONSTANT_S,
    shelf_frequency_hz: float = 10_000.0,
) -> NDArray[np.floating]:
    """The exact inverse of `pre_emphasis` with the same arguments (a first-order low shelf)."""
    b, a = _emphasis_coefficients(sample_rate_hz, time_constant_s, shelf_frequency_hz)
    # Zero state on both sides makes the cascade the identity; the swapped filter is stable
    # because the pre-emphasis zero lies inside the unit circle.
    return _filter(audio, a / b[0], b / b[0])


def fm_modulate(
    audio: ArrayLike, sample_rate_hz: float, deviation_hz: float = NBFM_DEVIATION_HZ
) -> Complex64Array:
    """Unit-amplitude FM along the last axis: phase = 2 pi deviation_hz cumsum(audio) / fs."""
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    # Phase in float64: accumulated over many samples, float32 would drift audibly.
    phase = (2.0 * np.pi * deviation_hz / fs) * np.cumsum(np.asarray(audio, np.float64), axis=-1)
    wrapped = np.remainder(phase, 2.0 * np.pi).astype(np.float32)
    iq = np.empty(wrapped.shape, dtype=np.complex64)
    iq.real, iq.imag = np.cos(wrapped), np.sin(wrapped)
    return iq


def fm_demodulate(iq: ArrayLike, sample_rate_hz: float) -> Float32Array:
    """Instantaneous frequency in Hz from the phase difference of successive samples.

    Returns float32 [..., T-1]: element i is the frequency between samples i and i+1.
    """
    x = np.asarray(iq)
    dphi = np.angle(x[..., 1:] * np.conj(x[..., :-1]))
    return (dphi * (sample_rate_hz / (2.0 * np.pi))).astype(np.float32)


@dataclass(frozen=True)
class WaveformConfig:
    """How transmitted waveforms are drawn.

    The default length, 2048 + 31 * 512 = 17920 samples (373 ms at 48 kHz), gives exactly 32
    STFT frames of n_fft 2048 and hop 512. `mix` is the probability of voice, tone and DTMF.
    """

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

    @property
    def duration_s(self) -> float:
        """Length of one waveform in seconds."""
        return self.num_samples / self.sample_rate_hz


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
    """`n` transmitted FM baseband waveforms at unit power and their signal types.

    Returns (iq complex64 [n, config.num_samples], signal types [n]). Audio is pre-emphasised
    when `config.pre_emphasis`, then rescaled to peak 1 so the peak deviation is exactly
    `config.deviation_hz` (a transmitter's deviation limiter does the same).
    """
    config = config or WaveformConfig()
    n = _positive_int(n, "n")
    fs, num_samples = config.sample_rate_hz, config.num_samples
    types = draw_signal_types(rng, n, config.mix)
    audio = np.empty((n, num_samples), dtype=np.float32)
    voice = types == "voice"
    if voice.any():
        audio[voice] = _speech_batch(rng, int(voice.sum()), num_samples, fs)
    for i in np.flatnonzero(~voice):
        audio[i] = (tone_audio if types[i] == "tone" else dtmf_audio)(rng, num_samples, fs)[0]
    if config.pre_emphasis:
        emphasised = pre_emphasis(audio, fs)
        peak = np.max(np.abs(emphasised), axis=-1, keepdims=True)
        audio = emphasised / np.where(peak > 0.0, peak, 1.0)
    return fm_modulate(audio, fs, config.deviation_hz), types


def _phasor(frequency_hz: NDArray[np.float64], num_samples: int, fs: float) -> Complex64Array:
    """exp(2j pi f t) for t = arange(num_samples) / fs, [..., num_samples] complex64.

    Built as the outer product of a coarse and a fine table (t = a * block + b), so it costs
    one complex multiply per sample instead of one complex exponential.
    """
    block = max(1, math.isqrt(num_samples))
    blocks = -(-num_samples // block)
    w = 2j * np.pi * frequency_hz[..., None] / fs
    fine = np.exp(w * np.arange(block)).astype(np.complex64)
    coarse = np.exp(w * (np.arange(blocks) * block)).astype(np.complex64)
    out = coarse[..., :, None] * fine[..., None, :]
    return out.reshape(*frequency_hz.shape, blocks * block)[..., :num_samples]


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
    """What each of R receivers records of one transmission: complex64 [n, R, T] (or [R, T]).

    `tx_iq` is [n, T] (or [T]); `rx_power_dbm` is [n, R] (or [R]) and sets the mean signal
    power exactly (samples in sqrt(mW)); small-scale fading belongs in it (see
    `heimdall.sim.propagation.fading_gain_db`), so the multipath below only shapes phase and
    spectrum: `num_taps` taps evenly spaced over [0, `delay_spread_s`] with an exp(-k) power
    profile, the first Rician with `k_factor_db`, the others Rayleigh, and the realised gain
    divided out. The carrier is then shifted by `tx_offset_hz` ([n] or scalar, the
    transmitter's oscillator error) plus `rx_lo_offset_hz` ([n, R], [R] or scalar, the
    receiver's LO error). Noise is white complex Gaussian over the whole `sample_rate_hz`,
    with in-channel power (over `channel_bandwidth_hz`) of `rx_power_dbm - snr_db`, or of
    `noise_floor_dbm` when `snr_db` is None; both None gives a noise-free channel.
    """
    fs = _positive_float(sample_rate_hz, "sample_rate_hz")
    num_taps = _positive_int(num_taps, "num_taps")
    tx = np.asarray(tx_iq)
    power_dbm = np.asarray(rx_power_dbm, dtype=np.float64)
    single = tx.ndim == 1
    if tx.ndim not in (1, 2) or power_dbm.ndim != tx.ndim:
        raise InputError(
            f"tx_iq [n, T] needs rx_power_dbm [n, R] (or [T] and [R]), got {tx.shape} and "
            f"{power_dbm.shape}"
        )
    tx, power_dbm = np.atleast_2d(tx).astype(np.complex64), np.atleast_2d(power_dbm)
    n, num_samples = tx.shape
    if power_dbm.shape[0] != n or not np.all(np.isfinite(power_dbm)):
        raise InputError(f"rx_power_dbm must be finite with {n} rows, got shape {power_dbm.shape}")
    num_rx = power_dbm.shape[1]
    if snr_db is not None and noise_floor_dbm is not None:
        raise InputError("give snr_db or noise_floor_dbm, not both")

    def per_rx(value: ArrayLike, name: str) -> NDArray[np.float64]:
        """`value` broadcast to [n, R]; a 1-D `tx_offset_hz` is per sample, not per receiver."""
        arr = np.asarray(value, dtype=np.float64)
        if name == "tx_offset_hz" and arr.ndim == 1 and not single:
            arr = arr[:, None]
        try:
            arr = np.broadcast_to(arr, (n, num_rx))
        except ValueError as exc:
            raise InputError(f"{name} of shape {arr.shape} does not fit [n, R]") from exc
        if np.any(np.isnan(arr)):
            raise InputError(f"{name} must not be NaN")
        return arr

    # Multipath: y = sum_k h_k x(t - tau_k). The delayed copies are shared by all receivers,
    # so only num_taps inverse FFTs per sample are needed, then a small matrix product.
    delays_s = np.linspace(0.0, delay_spread_s, num_taps)
    tap_power = np.exp(-np.arange(num_taps))
    tap_power /= tap_power.sum()
    k_lin = 10.0 ** (per_rx(k_factor_db, "k_factor_db") / 10.0)
    draws = rng.standard_normal((2, n, num_rx, num_taps))
    taps = (draws[0] + 1j * draws[1]) * np.sqrt(tap_power / 2.0)
    direct = np.exp(2j * np.pi * rng.random((n, num_rx))) * np.sqrt(tap_power[0])
    # Rician first tap: K/(K+1) of its power in the direct path, 1/(K+1) scattered.
    taps[..., 0] = direct * np.sqrt(k_lin / (k_lin + 1.0)) + taps[..., 0] / np.sqrt(k_lin + 1.0)
    f_hz = sfft.fftfreq(num_samples, 1.0 / fs)
    delay_response = np.exp(-2j * np.pi * delays_s[:, None] * f_hz).astype(np.complex64)
    spectrum = sfft.fft(tx, axis=-1, workers=-1)
    copies = sfft.ifft(spectrum[:, None, :] * delay_response, axis=-1, workers=-1)  # [n, K, T]
    # Realised power of each receiver's sum is h^H G h with G the copies' Gram matrix; it is
    # divided out so the mean signal power is exactly rx_power_dbm.
    gram = np.matmul(np.conj(copies), copies.transpose(0, 2, 1)) / num_samples
    realised = np.einsum("nrk,nkl,nrl->nr", np.conj(taps), gram, taps).real
    taps *= np.sqrt(10.0 ** (power_dbm / 10.0) / np.maximum(realised, 1e-300))[..., None]
    offset_hz = per_rx(tx_offset_hz, "tx_offset_hz") + per_rx(rx_lo_offset_hz, "rx_lo_offset_hz")
    noise_rms = None
    if snr_db is not None or noise_floor_dbm is not None:
        if snr_db is not None:
            noise_dbm = power_dbm - per_rx(snr_db, "snr_db")
        else:
            noise_dbm = per_rx(noise_floor_dbm, "noise_floor_dbm")
        bandwidth_hz = _positive_float(channel_bandwidth_hz, "channel_bandwidth_hz")
        # White noise over fs carries fs / B times the power it has inside the B-wide channel.
        noise_rms = np.sqrt(10.0 ** (noise_dbm / 10.0) * (fs / bandwidth_hz)).astype(np.float32)
    # torch's vectorised Gaussian sampler is ~2.5x numpy's, and noise is most of the cost;
    # its generator is seeded from `rng`, so the same seed still gives the same bytes.
    generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    taps = taps.astype(np.complex64)
    out = np.empty((n, num_rx, num_samples), dtype=np.complex64)
    # A few samples at a time keep the working set in cache (the steps are memory-bound).
    step = max(1, (1 << 17) // (num_rx * num_samples))
    for i in range(0, n, step):
        rows = slice(i, i + step)
        np.matmul(taps[rows], copies[rows], out=out[rows])
        out[rows] *= _phasor(offset_hz[rows], num_samples, fs)
        if noise_rms is not None:
            shape = out[rows].shape
            noise = torch.randn(shape, generator=generator, dtype=torch.complex64)
            noise_np = noise.numpy()
            noise_np *= noise_rms[rows][..., None]  # complex randn has E|z|^2 = 1
            out[rows] += noise_np
    return out[0] if single else out
