"""Baseband waveforms of narrow-band FM transmissions and the channel to each receiver.

Conventions used throughout (and by `heimdall.features`):

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
from numpy.typing import ArrayLike, NDArray
from scipy.io import wavfile
from scipy.signal import lfilter, resample_poly

from heimdall.errors import InputError
from heimdall.sim._signal_audio import (
    CTCSS_TONES_HZ,
    DTMF_COLUMNS_HZ,
    DTMF_KEYS,
    DTMF_ROWS_HZ,
    dtmf_audio,
    dtmf_tone,
    speech_like_audio,
    tone_audio,
)

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
