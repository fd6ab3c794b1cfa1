"""The IQ path: generate --kind iq, a spectrogram model, SigMF export and localisation from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.shards import DatasetReader
from heimdall.export.localizer import Localizer
from heimdall.pipelines import open_context
from heimdall.settings import Settings

pytestmark = pytest.mark.slow


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_iq_dataset_spectrogram_model_and_sigmf(home: Path, tmp_path: Path) -> None:
    generated = _json(["generate", "--name", "iq", "--samples", "160", "--kind", "iq", "--seed", "4"])
    assert generated["samples"] == 160
    shown = _json(["datasets", "show", "iq"])
    mix = shown["scenario"]["iq"]["signal_types"]
    assert set(mix) <= {"voice", "tone", "dtmf"} and mix["voice"] > 0.7
    reader = DatasetReader(open_context(Settings()).store, "iq")
    samples = reader.load()
    assert samples.spectrogram.shape == (160, 7, 1, 128, 32) and samples.spectrogram.dtype == np.float16
    # Heard receivers were detected in the IQ: their SNR clears the threshold.
    assert np.all(samples.snr_db[samples.heard] >= 3.0)
    trained = _json(["train", "--dataset", "iq", "--epochs", "1", "--batch-size", "32", "--spectrogram-encoder", "nano"])
    exported = _json(["export", "--checkpoint", trained["checkpoint"]])
    assert exported["max_abs_diff"] < 0.5
    sigmf = tmp_path / "sigmf"
    written = _json(["datasets", "export", "iq", "--split", "all", "--format", "sigmf", "--limit", "3", "-o", str(sigmf)])
    assert written["samples"] == 3 and written["recordings"] == int(samples.select(np.argsort(samples.sample_id)[:3]).present.sum())
    meta = json.loads(next((sigmf / "0").glob("*.sigmf-meta")).read_text())
    assert meta["global"]["core:datatype"] == "cf32_le" and meta["global"]["core:sample_rate"] == 48000.0
    located = _json(["localize", "--model", exported["bundle"], "--recordings", str(sigmf)])
    assert [p["sample_id"] for p in located["predictions"]] == ["0", "1", "2"]
    # Train/serve parity: features recomputed from the recordings give the stored samples' answer.
    first = samples.select(np.argsort(samples.sample_id)[:3])
    stored = Localizer.from_bundle(exported["bundle"]).predict(first)
    lat = np.array([p["lat"] for p in located["predictions"]])
    assert np.max(np.abs(lat - stored.lat_deg)) < 0.01


def test_bad_recordings_directory(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["localize", "--model", str(tmp_path), "--recordings", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no .sigmf-meta recordings" in result.stderr
