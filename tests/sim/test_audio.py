"""Voice audio from a directory of WAV files: formats, resampling, determinism, errors."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.errors import InputError, NotFoundError
from heimdall.sim.audio import load_audio_dir
from heimdall.sim.signals import WaveformConfig, fm_demodulate, transmitter_waveforms

FS_HZ = 48_000.0


def _tone(rate_hz: int, seconds: float, tone_hz: float) -> np.ndarray:
    return np.sin(2 * np.pi * tone_hz * np.arange(int(rate_hz * seconds)) / rate_hz)


def _write_pcm16(path: Path, rate_hz: int, audio: np.ndarray, channels: int = 1) -> None:
    """16-bit PCM through the standard library's `wave` (an independent writer)."""
    frames = np.repeat((0.8 * audio * 32767).astype("<i2")[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate_hz)
        handle.writeframes(frames.tobytes())


def _peak_hz(audio: np.ndarray, rate_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate_hz)[np.argmax(spectrum)])


def test_a_1_khz_wav_modulates_the_carrier_at_1_khz(tmp_path: Path) -> None:
    # 16 kHz stereo PCM: resampled to 48 kHz, channels averaged.
    _write_pcm16(tmp_path / "tone.wav", 16_000, _tone(16_000, 1.0, 1_000.0), channels=2)
    config = WaveformConfig(mix=(1.0, 0.0, 0.0), pre_emphasis=False, audio_dir=str(tmp_path))
    iq, types = transmitter_waveforms(np.random.default_rng(0), 3, config)
    assert list(types) == ["voice"] * 3
    for row in iq:
        deviation_hz = fm_demodulate(row, FS_HZ)
        assert abs(_peak_hz(deviation_hz, FS_HZ) - 1_000.0) < 5.0
        # Audio at peak 1 swings the carrier by the full deviation.
        assert np.max(np.abs(deviation_hz)) == pytest.approx(config.deviation_hz, rel=0.02)


def test_formats_are_read_to_mono_float_at_the_audio_rate(tmp_path: Path) -> None:
    wavfile.write(tmp_path / "a_float.wav", 44_100, _tone(44_100, 0.5, 440.0).astype(np.float32))
    wavfile.write(tmp_path / "b_u8.wav", 8_000, (128 + 100 * _tone(8_000, 0.5, 700.0)).astype(np.uint8))
    _write_pcm16(tmp_path / "c_pcm16.wav", 48_000, _tone(48_000, 0.5, 1_500.0))
    (tmp_path / "notes.txt").write_text("not audio")
    library = load_audio_dir(str(tmp_path), FS_HZ)
    assert library.names == ("a_float.wav", "b_u8.wav", "c_pcm16.wav")
    for clip, tone_hz, peak in zip(library.clips, (440.0, 700.0, 1_500.0), (1.0, 100 / 128, 0.8)):
        assert clip.dtype == np.float32 and clip.ndim == 1
        assert len(clip) == pytest.approx(0.5 * FS_HZ, abs=2)
        assert abs(_peak_hz(clip, FS_HZ) - tone_hz) < 3.0
        assert np.max(np.abs(clip)) == pytest.approx(peak, rel=0.03)


def test_draws_are_deterministic_and_use_every_file(tmp_path: Path) -> None:
    for i, tone_hz in enumerate((500.0, 900.0, 1_300.0)):
        _write_pcm16(tmp_path / f"{i}.wav", 48_000, _tone(48_000, 2.0, tone_hz))
    library = load_audio_dir(str(tmp_path), FS_HZ)
    first = library.draw(np.random.default_rng(7), 30, 4_800)
    assert first.tobytes() == library.draw(np.random.default_rng(7), 30, 4_800).tobytes()
    assert first.tobytes() != library.draw(np.random.default_rng(8), 30, 4_800).tobytes()
    tones = {round(_peak_hz(row, FS_HZ) / 100) * 100 for row in first}
    assert tones == {500, 900, 1_300}
    # A clip shorter than the transmission is followed by silence.
    short = library.draw(np.random.default_rng(0), 1, 200_000)[0]
    assert np.all(short[96_000:] == 0.0) and np.max(np.abs(short)) == pytest.approx(1.0)


def test_bad_audio_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        load_audio_dir(str(tmp_path / "missing"), FS_HZ)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .wav files"):
        load_audio_dir(str(tmp_path / "empty"), FS_HZ)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(InputError, match="broken.wav: not a readable WAV"):
        load_audio_dir(str(tmp_path / "corrupt"), FS_HZ)
    (tmp_path / "nan").mkdir()
    wavfile.write(tmp_path / "nan" / "nan.wav", 8_000, np.full(100, np.nan, dtype=np.float32))
    with pytest.raises(InputError, match="nan.wav: holds non-finite"):
        load_audio_dir(str(tmp_path / "nan"), FS_HZ)


def test_generate_audio_dir_cli(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["generate", "--name", "a", "--samples", "4", "--kind", "iq",
                                      "--audio-dir", str(tmp_path / "empty")])  # fmt: skip
    assert result.exit_code == 1 and "no .wav files" in result.stderr
    result = CliRunner().invoke(app, ["generate", "--name", "a", "--samples", "4", "--audio-dir", str(tmp_path)])
    assert result.exit_code == 1 and "--audio-dir needs --kind iq" in result.stderr
    _write_pcm16(tmp_path / "voice.wav", 16_000, _tone(16_000, 1.0, 1_000.0))
    result = CliRunner().invoke(app, ["generate", "--name", "a", "--samples", "6", "--kind", "iq",
                                      "--audio-dir", str(tmp_path), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(app, ["datasets", "show", "a", "--json"])
    stats = json.loads(shown.stdout.strip().splitlines()[-1])["scenario"]["iq"]
    assert stats["audio_files"] == ["voice.wav"]
