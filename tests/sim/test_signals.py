"""Physics checks of heimdall.sim.signals: FM deviation and bandwidth, DTMF, tones, channel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter, lfilter_zi

from heimdall.errors import InputError
from heimdall.sim.channel import _delay_filters
from heimdall.sim.kernels import delayed_copies
from heimdall.sim.signals import (
    CHANNEL_BANDWIDTH_HZ,
    DTMF_COLUMNS_HZ,
    DTMF_KEYS,
    DTMF_ROWS_HZ,
    NBFM_DEVIATION_HZ,
    WIDE_DEVIATION_HZ,
    WaveformConfig,
    ChannelSettings,
    apply_channel,
    de_emphasis,
    draw_signal_types,
    dtmf_audio,
    fm_demodulate,
    fm_modulate,
    pre_emphasis,
    received_iq,
    speech_like_audio,
    tone_audio,
    transmitter_waveforms,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "testdata" / "reference_values.json"
FS_HZ = 48_000.0
NUM_SAMPLES = WaveformConfig().num_samples


def peak_frequency_hz(x: np.ndarray, fs_hz: float, pad_to: int = 1 << 18) -> float:
    """Frequency of the largest spectral peak, Hann-windowed and zero-padded (0.18 Hz grid);
    two-sided for complex input, positive frequencies for real input."""
    if np.iscomplexobj(x):
        spectrum = np.abs(np.fft.fft(x * np.hanning(x.size), pad_to))
        return float(np.fft.fftfreq(pad_to, 1.0 / fs_hz)[np.argmax(spectrum)])
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size), pad_to))
    return float(np.fft.rfftfreq(pad_to, 1.0 / fs_hz)[np.argmax(spectrum)])


def two_peaks_hz(x: np.ndarray, fs_hz: float, pad_to: int = 1 << 18) -> list[float]:
    """The two largest local maxima of the positive-frequency spectrum, in ascending order."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size), pad_to))
    local = np.flatnonzero((spectrum[1:-1] > spectrum[:-2]) & (spectrum[1:-1] >= spectrum[2:])) + 1
    best = local[np.argsort(spectrum[local])[-2:]]
    return sorted(float(f) for f in np.fft.rfftfreq(pad_to, 1.0 / fs_hz)[best])


def in_channel_fraction(iq: np.ndarray, fs_hz: float, bandwidth_hz: float) -> np.ndarray:
    power = np.abs(np.fft.fft(iq, axis=-1)) ** 2
    inside = np.abs(np.fft.fftfreq(iq.shape[-1], 1.0 / fs_hz)) <= bandwidth_hz / 2.0
    return power[..., inside].sum(axis=-1) / power.sum(axis=-1)


@pytest.mark.parametrize("deviation_hz", [NBFM_DEVIATION_HZ, WIDE_DEVIATION_HZ])
def test_full_scale_tone_swings_by_the_deviation(deviation_hz: float) -> None:
    audio = np.sin(2.0 * np.pi * 1_000.0 * np.arange(NUM_SAMPLES) / FS_HZ)
    iq = fm_modulate(audio, FS_HZ, deviation_hz)
    assert iq.dtype == np.complex64
    np.testing.assert_allclose(np.abs(iq), 1.0, atol=1e-5)
    frequency_hz = fm_demodulate(iq, FS_HZ)
    assert abs(frequency_hz.max() / deviation_hz - 1.0) < 0.02
    assert abs(frequency_hz.min() / -deviation_hz - 1.0) < 0.02
    # Demodulation recovers the audio itself, scaled by the deviation.
    np.testing.assert_allclose(frequency_hz / deviation_hz, audio[1:], atol=1e-3)


def test_nbfm_voice_stays_inside_a_12_5_khz_channel() -> None:
    rng = np.random.default_rng(1)
    iq, types = transmitter_waveforms(rng, 8, WaveformConfig(mix=(1.0, 0.0, 0.0)))
    assert set(types) == {"voice"}
    np.testing.assert_allclose(np.mean(np.abs(iq) ** 2, axis=-1), 1.0, rtol=1e-5)  # unit power
    assert np.all(in_channel_fraction(iq, FS_HZ, CHANNEL_BANDWIDTH_HZ) >= 0.99)
    # Pre-emphasis and the limiter put the peak deviation at exactly the configured value.
    assert np.allclose(np.abs(fm_demodulate(iq, FS_HZ)).max(axis=-1), NBFM_DEVIATION_HZ, rtol=0.01)


def test_tone_fm_obeys_carson_bandwidth() -> None:
    # Carson: 98 % of the power within 2 (deviation + modulating frequency).
    audio = np.sin(2.0 * np.pi * 1_000.0 * np.arange(NUM_SAMPLES) / FS_HZ)
    iq = fm_modulate(audio, FS_HZ, NBFM_DEVIATION_HZ)
    assert in_channel_fraction(iq, FS_HZ, 2.0 * (NBFM_DEVIATION_HZ + 1_000.0)) >= 0.98


def test_dtmf_keys_match_the_standard() -> None:
    reference = json.loads(REFERENCE.read_text())["dtmf_hz"]
    assert list(DTMF_ROWS_HZ) == reference["rows"]
    assert list(DTMF_COLUMNS_HZ) == reference["columns"]
    assert {k: list(v) for k, v in DTMF_KEYS.items()} == reference["keys"]


def test_each_dtmf_tone_shows_exactly_its_row_and_column() -> None:
    reference = json.loads(REFERENCE.read_text())["dtmf_hz"]["keys"]
    seen: set[str] = set()
    for seed in range(60):
        audio, keys = dtmf_audio(np.random.default_rng(seed), NUM_SAMPLES, FS_HZ)
        assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
        # Tones are separated by gaps of exact zeros at least 50 ms long.
        active = np.convolve(audio != 0.0, np.ones(48), mode="same") > 0
        edges = np.flatnonzero(np.diff(active.astype(int)))
        starts, stops = edges[::2] + 1, edges[1::2] + 1
        assert len(starts) == len(keys) >= 1
        for key, start, stop in zip(keys, starts, stops, strict=True):
            peaks_hz = two_peaks_hz(audio[start:stop], FS_HZ)
            np.testing.assert_allclose(peaks_hz, reference[key], atol=2.0)
        seen.update(keys)
        if len(seen) == len(reference):
            break
    assert seen == set(reference)


def test_tone_lands_on_its_fft_peak() -> None:
    for seed in range(5):
        audio, tone_hz = tone_audio(np.random.default_rng(seed), NUM_SAMPLES, FS_HZ)
        assert 400.0 <= tone_hz <= 2500.0
        assert abs(np.abs(audio).max() - 1.0) < 1e-6
        assert abs(peak_frequency_hz(audio, FS_HZ) - tone_hz) < 2.0


def test_ctcss_rides_low_and_sub_audible() -> None:
    audio, tone_hz = tone_audio(np.random.default_rng(0), NUM_SAMPLES, FS_HZ, ctcss_probability=1)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size), 1 << 18))
    f_hz = np.fft.rfftfreq(1 << 18, 1.0 / FS_HZ)
    sub = (f_hz >= 60.0) & (f_hz <= 260.0)
    ratio_db = 20.0 * np.log10(spectrum[sub].max() / spectrum.max())
    assert -20.0 < ratio_db < -13.0  # 15 % of full scale is -16.5 dB


def test_de_emphasis_inverts_pre_emphasis() -> None:
    audio = np.random.default_rng(0).standard_normal((3, 4_000))
    np.testing.assert_allclose(de_emphasis(pre_emphasis(audio, FS_HZ), FS_HZ), audio, atol=1e-9)
    assert pre_emphasis(audio.astype(np.float32), FS_HZ).dtype == np.float32


def test_emphasis_filters_equal_scipy_lfilter_started_in_the_steady_state() -> None:
    """The compiled first-order filter against scipy's, with the first sample held forever
    before the clip (`lfilter_zi` scaled by it): a constant passes unchanged (unit DC gain)."""
    audio = np.random.default_rng(1).standard_normal((2, 3, 2_000)) + 0.5
    k, tau, shelf = 2.0 * FS_HZ, 750e-6, 1.0 / (2.0 * np.pi * 10_000.0)
    b = np.array([1.0 + k * tau, 1.0 - k * tau]) / (1.0 + k * shelf)
    a = np.array([1.0, (1.0 - k * shelf) / (1.0 + k * shelf)])
    expected = lfilter(b, a, audio, axis=-1, zi=lfilter_zi(b, a) * audio[..., :1])[0]
    np.testing.assert_allclose(pre_emphasis(audio, FS_HZ), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pre_emphasis(np.full(50, 0.3), FS_HZ), 0.3, rtol=1e-12)
    with pytest.raises(InputError, match="time axis"):
        pre_emphasis(np.float64(1.0), FS_HZ)


def test_pre_emphasis_follows_the_750_us_curve() -> None:
    # Gain of the analogue network (1 + j w tau) / (1 + j w / w_shelf), w_shelf at 10 kHz.
    for frequency_hz in (300.0, 1_000.0, 3_000.0):
        tone = np.sin(2.0 * np.pi * frequency_hz * np.arange(24_000) / FS_HZ)
        out = pre_emphasis(tone, FS_HZ)[12_000:]  # past the transient
        gain_db = 20.0 * np.log10(np.abs(out).max())
        w = 2.0 * np.pi * frequency_hz
        expected_db = 10 * np.log10((1 + (w * 750e-6) ** 2) / (1 + (frequency_hz / 1e4) ** 2))
        assert abs(gain_db - expected_db) < 0.2


def test_speech_like_audio_is_voice_band_with_a_human_pitch() -> None:
    for seed in range(4):
        audio = speech_like_audio(np.random.default_rng(seed), NUM_SAMPLES, FS_HZ)
        assert audio.shape == (NUM_SAMPLES,) and audio.dtype == np.float32
        assert abs(np.abs(audio).max() - 1.0) < 1e-6 and abs(audio.mean()) < 1e-3
        power = np.abs(np.fft.rfft(audio)) ** 2
        f_hz = np.fft.rfftfreq(audio.size, 1.0 / FS_HZ)
        assert power[f_hz < 4_000.0].sum() / power.sum() > 0.99
        # Pitch from the cepstrum of the loudest 43 ms: harmonics spaced by f0 give a peak at
        # quefrency 1 / f0.
        start = int(np.argmax(np.convolve(audio**2, np.ones(2048), mode="valid")))
        segment = audio[start : start + 2048] * np.hanning(2048)
        cepstrum = np.abs(np.fft.ifft(np.log(np.abs(np.fft.fft(segment, 8192)) + 1e-9)))
        low, high = int(FS_HZ / 230.0), int(FS_HZ / 85.0) + 1
        pitch_hz = FS_HZ / (low + np.argmax(cepstrum[low:high]))
        assert 88.0 <= pitch_hz <= 225.0
    batch = speech_like_audio(np.random.default_rng(0), 1_000, FS_HZ, batch_size=3)
    assert batch.shape == (3, 1_000)


def test_signal_type_mix_matches_its_weights() -> None:
    types = draw_signal_types(np.random.default_rng(0), 20_000, (0.9, 0.05, 0.05))
    fractions = [np.mean(types == name) for name in ("voice", "tone", "dtmf")]
    np.testing.assert_allclose(fractions, [0.9, 0.05, 0.05], atol=0.01)
    with pytest.raises(InputError):
        WaveformConfig(mix=(1.0, -0.5, 0.5))


def test_same_seed_gives_same_bytes() -> None:
    def run(seed: int) -> tuple[bytes, bytes]:
        rng = np.random.default_rng(seed)
        iq, _ = transmitter_waveforms(rng, 2)
        rx = apply_channel(rng, iq, np.full((2, 3), -100.0), 10.0, ChannelSettings(FS_HZ, 120.0, 30.0))
        return iq.tobytes(), rx.tobytes()

    first = run(3)
    assert run(3) == first
    assert run(4)[1] != first[1]


def test_channel_sets_the_mean_power_exactly() -> None:
    rng = np.random.default_rng(2)
    iq, _ = transmitter_waveforms(rng, 3)
    power_dbm = rng.uniform(-130.0, -60.0, (3, 7))
    rx = apply_channel(rng, iq, power_dbm, None, ChannelSettings(FS_HZ, rng.normal(0, 300, 3), 0.0))
    assert rx.shape == (3, 7, NUM_SAMPLES) and rx.dtype == np.complex64
    measured_dbm = 10.0 * np.log10(np.mean(np.abs(rx.astype(np.complex128)) ** 2, axis=-1))
    np.testing.assert_allclose(measured_dbm, power_dbm, atol=0.3)
    # One transmission, [T] and [R] in: [R, T] out.
    assert apply_channel(rng, iq[0], power_dbm[0], None, ChannelSettings(FS_HZ)).shape == (7, NUM_SAMPLES)


def test_frequency_offsets_shift_the_carrier() -> None:
    carrier = np.ones(NUM_SAMPLES, dtype=np.complex64)
    lo_offset_hz = np.array([-1_234.5, 0.0, 777.7])
    rng = np.random.default_rng(0)
    rx = apply_channel(rng, carrier, np.full(3, -90.0), None, ChannelSettings(FS_HZ, 250.0, lo_offset_hz))
    for row, expected_hz in zip(rx, 250.0 + lo_offset_hz, strict=True):
        assert abs(peak_frequency_hz(row, FS_HZ) - expected_hz) < 5.0


def test_noise_has_the_asked_snr_inside_the_channel() -> None:
    rng_seed, snr_db = 5, np.array([[0.0, 10.0, 20.0]])
    iq, _ = transmitter_waveforms(np.random.default_rng(0), 1)
    power_dbm = np.full((1, 3), -100.0)
    clean = apply_channel(np.random.default_rng(rng_seed), iq, power_dbm, None, ChannelSettings(FS_HZ))
    noisy = apply_channel(np.random.default_rng(rng_seed), iq, power_dbm, snr_db, ChannelSettings(FS_HZ))
    noise = (noisy - clean).astype(np.complex128)
    total_dbm = 10.0 * np.log10(np.mean(np.abs(noise) ** 2, axis=-1))
    fraction = in_channel_fraction(noise, FS_HZ, CHANNEL_BANDWIDTH_HZ)
    in_channel_dbm = total_dbm + 10.0 * np.log10(fraction)
    np.testing.assert_allclose(in_channel_dbm, power_dbm - snr_db, atol=0.2)
    # White over fs: the total is fs / 12.5 kHz (5.85 dB) above the in-channel power.
    np.testing.assert_allclose(total_dbm - in_channel_dbm, 10 * np.log10(FS_HZ / 12.5e3), atol=0.2)
    # Giving the noise floor instead of the SNR draws the same noise.
    floor = apply_channel(
        np.random.default_rng(rng_seed), iq, power_dbm, None, ChannelSettings(FS_HZ, noise_floor_dbm=power_dbm - snr_db)
    )
    np.testing.assert_array_equal(floor, noisy)


def test_channel_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    iq = np.ones((2, 100), dtype=np.complex64)
    with pytest.raises(InputError):
        apply_channel(rng, iq, np.zeros((3, 4)), None, ChannelSettings(FS_HZ))
    with pytest.raises(InputError):
        apply_channel(rng, iq, np.zeros((2, 4)), 10.0, ChannelSettings(FS_HZ, noise_floor_dbm=-120.0))
    with pytest.raises(InputError):
        apply_channel(rng, iq, np.zeros((2, 4)), None, ChannelSettings(FS_HZ, rx_lo_offset_hz=np.zeros(3)))
    with pytest.raises(InputError, match="delay_spread_s"):
        apply_channel(rng, iq, np.zeros((2, 4)), None, ChannelSettings(FS_HZ, delay_spread_s=float("nan")))


def test_received_iq_gives_apply_channels_bytes_one_sample_at_a_time() -> None:
    iq, _ = transmitter_waveforms(np.random.default_rng(0), 3)
    args = (iq, np.full((3, 4), -100.0), 12.0, ChannelSettings(FS_HZ, 150.0, np.array([0.0, 40.0, -60.0, 5.0])))
    whole = apply_channel(np.random.default_rng(9), *args)
    pieces = [y.numpy().copy() for y in received_iq(np.random.default_rng(9), *args)]
    np.testing.assert_array_equal(np.stack(pieces), whole)
    # Arguments are checked when the iterator is made, not when it is first read.
    with pytest.raises(InputError):
        received_iq(np.random.default_rng(9), iq, np.zeros((2, 4)), None, ChannelSettings(FS_HZ))


@pytest.mark.parametrize("delay_s", [1e-6, 2e-6, 31.7e-6])
def test_tap_delays_match_an_exact_fft_delay(delay_s: float) -> None:
    """Multipath copies are delayed by cubic interpolation (the compiled `delayed_copies`
    the channel runs); on an FM waveform (band-limited well below fs / 2) it matches the
    exact frequency-domain delay to better than -70 dB, and the rotated rows are i times it."""
    x = transmitter_waveforms(np.random.default_rng(1), 1)[0][0]
    shifts, weights = _delay_filters(FS_HZ, (delay_s,))
    rows, gram = np.empty((4, 2 * x.size), dtype=np.float32), np.empty((2, 2), dtype=np.complex128)
    delayed_copies(x.view(np.float32), shifts, weights, rows, gram)
    copies = rows.view(np.complex64)
    c = copies[:2].astype(np.complex128)
    np.testing.assert_allclose(gram, c.conj() @ c.T / x.size, rtol=1e-12)
    f_hz = np.fft.fftfreq(x.size, 1.0 / FS_HZ)
    exact = np.fft.ifft(np.fft.fft(x) * np.exp(-2j * np.pi * f_hz * delay_s))
    np.testing.assert_array_equal(copies[0], x)
    assert np.linalg.norm(copies[1] - exact) / np.linalg.norm(exact) < 3e-4
    np.testing.assert_array_equal(copies[2:], 1j * copies[:2])


def test_fm_phase_does_not_drift_over_a_long_clip() -> None:
    """The phase is accumulated in float64 and wrapped as it goes: after 10 million samples
    of a constant tone offset it is still within 1e-4 rad of the exact value."""
    num_samples, deviation_hz = 10_000_000, 2_345.6
    iq = fm_modulate(np.full((1, num_samples), 0.75, dtype=np.float32), FS_HZ, deviation_hz)
    exact = np.remainder(2.0 * np.pi * 0.75 * deviation_hz / FS_HZ * np.array([1, num_samples]) + np.pi, 2.0 * np.pi) - np.pi
    np.testing.assert_allclose(np.angle(iq[0, [0, -1]]), exact, atol=1e-4)
