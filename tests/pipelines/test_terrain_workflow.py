"""A network with a DEM: generate (terrain features stored) and train, end to end, tiny."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.shards import DatasetReader
from heimdall.network import Receiver, ReceiverNetwork
from heimdall.pipelines import open_context
from heimdall.settings import Settings
from heimdall.sim.dem import write_hgt

pytestmark = pytest.mark.slow


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_network_with_a_dem_generates_and_trains(home: Path, tmp_path: Path) -> None:
    lat = np.linspace(41.0, 40.0, 1201)[:, None]
    lon = np.linspace(-112.0, -111.0, 1201)[None, :]
    (tmp_path / "dem").mkdir()
    write_hgt(tmp_path / "dem", 40, -112, 1400.0 + 60.0 * np.sin(lat * 300.0) * np.cos(lon * 250.0))
    spots = [(40.750, -111.850), (40.765, -111.835), (40.745, -111.820), (40.770, -111.860), (40.758, -111.842)]
    ReceiverNetwork(
        name="hills", frequency_hz=462.7e6,
        receivers=tuple(Receiver(receiver_id=f"rx{i}", name=f"rx{i}", lat_deg=a, lon_deg=b) for i, (a, b) in enumerate(spots)),
    ).save(tmp_path / "net.yaml")
    # dem_dir relative to the scenario file.
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump({"dem_dir": "dem", "area_margin_m": 500.0, "path_loss_model": "two-ray",
                                                             "tx_power_min_dbm": 27.0, "tx_power_max_dbm": 33.0}))
    generated = _json(["generate", "--name", "hills", "--samples", "600", "--network", str(tmp_path / "net.yaml"),
                       "--scenario", str(tmp_path / "scenario.yaml"), "--quiet"])
    assert generated["samples"] == 600
    samples = DatasetReader(open_context(Settings(home=home)).store, "hills").load("all")
    assert samples.diffraction_loss_db is not None and samples.diffraction_loss_db.shape == (600, 5)
    # Rolling hills: some links blocked, some clear, and blocked links lose more.
    assert 0.05 < samples.line_of_sight.mean() < 0.95
    assert samples.diffraction_loss_db[~samples.line_of_sight].mean() > samples.diffraction_loss_db[samples.line_of_sight].mean() + 5.0
    trained = _json(["train", "--dataset", "hills", "--epochs", "1", "--batch-size", "64"])
    assert Path(trained["best_checkpoint"]).is_file()
