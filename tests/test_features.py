"""Tests for heimdall.features against scipy references and the simulator's conventions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch

from heimdall.errors import InputError
from heimdall.features import (
    augment_features,
    compute_mfcc,
    dct_matrix,
    iq_features,
    iq_to_mel_spectrogram,
    measure_iq,
    mel_filterbank,
    mel_to_hz,
    normalize_features,
    power_spectrogram,
)
from heimdall.features.arrays import all_finite
from heimdall.features.measurements import features_from_spectra
from heimdall.features.spectrogram import _stft_cpu, _stft_torch, mel_bank_for_stft, stft_pass
from heimdall.sim.signals import ChannelSettings, WaveformConfig, apply_channel, transmitter_waveforms

FS_HZ = 48_000.0
N_FFT = 2048
NUM_SAMPLES = WaveformConfig().num_samples  # 32 frames of hop 512


def complex_tone(frequency_hz: float, power_dbm: float = -80.0) -> np.ndarray:
    t_s = np.arange(NUM_SAMPLES) / FS_HZ
    amplitude = np.sqrt(10.0 ** (power_dbm / 10.0))
    return (amplitude * np.exp(2j * np.pi * frequency_hz * t_s)).astype(np.complex64)


def noisy_signal(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(NUM_SAMPLES) + 1j * rng.standard_normal(NUM_SAMPLES)) * 1e-6
    return (complex_tone(1_500.0) + noise).astype(np.complex64)


def test_mel_filterbank_covers_the_band_with_ordered_triangles() -> None:
    bank = mel_filterbank(N_FFT, FS_HZ).numpy()
    assert bank.shape == (128, N_FFT)
    assert np.all(bank.sum(axis=1) > 0.0)
    f_hz = (np.arange(N_FFT) - N_FFT // 2) * FS_HZ / N_FFT
    # Every bin strictly inside (0, fs/2) in magnitude feeds some filter.
    interior = (np.abs(f_hz) > 0.0) & (np.abs(f_hz) < FS_HZ / 2.0)
    assert np.all(bank[:, interior].sum(axis=0) > 0.0)
    peaks_hz = f_hz[np.argmax(bank, axis=1)]
    assert np.all(np.diff(peaks_hz) > 0.0)  # rows run from -fs/2 up to +fs/2
    assert np.all(peaks_hz[:64] < 0.0) and np.all(peaks_hz[64:] > 0.0)
    # The negative half mirrors the positive half about DC.
    mirror = np.arange(1, N_FFT)  # bin j <-> bin N_FFT - j (frequency f <-> -f)
    np.testing.assert_allclose(bank[:64][::-1][:, mirror], bank[64:][:, N_FFT - mirror], atol=1e-6)
    assert np.isclose(bank.max(), 1.0, atol=0.05)  # HTK triangles peak near 1


def test_offset_sign_picks_mirrored_mel_bins() -> None:
    mel_db = iq_to_mel_spectrogram(np.stack([complex_tone(3_000.0), complex_tone(-3_000.0)]), FS_HZ)
    assert mel_db.shape == (2, 128, 32)
    up, down = np.argmax(mel_db.mean(axis=-1), axis=-1)
    assert up >= 64 and down == 127 - up
    edges_hz = mel_to_hz(np.linspace(0.0, 2595.0 * np.log10(1.0 + 24_000.0 / 700.0), 66))
    assert edges_hz[up - 64] < 3_000.0 < edges_hz[up - 64 + 2]  # inside its triangle


def test_mel_spectrogram_matches_a_scipy_reference() -> None:
    x = np.stack([noisy_signal(0), noisy_signal(1)])
    ours = iq_to_mel_spectrogram(x, FS_HZ)
    window = scipy.signal.get_window("hann", N_FFT)
    _, _, z = scipy.signal.stft(
        x.astype(np.complex128), FS_HZ, window=window, nperseg=N_FFT, noverlap=N_FFT - 512,
        boundary=None, padded=False, return_onesided=False, scaling="spectrum",
    )  # fmt: skip
    # scipy's "spectrum" scaling divides by sum(w); bins in mW divide |X|^2 by n_fft sum(w^2).
    power = np.abs(z * window.sum()) ** 2 / (N_FFT * np.sum(window**2))
    power = np.fft.fftshift(power, axes=-2)[..., :32]
    bank = mel_filterbank(N_FFT, FS_HZ).numpy()
    reference = 10.0 * np.log10(np.einsum("mf,bft->bmt", bank, power))
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(power_spectrogram(x), power, rtol=1e-3, atol=1e-18)


def test_bins_of_a_frame_sum_to_its_power() -> None:
    power = power_spectrogram(torch.from_numpy(complex_tone(777.0, power_dbm=-60.0)))
    assert isinstance(power, torch.Tensor) and power.shape == (N_FFT, 32)
    np.testing.assert_allclose(10.0 * np.log10(power.sum(dim=0).numpy()), -60.0, atol=1e-3)


def test_numpy_and_torch_inputs_agree_and_keep_their_kind() -> None:
    x = np.stack([noisy_signal(0), noisy_signal(2)]).reshape(1, 2, NUM_SAMPLES)
    from_numpy = iq_to_mel_spectrogram(x, FS_HZ)
    from_torch = iq_to_mel_spectrogram(torch.from_numpy(x), FS_HZ)
    assert isinstance(from_numpy, np.ndarray) and isinstance(from_torch, torch.Tensor)
    assert from_numpy.shape == (1, 2, 128, 32) and from_numpy.dtype == np.float32
    np.testing.assert_array_equal(from_numpy, from_torch.numpy())


def test_mfcc_matches_scipy_dct() -> None:
    mel_db = iq_to_mel_spectrogram(np.stack([noisy_signal(0), noisy_signal(3)]), FS_HZ)
    ours = compute_mfcc(mel_db, n_mfcc=20)
    reference = scipy.fft.dct(mel_db.astype(np.float64), type=2, norm="ortho", axis=-2)[:, :20]
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-3)
    full = dct_matrix(128, 128).double()
    np.testing.assert_allclose((full @ full.T).numpy(), np.eye(128), atol=1e-6)


def test_features_reject_bad_input() -> None:
    with pytest.raises(InputError):
        iq_to_mel_spectrogram(np.ones(NUM_SAMPLES, dtype=np.float32), FS_HZ)  # not complex
    with pytest.raises(InputError):
        iq_to_mel_spectrogram(np.ones(1_000, dtype=np.complex64), FS_HZ)  # shorter than n_fft
    with pytest.raises(InputError):
        iq_to_mel_spectrogram(np.ones(NUM_SAMPLES, dtype=np.complex64), FS_HZ, num_frames=33)
    with pytest.raises(InputError):
        mel_filterbank(N_FFT, FS_HZ, n_mels=127)
    with pytest.raises(InputError):
        measure_iq(np.ones(NUM_SAMPLES, dtype=np.complex64), 14_000.0)  # no room outside


@pytest.fixture(scope="module")
def received() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three transmissions heard by six receivers at 10 or 20 dB SNR, with carrier offsets."""
    rng = np.random.default_rng(11)
    iq, _ = transmitter_waveforms(rng, 3)
    power_dbm = rng.uniform(-120.0, -80.0, (3, 6))
    snr_db = np.tile([10.0, 20.0], (3, 3))
    offset_hz = 300.0 + np.array([-1_500.0, -800.0, 0.0, 400.0, 900.0, 1_400.0])
    rx = apply_channel(rng, iq, power_dbm, snr_db, ChannelSettings(FS_HZ, 300.0, offset_hz - 300.0))
    return rx, power_dbm, snr_db, np.broadcast_to(offset_hz, (3, 6))


def test_measure_iq_recovers_power_snr_and_offset(received) -> None:
    rx, power_dbm, snr_db, offset_hz = received
    m = measure_iq(rx, FS_HZ)
    assert m.snr_db.shape == (3, 6)
    np.testing.assert_allclose(m.snr_db, snr_db, atol=1.0)
    np.testing.assert_allclose(m.power_dbm, power_dbm, atol=0.5)
    np.testing.assert_allclose(m.noise_floor_dbm, power_dbm - snr_db, atol=1.0)
    np.testing.assert_allclose(m.frequency_offset_hz, offset_hz, atol=100.0)
    assert m.signal_present.all()
    np.testing.assert_allclose(m.snr_db, m.power_dbm - m.noise_floor_dbm, atol=1e-9)


def test_iq_features_equal_the_separate_calls(received) -> None:
    rx = received[0]
    mel_db, m = iq_features(rx, FS_HZ)
    np.testing.assert_array_equal(mel_db, iq_to_mel_spectrogram(rx, FS_HZ))
    separate = measure_iq(rx, FS_HZ)
    for name in ("power_dbm", "noise_floor_dbm", "snr_db", "frequency_offset_hz"):
        np.testing.assert_allclose(getattr(m, name), getattr(separate, name), rtol=1e-9)


def test_noise_alone_is_not_a_signal() -> None:
    rng = np.random.default_rng(4)
    noise_dbm = -125.0  # white over 48 kHz; -130.85 dBm inside 12.5 kHz
    scale = np.sqrt(10.0 ** (noise_dbm / 10.0) / 2.0)
    draws = rng.standard_normal((2, 3, NUM_SAMPLES))
    noise = (draws[0] + 1j * draws[1]) * scale
    m = measure_iq(noise.astype(np.complex64), FS_HZ)
    assert not m.signal_present.any()
    assert np.isnan(m.frequency_offset_hz).all()
    np.testing.assert_allclose(m.noise_floor_dbm, noise_dbm + 10 * np.log10(12.5 / 48.0), atol=0.5)


def test_normalize_features_standardises_each_channel() -> None:
    x = torch.randn(8, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 4.0 + 10.0
    out, mean, std = normalize_features(x)
    assert mean.shape == (5,) and std.shape == (5,)
    dims = (0, 1, 3)
    np.testing.assert_allclose(out.mean(dim=dims).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(dim=dims, correction=0).numpy(), 1.0, atol=1e-4)
    again, _, _ = normalize_features(x[:2], mean, std)  # stored statistics are reused
    np.testing.assert_allclose(again.numpy(), out[:2].numpy(), rtol=1e-6)
    as_numpy, _, _ = normalize_features(x.numpy(), mean.numpy(), std.numpy())
    np.testing.assert_allclose(as_numpy, out.numpy(), rtol=1e-6)


def test_augment_is_reproducible_from_the_generator() -> None:
    x = torch.randn(4, 2, 16, 32, generator=torch.Generator().manual_seed(1))
    first = augment_features(x, torch.Generator().manual_seed(7))
    second = augment_features(x, torch.Generator().manual_seed(7))
    other = augment_features(x, torch.Generator().manual_seed(8))
    assert first.shape == x.shape
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_augment_gain_shifts_each_map_by_its_db_offset() -> None:
    x = torch.randn(6, 16, 32, generator=torch.Generator().manual_seed(2)) - 90.0
    out = augment_features(x, torch.Generator().manual_seed(3), dropout_p=0.0, max_time_shift=0)
    shift_db = (out - x).flatten(1)
    constant_db = shift_db[:, :1].expand_as(shift_db)
    np.testing.assert_allclose(shift_db.numpy(), constant_db.numpy(), atol=1e-4)
    assert shift_db.abs().max() <= 2.0 and shift_db[:, 0].std() > 0.1
    mean_shift_db = out.mean(dim=(1, 2)) - x.mean(dim=(1, 2))
    np.testing.assert_allclose(mean_shift_db.numpy(), shift_db[:, 0].numpy(), atol=1e-4)


def test_augment_time_shift_is_circular_and_dropout_fills_with_the_mean() -> None:
    x = torch.randn(5, 8, 32, generator=torch.Generator().manual_seed(4))
    out = augment_features(x, torch.Generator().manual_seed(5), dropout_p=0.0, scale_db=0.0)
    for before, after in zip(x, out, strict=True):
        assert any(torch.equal(torch.roll(before, k, dims=-1), after) for k in range(-4, 5))
    dropped = augment_features(x, torch.Generator().manual_seed(5), dropout_p=1.0, scale_db=0.0)
    expected = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    np.testing.assert_allclose(dropped.numpy(), expected.numpy(), rtol=1e-6)


def test_piecewise_spectra_give_iq_features_exactly(received) -> None:
    """The per-transmission path of IQ datasets (STFT into preallocated outputs, one
    measurement at the end) equals iq_features on the whole batch, bit for bit."""
    rx = torch.from_numpy(received[0])
    bank = mel_bank_for_stft(N_FFT, FS_HZ, 128, 0.0, None)
    mel = torch.empty((len(rx), rx.shape[1], 32, 128))
    mean_power = torch.empty((len(rx), rx.shape[1], N_FFT))
    for i in range(len(rx)):
        returned = stft_pass(rx[i], N_FFT, 512, 32, bank, mel_out=mel[i], mean_out=mean_power[i])
        assert returned[0].data_ptr() == mel[i].data_ptr()  # written in place, not copied
    mel_db, measured = features_from_spectra(mel, mean_power, FS_HZ)
    whole_db, whole = iq_features(rx, FS_HZ)
    np.testing.assert_array_equal(mel_db, whole_db)
    np.testing.assert_array_equal(measured.snr_db, whole.snr_db)
    with pytest.raises(InputError, match="output must be"):
        stft_pass(rx[0], N_FFT, 512, 32, bank, mel_out=torch.empty(2, 2))


def test_compiled_cpu_pass_equals_the_torch_operations(received) -> None:
    """The CPU path (compiled framing, power, mean and mel kernels, a few rows at a time)
    gives what the plain torch operations give, which accelerators run."""
    rx = torch.from_numpy(received[0][:3])  # [3, R, T]
    flat = rx.reshape(-1, rx.shape[-1])
    bank = mel_bank_for_stft(N_FFT, FS_HZ, 128, 0.0, None)
    results = []
    for passes in (_stft_cpu, _stft_torch):
        mel, mean, power = torch.empty(len(flat), 32, 128), torch.empty(len(flat), N_FFT), torch.empty(len(flat), 32, N_FFT)
        passes(flat, N_FFT, 512, 32, bank, mel, mean, power)
        results.append((mel, mean, power))
    for compiled, plain in zip(*results, strict=True):
        torch.testing.assert_close(compiled, plain, rtol=2e-5, atol=0.0)
    # The bank's runs hold only the triangles' non-zero weights: a twentieth of the dense bank.
    assert len(bank.weights) == int((bank.dense_t > 0).sum()) < N_FFT * 128 / 20


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_kind_of_non_finite_sample_is_refused(bad: float) -> None:
    """Wherever it sits: sample 0 (where the first frame's window is 0), mid-frame, or past
    the last frame asked for (read by no frame)."""
    for position in (0, 12_345, NUM_SAMPLES - 1):
        x = noisy_signal(0)
        x[position] = complex(0.0, bad)
        with pytest.raises(InputError, match="non-finite"):
            iq_features(x, FS_HZ)
        with pytest.raises(InputError, match="non-finite"):
            iq_features(x, FS_HZ, num_frames=8)
    # Huge but finite samples overflow a float32 sum; the exact check must still accept them.
    assert all_finite(torch.full((4,), 3e38 + 0j, dtype=torch.complex64))
    # So must the CPU kernels, whose own float32 sum of the frames overflows here (the power
    # itself overflows too: float32 holds no such signal, but it is not a non-finite input).
    iq_features(np.full(NUM_SAMPLES, 3e38 + 3e38j, dtype=np.complex64), FS_HZ)
