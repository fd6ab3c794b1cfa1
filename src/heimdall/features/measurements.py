"""Per-receiver measurements from IQ: channel power, noise floor, SNR, frequency offset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from heimdall.errors import InputError
from heimdall.features.arrays import iq_tensor
from heimdall.features.spectrogram import (
    DEFAULT_POWER_FLOOR_MW,
    mel_bank_for_stft,
    power_to_db,
    stft_pass,
)


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
    mean_power = power.cpu()
    f_hz = torch.fft.fftfreq(n_fft, d=1.0 / fs, dtype=torch.float64)
    in_channel = f_hz.abs() <= channel_bandwidth_hz / 2.0
    # Noise is read outside the channel (past a guard for FM splatter and LO error) and below
    # 0.45 fs, where a real receiver's anti-alias filter has not started to roll off.
    outside = (f_hz.abs() >= channel_bandwidth_hz / 2.0 + guard_hz) & (f_hz.abs() <= 0.45 * fs)
    if not outside.any() or not in_channel.any():
        raise InputError(f"sample_rate_hz {fs} leaves no bins outside the channel to read noise")
    # The median shrugs off adjacent-channel signals and splatter; with 32 averaged frames
    # it reads the noise < 0.1 dB low (median of a chi-square below its mean).
    # (A median picks one of the values, so taking it before the float64 sums changes nothing.)
    noise_per_bin = mean_power[..., outside].median(dim=-1).values.to(torch.float64)
    bin_width_hz = fs / n_fft
    channel = mean_power[..., in_channel].to(torch.float64)
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
    x, _ = iq_tensor(iq)
    mean_power = stft_pass(x, n_fft, hop_length, num_frames)[1]
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
    x, _ = iq_tensor(iq)
    fs = float(sample_rate_hz)
    bank = mel_bank_for_stft(int(n_fft), fs, int(n_mels), 0.0, None)
    mel, mean_power, _ = stft_pass(x, n_fft, hop_length, num_frames, mel_bank=bank)
    return features_from_spectra(mel, mean_power, fs, channel_bandwidth_hz, detection_snr_db)


def features_from_spectra(
    mel_mw: torch.Tensor,
    mean_power_mw: torch.Tensor,
    sample_rate_hz: float,
    channel_bandwidth_hz: float = 12_500.0,
    detection_snr_db: float = 3.0,
) -> tuple[NDArray[np.float32], IQMeasurements]:
    """`iq_features`' results from what `stft_pass` gives with a `mel_bank_for_stft` bank.

    For callers that run the STFT piecewise (one transmission at a time, into preallocated
    `mel_mw` [..., frames, n_mels] and `mean_power_mw` [..., n_fft]) and measure at the end.
    """
    fs = float(sample_rate_hz)
    measurements = _measure(mean_power_mw, fs, channel_bandwidth_hz, detection_snr_db, 2_000.0)
    return power_to_db(mel_mw, DEFAULT_POWER_FLOOR_MW).cpu().numpy(), measurements
