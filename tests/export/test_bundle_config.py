"""A bundle's config.yaml: read back as written, and never a way to run code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heimdall.errors import InputError, NotFoundError
from heimdall.export.bundle import BUNDLE_FILES, read_bundle_config, write_bundle_files


def _bundle(directory: Path, config: dict) -> Path:
    (directory / "model.onnx").write_bytes(b"onnx")
    write_bundle_files(directory, config, metrics={"evaluation": {}}, card="# card\n")
    return directory


def test_a_config_reads_back_as_written(tmp_path: Path) -> None:
    config = {
        "reference_point": {"lat_deg": 40.76, "lon_deg": -111.84, "alt_m": 1400.0},
        "station_ids": ["bus-4329", "cbrssdr1-ustar-comp", "ébergement"],
        "one_receiver_places": {"tolerance_db": 2.0, "stations": [{"level_dbm": [-80.0, -79.0],
                                                                    "mean_m": [[1.5, -2.25], [0.1, 3.0]]}]},
        "training_times_s": [int(t) for t in np.arange(1_650_000_000, 1_650_000_600, 7)],
    }
    bundle = _bundle(tmp_path, config)
    assert sorted(p.name for p in bundle.iterdir()) == sorted(BUNDLE_FILES)
    assert read_bundle_config(bundle) == config


def test_a_config_that_would_build_objects_is_refused(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, {"reference_point": {}, "station_ids": []})
    (bundle / "config.yaml").write_text("reference_point: !!python/object/apply:os.system ['touch pwned']\n"
                                        "station_ids: []\n")
    with pytest.raises(InputError, match="malformed YAML"):
        read_bundle_config(bundle)
    assert not (Path.cwd() / "pwned").exists()


def test_an_incomplete_bundle_names_what_is_missing(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, {"reference_point": {}, "station_ids": []})
    (bundle / "metrics.json").unlink()
    with pytest.raises(InputError, match="missing metrics.json"):
        read_bundle_config(bundle)
    with pytest.raises(NotFoundError):
        read_bundle_config(tmp_path / "nowhere")
    (bundle / "metrics.json").write_text("{}")
    (bundle / "config.yaml").write_text("- a list\n")
    with pytest.raises(InputError, match="lacks reference_point"):
        read_bundle_config(bundle)
