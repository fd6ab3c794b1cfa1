"""Baseband waveforms of narrow-band FM transmissions (the channel to each receiver is in
`heimdall.sim.channel`, re-exported here).

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

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heimdall.errors import InputError
from heimdall.sim.audio import (
    CTCSS_TONES_HZ,
    DTMF_COLUMNS_HZ,
    DTMF_KEYS,
    DTMF_ROWS_HZ,
    dtmf_audio,
    load_audio_dir,
    normalise_peak,
    positive_float,
    positive_int,
    speech_like_audio,
    tone_audio,
)
from heimdall.sim.channel import CHANNEL_BANDWIDTH_HZ, ChannelSettings, apply_channel, received_iq
from heimdall.sim.kernels import first_order_filter, fm_phase

__all__ = [
    "SignalType", "SIGNAL_TYPES", "CHANNEL_BANDWIDTH_HZ", "NBFM_DEVIATION_HZ",
    "WIDE_DEVIATION_HZ", "PRE_EMPHASIS_TIME_CONSTANT_S", "EMPHASIS_SHELF_HZ", "CTCSS_TONES_HZ",
    "DTMF_ROWS_HZ", "DTMF_COLUMNS_HZ", "DTMF_KEYS", "speech_like_audio", "tone_audio",
    "dtmf_audio", "pre_emphasis", "de_emphasis", "fm_modulate", "fm_demodulate",
    "WaveformConfig", "draw_signal_types", "transmitter_waveforms", "ChannelSettings", "apply_channel",
    "received_iq",
]  # fmt: skip

SignalType = Literal["voice", "tone", "dtmf"]
SIGNAL_TYPES: tuple[SignalType, ...] = ("voice", "tone", "dtmf")
NBFM_DEVIATION_HZ = 2_500.0
WIDE_DEVIATION_HZ = 5_000.0
PRE_EMPHASIS_TIME_CONSTANT_S = 750e-6
EMPHASIS_SHELF_HZ = 10_000.0  # above the voice band; bounds the boost as real networks do
Float32Array = NDArray[np.float32]
#: Waveforms made at once (16 x 17,920 float32 is 1 MB): each step is a pass over the batch.
_BATCH = 16
Complex64Array = NDArray[np.complex64]


def _emphasis(audio: ArrayLike, fs: float, tau_s: float, inverse: bool):
    """Bilinear transform of H(s) = (1 + s tau) / (1 + s tau_shelf) (unit gain at DC), or 1/H."""
    k = 2.0 * positive_float(fs, "sample_rate_hz")
    tau = positive_float(tau_s, "time_constant_s")
    tau_shelf = 1.0 / (2.0 * np.pi * EMPHASIS_SHELF_HZ)
    b = np.array([1.0 + k * tau, 1.0 - k * tau]) / (1.0 + k * tau_shelf)
    a = np.array([1.0, (1.0 - k * tau_shelf) / (1.0 + k * tau_shelf)])
    # Swapping b and a inverts the filter (stable: the pre-emphasis zero is inside the unit
    # circle). Both start in the steady state of the first sample, as if the audio had been
    # running (a step from silence would spike the high-pass), so the cascade is the identity.
    b, a = (a / b[0], b / b[0]) if inverse else (b, a)
    x = np.asarray(audio)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    if x.ndim == 0:
        raise InputError("audio must have a time axis, got a scalar")
    rows = np.ascontiguousarray(x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1]))
    out = np.empty(rows.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    first_order_filter(rows, b[0] / a[0], b[1] / a[0], a[1] / a[0], out)
    return out.reshape(x.shape)


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
    fs = positive_float(sample_rate_hz, "sample_rate_hz")
    x = np.asarray(audio, dtype=np.float32)
    rows = np.ascontiguousarray(x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1]) if x.ndim else x.reshape(1, 1))
    phase = np.empty(rows.shape, dtype=np.float32)
    fm_phase(rows, 2.0 * np.pi * float(deviation_hz) / fs, phase)
    iq = np.empty(x.shape, dtype=np.complex64)
    np.cos(phase.reshape(x.shape), out=iq.real)
    np.sin(phase.reshape(x.shape), out=iq.imag)
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
        positive_float(self.sample_rate_hz, "sample_rate_hz")
        positive_int(self.num_samples, "num_samples")
        positive_float(self.deviation_hz, "deviation_hz")
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
    types = draw_signal_types(rng, positive_int(n, "n"), config.mix)
    audio = np.empty((len(types), num_samples), dtype=np.float32)
    voice = types == "voice"
    voice_rows = np.flatnonzero(voice)
    if voice.any() and config.audio_dir is not None:
        audio[voice] = load_audio_dir(config.audio_dir, fs).draw(rng, int(voice.sum()), num_samples)
    else:
        # In batches small enough to stay in cache (each step is a pass over the batch).
        for start in range(0, len(voice_rows), _BATCH):
            rows = voice_rows[start : start + _BATCH]
            audio[rows] = speech_like_audio(rng, num_samples, fs, batch_size=len(rows))
    for i in np.flatnonzero(~voice):
        audio[i] = (tone_audio if types[i] == "tone" else dtmf_audio)(rng, num_samples, fs)[0]
    iq = np.empty(audio.shape, dtype=np.complex64)
    for start in range(0, len(audio), _BATCH):
        batch = audio[start : start + _BATCH]
        batch = normalise_peak(pre_emphasis(batch, fs)) if config.pre_emphasis else batch
        iq[start : start + _BATCH] = fm_modulate(batch, fs, config.deviation_hz)
    return iq, types
