"""The seed documents' inputs at the command line: display names, SemVer pre-releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.shards import DatasetReader
from heimdall.pipelines import TrainRequest, open_context, train
from heimdall.settings import Settings

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_display_name_becomes_the_slug_the_api_uses(home: Path) -> None:
    made = _json(["generate", "--name", "Test Dataset 1k", "--samples", "1000"])
    assert made["dataset"] == "test-dataset-1k"
    shown = _json(["datasets", "show", "Test Dataset 1k"])  # either form finds it
    assert shown["name"] == "test-dataset-1k" and shown["display_name"] == "Test Dataset 1k"
    assert DatasetReader(open_context(Settings(home=home)).store, "test-dataset-1k").manifest.num_samples == 1000
    refused = runner.invoke(app, ["generate", "--name", "../x", "--samples", "1000"])
    assert refused.exit_code == 1 and "invalid dataset name" in refused.output and "test-dataset-1k" in refused.output


@pytest.mark.slow
def test_export_accepts_semver_pre_releases_and_build_metadata(home: Path) -> None:
    ctx = open_context(Settings(home=home))
    _json(["generate", "--name", "sv", "--samples", "1200"])
    checkpoint = train(ctx, TrainRequest(dataset="sv", epochs=1, batch_size=128, hidden_dim=16, num_layers=1)).checkpoint
    assert _json(["export", "--checkpoint", checkpoint, "--version", "1.0.0-test"])["semantic_version"] == "v1.0.0-test"
    assert _json(["export", "--checkpoint", checkpoint, "--version", "v1.0.0+build.1"])["semantic_version"] == "v1.0.0+build.1"
    again = runner.invoke(app, ["export", "--checkpoint", checkpoint, "--version", "1.0.0-test"])
    assert again.exit_code == 1 and "v1.0.0-test already exists" in again.output
