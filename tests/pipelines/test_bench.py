"""`heimdall bench` runs and reports every figure it promises (no timing asserted here)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from heimdall.cli import app

pytestmark = pytest.mark.slow

KEYS = (
    "generate_features_samples_per_s",
    "generate_features_terrain_samples_per_s",
    "generate_iq_samples_per_s",
    "generate_iq_1proc_samples_per_s",
    "train_spectrogram_samples_per_s",
    "localize_iq_ms",
    "train_features_samples_per_s",
    "train_features_1thread_samples_per_s",
    "train_spectrogram_nano_samples_per_s",
    "checkpoint_save_s",
    "onnx_export_s",
    "onnx_latency_ms_b1",
    "torch_latency_ms_b1",
    "onnx_speedup_b1",
    "onnx_latency_ms_b64",
    "torch_latency_ms_b64",
    "generate_peak_rss_mb",
    "train_peak_rss_mb",
)


def test_bench_quick_reports_every_figure(home) -> None:
    result = CliRunner().invoke(app, ["bench", "--quick", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in KEYS:
        assert figures[key] > 0, key
    assert figures["onnx_speedup_b1"] == pytest.approx(figures["torch_latency_ms_b1"] / figures["onnx_latency_ms_b1"], rel=0.01)
    assert figures["conditions"]["cpu_count"] >= 1
