"""Audio content of transmissions: synthetic speech, tones, DTMF, and WAV files from disk.

Audio is float32 in [-1, 1] at the audio sample rate asked for (the IQ rate in practice);
`heimdall.sim.signals` frequency-modulates it onto a carrier.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import numpy as np
import scipy.fft as sfft
import torch
from numpy.typing import NDArray
from scipy.io import wavfile

from heimdall.errors import InputError, NotFoundError
from heimdall.sim.kernels import crossfade_envelope

__all__ = [
    "CTCSS_TONES_HZ", "DTMF_ROWS_HZ", "DTMF_COLUMNS_HZ", "DTMF_KEYS", "speech_like_audio",
    "tone_audio", "dtmf_audio", "AudioLibrary", "load_audio_dir",
    "positive_int", "positive_float", "normalise_peak",
]  # fmt: skip

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
#: Lowest rate the voiced sound of `speech_like_audio` is made at (its band ends near 3.4 kHz).
_MIN_VOICE_RATE_HZ = 8_000.0
#: Largest interpolation matrix `_smooth_noise` caches (16 MB of float32).
_MAX_INTERPOLATION_WEIGHTS = 1 << 22


def positive_int(value: int, name: str) -> int:
    """`value` as an int, or an InputError naming `name` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def positive_float(value: float, name: str) -> float:
    """`value` as a float, or an InputError naming `name` unless it is finite and > 0."""
    if not (math.isfinite(value) and value > 0.0):
        raise InputError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def normalise_peak(audio: NDArray[np.floating]) -> Float32Array:
    """Rows of `audio` minus their mean, scaled to peak 1 (silent rows stay zero)."""
    audio = audio - audio.mean(axis=-1, keepdims=True)
    peak = np.max(np.abs(audio), axis=-1, keepdims=True)
    return (audio / np.where(peak > 0.0, peak, 1.0)).astype(np.float32)


def _interpolation_points(num_samples: int, sample_rate_hz: float, rate_hz: float):
    """(index of the point before each sample, fraction of the way to the next) [T] each."""
    pos = (np.arange(num_samples) / sample_rate_hz).astype(np.float32) * np.float32(rate_hz)
    idx = pos.astype(np.int64)
    return idx, pos - idx


@functools.lru_cache(maxsize=16)
def _interpolation(num_samples: int, sample_rate_hz: float, rate_hz: float) -> Float32Array:
    """[points, num_samples] weights of linear interpolation between points 1/rate_hz apart."""
    idx, frac = _interpolation_points(num_samples, sample_rate_hz, rate_hz)
    weights = np.zeros((int(idx[-1]) + 2, num_samples), dtype=np.float32)
    weights[idx, np.arange(num_samples)] = 1.0 - frac
    weights[idx + 1, np.arange(num_samples)] = frac
    return weights


def _smooth_noise(rng: np.random.Generator, n: int, num_samples: int, sample_rate_hz: float, rate_hz: float):
    """[n, T] unit-variance Gaussian noise, linearly interpolated between points 1/rate apart."""
    idx, frac = _interpolation_points(num_samples, sample_rate_hz, rate_hz)
    coarse = rng.standard_normal((n, int(idx[-1]) + 2), dtype=np.float32)
    if coarse.shape[1] * num_samples <= _MAX_INTERPOLATION_WEIGHTS:
        # A product with the (cached) weight matrix: one BLAS call instead of two gathers, in
        # torch, whose thread count the synthesis pins (numpy's BLAS would start its own).
        weights = torch.from_numpy(_interpolation(num_samples, sample_rate_hz, rate_hz))
        return (torch.from_numpy(coarse) @ weights).numpy()
    return coarse[:, idx] * (1.0 - frac) + coarse[:, idx + 1] * frac


def speech_like_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float, batch_size: int | None = None
) -> Float32Array:
    """Synthetic speech-like audio at `sample_rate_hz`: zero mean, peak 1, float32.

    Voiced sound from a jittered 90-220 Hz pitch through three moving formants, band-limited
    to the 250 Hz-3 kHz radio audio band, under a ~4 Hz syllabic envelope with pauses.
    Returns [num_samples], or [batch_size, num_samples] when `batch_size` is given.
    """
    num_samples = positive_int(num_samples, "num_samples")
    fs = positive_float(sample_rate_hz, "sample_rate_hz")
    n = 1 if batch_size is None else positive_int(batch_size, "batch_size")
    # The voiced sound ends near 3.4 kHz, so it is made at a quarter (or third, half) of the
    # rate, where it costs that much less, and brought to `fs` by the inverse FFT itself:
    # zero bins above the low rate's Nyquist frequency interpolate it exactly.
    step = next(d for d in (4, 3, 2, 1) if num_samples % d == 0 and fs / d >= _MIN_VOICE_RATE_HZ or d == 1)
    low_fs, low_samples = fs / step, num_samples // step
    # Pitch: a base in the adult range, slow intonation and fast jitter, kept to 90-220 Hz.
    f0_hz = rng.uniform(95.0, 205.0, (n, 1)).astype(np.float32) * (
        1.0
        + 0.04 * _smooth_noise(rng, n, low_samples, low_fs, 3.0)
        + 0.01 * _smooth_noise(rng, n, low_samples, low_fs, 80.0)
    )
    cycles = np.cumsum(np.clip(f0_hz, 90.0, 220.0) / low_fs, axis=-1, dtype=np.float64)
    # Glottal source: a sawtooth (harmonics fall as 1/k, as after lip radiation) and breath.
    cycles -= np.floor(cycles)
    source = (cycles - 0.5).astype(np.float32)
    source += 0.03 * rng.standard_normal((n, low_samples), dtype=np.float32)
    spectrum = sfft.rfft(source, axis=-1)
    f_hz = sfft.rfftfreq(low_samples, 1.0 / low_fs).astype(np.float32)
    # Microphone and radio audio chain: 2nd-order high-pass at 250 Hz, 8th-order low-pass at 3 kHz.
    f64_hz = f_hz.astype(np.float64)
    band = (1 / np.sqrt((1 + (250 / np.maximum(f64_hz, 1.0)) ** 4) * (1 + (f64_hz / 3e3) ** 16))).astype(np.float32)
    # Three formants (Lorentzian resonances) drawn for the start and for the end of the clip;
    # the vocal tract moves between them by cross-fading the two filtered signals.
    halfwidths_hz = np.array([45.0, 60.0, 80.0], dtype=np.float32)
    gains = np.array([1.0, 0.6, 0.3], dtype=np.float32)
    filtered = []
    for _ in range(2):
        formants_hz = rng.uniform([300.0, 900.0, 2300.0], [800.0, 2300.0, 3000.0], (n, 3)).astype(np.float32)
        detune = (f_hz - formants_hz[..., None]) / halfwidths_hz[:, None]
        tract = 0.02 + np.einsum("k,nkf->nf", gains, 1 / (1 + detune**2))
        filtered.append(sfft.irfft(spectrum * (tract * band), num_samples))
    # Syllables at 3-5.5 Hz with varying loudness; in 30 % of clips a 80-250 ms pause. The
    # envelope changes over tens of ms, so it is drawn at the low rate and interpolated
    # while the two formant states are cross-faded.
    low_t_s = (np.arange(low_samples) * (step / fs)).astype(np.float32)
    rate_hz, phase = rng.uniform(3.0, 5.5, (n, 1)), rng.uniform(0.0, 2.0 * np.pi, (n, 1))
    cycle = (2.0 * np.pi * rate_hz).astype(np.float32) * low_t_s + phase.astype(np.float32)
    syllable = np.clip((np.sin(cycle) + 0.3) / 1.3, 0.0, 1.0)
    envelope = syllable * np.sqrt(syllable) * (0.7 + 0.3 * np.tanh(_smooth_noise(rng, n, low_samples, low_fs, 4.0)))
    centre_s = rng.uniform(0.0, num_samples / fs, (n, 1)).astype(np.float32)
    half_s = np.where(rng.random((n, 1)) < 0.3, rng.uniform(0.04, 0.125, (n, 1)), -1.0).astype(np.float32)
    envelope *= np.clip((np.abs(low_t_s - centre_s) - half_s) / 0.02, 0.0, 1.0)  # 20 ms ramps
    audio = np.empty((n, num_samples), dtype=np.float32)
    crossfade_envelope(filtered[0], filtered[1], np.ascontiguousarray(envelope, dtype=np.float32), step, audio)
    audio = normalise_peak(audio)
    return audio[0] if batch_size is None else audio


def tone_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float, ctcss_probability: float = 0.5
) -> tuple[Float32Array, float]:
    """(A 400-2500 Hz tone as float32 [num_samples] with peak 1; its frequency in Hz).

    With probability `ctcss_probability` a CTCSS tone at 15 % of full scale rides along."""
    t_s = np.arange(positive_int(num_samples, "num_samples")) / sample_rate_hz
    tone_hz = float(rng.uniform(400.0, 2500.0))
    audio = np.sin(2.0 * np.pi * tone_hz * t_s + rng.uniform(0.0, 2.0 * np.pi))
    if rng.random() < ctcss_probability:
        # Sub-audible squelch tones ride at ~10-15 % of the peak deviation.
        ctcss_hz = CTCSS_TONES_HZ[int(rng.integers(len(CTCSS_TONES_HZ)))]
        audio += 0.15 * np.sin(2.0 * np.pi * ctcss_hz * t_s + rng.uniform(0.0, 2.0 * np.pi))
    return normalise_peak(audio[None])[0], tone_hz


def dtmf_audio(
    rng: np.random.Generator, num_samples: int, sample_rate_hz: float
) -> tuple[Float32Array, str]:
    """(Audio float32 [num_samples], peak <= 1; the DTMF keys it sends, in order).

    Tones of 50-100 ms with 5 ms raised-cosine edges, gaps of 50-100 ms (exactly zero); the
    first tone starts 0-50 ms in and only whole tones are placed."""
    num_samples = positive_int(num_samples, "num_samples")
    fs = positive_float(sample_rate_hz, "sample_rate_hz")
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


@dataclass(frozen=True, eq=False)
class AudioLibrary:
    """Audio clips read from a directory of WAV files, mono float32 at one sample rate."""

    directory: str
    sample_rate_hz: float
    names: tuple[str, ...]
    clips: tuple[Float32Array, ...]

    def draw(self, rng: np.random.Generator, n: int, num_samples: int) -> Float32Array:
        """[n, num_samples] audio, peak 1: per row a clip chosen by `rng` from a random offset.

        A clip shorter than `num_samples` is followed by silence (as a short over is).
        """
        out = np.zeros((positive_int(n, "n"), positive_int(num_samples, "num_samples")), dtype=np.float32)
        for row in range(n):
            clip = self.clips[int(rng.integers(len(self.clips)))]
            start = int(rng.integers(max(len(clip) - num_samples, 0) + 1))
            piece = clip[start : start + num_samples]
            out[row, : len(piece)] = piece
        return normalise_peak(out)


def _read_wav(path: Path, sample_rate_hz: float) -> Float32Array:
    """One WAV file as mono float32 in [-1, 1] at `sample_rate_hz` (InputError naming it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks are fine
            rate_hz, data = wavfile.read(path)
    except (ValueError, EOFError, OSError) as exc:
        raise InputError(f"{path}: not a readable WAV file ({exc})") from exc
    if data.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        audio = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        audio = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif np.issubdtype(data.dtype, np.floating):
        audio = data.astype(np.float32)
    else:
        raise InputError(f"{path}: unsupported WAV sample format {data.dtype}")
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio  # stereo -> mono
    if audio.size == 0 or rate_hz <= 0:
        raise InputError(f"{path}: holds no audio")
    if not np.isfinite(audio).all():
        raise InputError(f"{path}: holds non-finite samples (NaN or inf)")
    ratio = Fraction(sample_rate_hz / rate_hz).limit_denominator(1000)
    if ratio != 1:
        # Imported here: scipy.signal takes 0.8 s to import, paid by every IQ worker otherwise.
        from scipy.signal import resample_poly

        audio = resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
    return audio


@functools.lru_cache(maxsize=4)
def load_audio_dir(directory: str, sample_rate_hz: float) -> AudioLibrary:
    """Every `*.wav` in `directory` (sorted by name): 8/16/24/32-bit PCM or float, mono or
    stereo (averaged), resampled to `sample_rate_hz` (scipy's polyphase resampler).

    Cached per process (worker processes read the files once). NotFoundError for a missing
    directory; InputError for a directory without WAV files or a file that cannot be read.
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotFoundError(f"audio directory {root} not found")
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not paths:
        raise InputError(f"audio directory {root} holds no .wav files")
    fs = positive_float(sample_rate_hz, "sample_rate_hz")
    clips = tuple(_read_wav(p, fs) for p in paths)
    return AudioLibrary(str(root), fs, tuple(p.name for p in paths), clips)
