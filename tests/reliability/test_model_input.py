"""Broken models, unreachable services and input far outside the model's world (issue 20,
findings 5, 6 and 8), with real files, real CLI processes and a real server.

Reported: a truncated, random or empty `model.onnx` gave an onnxruntime traceback in the CLI
and a 500 from the API; an unreachable MLflow tracking URI a 231-line traceback; receivers
all moved to (-60, -170) were located in Italy with sigma 58 km; one heard receiver got an
answer without a warning.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from heimdall.export.area import WARN_ONE_RECEIVER, WARN_POSITION_OUTSIDE, WARN_RECEIVERS_OUTSIDE, TrainingArea
from heimdall.export.localizer import WARN_UNKNOWN_RECEIVERS, Localizer, ModelFileError
from heimdall.export.moved_receivers import WARN_RECEIVER_MOVED
from heimdall.network import default_network
from heimdall.serving.models import MeasurementRow, measurement_table

pytestmark = pytest.mark.slow

CLI = "from heimdall.cli import main; main()"
REPO = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEIMDALL_", "MLFLOW_"))}
    env.update(HEIMDALL_HOME=str(home), PYTHONPATH=str(REPO / "src"), **extra)
    return env


def _cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=REPO, env=_env(home, **extra),
                          capture_output=True, text=True, timeout=300)


def _rows(lat_shift: float = 0.0, lon_shift: float = 0.0, heard: int = 5, place: tuple[float, float] | None = None) -> list[dict]:
    return [
        {
            "receiver_id": r.receiver_id,
            "rx_lat": place[0] if place else r.lat_deg + lat_shift,
            "rx_lon": (place[1] + 0.01 * i) if place else r.lon_deg + lon_shift,
            "rss_dbm": -100.0 + 3 * i if i < heard else None,
        }
        for i, r in enumerate(default_network().receivers)
    ]


def _measurement_file(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame([{"sample_id": "s1", **row} for row in rows]).to_csv(path, index=False, na_rep="")
    return path


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_broken_model_file_is_one_line_in_the_cli(trained, tmp_path: Path, damage: str) -> None:  # noqa: ANN001
    bundle = tmp_path / "bundle"
    shutil.copytree(trained.bundle, bundle)
    onnx = bundle / "model.onnx"
    data = onnx.read_bytes()
    onnx.write_bytes({"truncated": data[: len(data) // 2], "random": np.random.default_rng(0).bytes(4096), "empty": b""}[damage])
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        Localizer.from_bundle(bundle)
    measurements = _measurement_file(tmp_path / "m.csv", _rows())
    line = _one_error_line(_cli(tmp_path / "home", "localize", "--model", str(bundle), "--measurements", str(measurements)))
    assert "model.onnx: not a loadable ONNX model" in line and "export the model again" in line


def test_broken_registered_model_is_503_and_a_cut_cache_is_fetched_again(home_copy, tmp_path: Path, local_server) -> None:  # noqa: ANN001
    home = home_copy()
    measurements = _measurement_file(tmp_path / "m.csv", _rows())
    first = _cli(home, "localize", "--model", "models:/heimdall-localizer/1", "--measurements", str(measurements), "--json")
    assert first.returncode == 0, first.stderr
    # A cached copy cut short (a full disk, a killed download): fetched again, not a crash.
    cached = next((home / "cache" / "models").rglob("model.onnx"))
    cached.write_bytes(cached.read_bytes()[:100])
    again = _cli(home, "localize", "--model", "models:/heimdall-localizer/1", "--measurements", str(measurements), "--json")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]
    # The registry's own copy broken: the server answers 503 with a message.
    for artifact in (home / "mlruns").rglob("model.onnx"):
        artifact.write_bytes(b"")
    shutil.rmtree(home / "cache")
    server = local_server(home)
    response = httpx.post(f"{server.base_url}/v1/localize", json={"measurements": _rows()}, timeout=60)
    assert response.status_code == 503, response.text
    assert "cannot be loaded" in response.json()["detail"] and "not a loadable ONNX model" in response.json()["detail"]
    assert "Traceback" not in server.log()


def test_unreachable_registry_is_one_line_naming_service_and_setting(tmp_path: Path) -> None:
    measurements = _measurement_file(tmp_path / "m.csv", _rows())
    result = _cli(tmp_path / "home", "localize", "--model", "models:/heimdall-localizer@production",
                  "--measurements", str(measurements), HEIMDALL_MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    line = _one_error_line(result)
    assert "MLflow tracking server at http://127.0.0.1:9" in line and "HEIMDALL_MLFLOW_TRACKING_URI" in line


def test_receivers_on_another_continent_are_flagged_with_a_wide_ellipse(
    trained, home_copy, tmp_path: Path, local_server  # noqa: ANN001
) -> None:
    localizer = Localizer.from_bundle(trained.bundle)
    assert localizer.area is not None
    far = measurement_table([MeasurementRow(**row) for row in _rows(place=(-60.0, -170.0))])
    _ids, predictions = localizer.localize_table(far)
    assert bool(predictions.out_of_area[0])
    assert WARN_RECEIVERS_OUTSIDE in predictions.warnings[0]
    # The ellipse reaches the receivers that heard it (>10,000 km away), not tens of km.
    assert predictions.sigma_major_m[0] > 5_000_000
    home_rows = measurement_table([MeasurementRow(**row) for row in _rows()])
    _ids, usual = localizer.localize_table(home_rows)
    assert not usual.out_of_area[0] and usual.warnings[0] == ()
    # The same through the API and the CLI (--json).
    home = home_copy()
    server = local_server(home)
    response = httpx.post(f"{server.base_url}/v1/localize", json={"measurements": _rows(place=(-60.0, -170.0))}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["out_of_area"] is True and WARN_RECEIVERS_OUTSIDE in body["warnings"]
    assert body["sigma_major_m"] > 5_000_000
    assert body["geojson"]["features"][0]["properties"]["out_of_area"] is True
    # The server fetched the model from the registry without progress bars in its log.
    assert "Downloading artifacts" not in server.log() and "%|" not in server.log()
    cli = _cli(home, "localize", "--model", str(trained.bundle), "--json",
               "--measurements", str(_measurement_file(tmp_path / "far.csv", _rows(place=(-60.0, -170.0)))))
    assert cli.returncode == 0, cli.stderr
    record = __import__("json").loads(cli.stdout.splitlines()[-1])["predictions"][0]
    assert record["out_of_area"] is True and WARN_RECEIVERS_OUTSIDE in record["warnings"]


def test_one_heard_receiver_is_flagged_and_widened(trained) -> None:  # noqa: ANN001
    localizer = Localizer.from_bundle(trained.bundle)
    table = measurement_table([MeasurementRow(**row) for row in _rows(heard=1)])
    samples, _ids = table.to_samples(localizer.reference_point, localizer.station_ids)
    raw = localizer.predict(samples, check_area=False)
    checked = localizer.predict(samples)
    assert WARN_ONE_RECEIVER in checked.warnings[0]
    assert checked.sigma_major_m[0] >= raw.sigma_major_m[0]
    heard = samples.rx_position_m[0][samples.heard[0]][0, :2]
    assert checked.sigma_major_m[0] >= np.hypot(*(raw.position_m[0] - heard)) - 1.0
    assert raw.warnings == ((),)


def test_a_receiver_the_model_does_not_know_is_flagged_and_named(trained, tmp_path: Path) -> None:  # noqa: ANN001
    rows = _rows()
    known = _cli(trained.home, "localize", "--model", str(trained.bundle), "--json",
                 "--measurements", str(_measurement_file(tmp_path / "known.csv", rows)))
    assert known.returncode == 0, known.stderr
    assert WARN_UNKNOWN_RECEIVERS not in known.stdout and "not in the model" not in known.stderr
    # A misspelt id on one heard receiver: still an answer, flagged, and the id named once on stderr.
    rows[0] = dict(rows[0], receiver_id="rx-misspelt")
    typo = _cli(trained.home, "localize", "--model", str(trained.bundle), "--json",
                "--measurements", str(_measurement_file(tmp_path / "typo.csv", rows)))
    assert typo.returncode == 0, typo.stderr
    record = __import__("json").loads(typo.stdout.splitlines()[-1])["predictions"][0]
    assert record["warnings"] == [WARN_UNKNOWN_RECEIVERS] and np.isfinite(record["lat"])
    assert "1 receiver id(s) not in the model, counted as an unknown receiver: rx-misspelt" in typo.stderr


def test_a_receiver_moved_since_training_is_flagged_and_named(trained, tmp_path: Path) -> None:  # noqa: ANN001
    rows = _rows()
    # One receiver about 330 m north of where the model's network has it, still in the area.
    rows[2] = dict(rows[2], rx_lat=rows[2]["rx_lat"] + 0.003)
    moved = _cli(trained.home, "localize", "--model", str(trained.bundle), "--json",
                 "--measurements", str(_measurement_file(tmp_path / "moved.csv", rows)))
    assert moved.returncode == 0, moved.stderr
    record = __import__("json").loads(moved.stdout.splitlines()[-1])["predictions"][0]
    assert record["warnings"] == [WARN_RECEIVER_MOVED] and np.isfinite(record["lat"])
    assert f"listening away from where the model was trained with them ({rows[2]['receiver_id']} 333 m)" in moved.stderr


def test_training_area_from_the_bundle_config(trained) -> None:  # noqa: ANN001
    localizer = Localizer.from_bundle(trained.bundle)
    area = TrainingArea.from_config(localizer.config, localizer.reference_point)
    assert area is not None
    margin_m = float(localizer.config["scenario"]["area_margin_m"])
    east_min, east_max, north_min, north_max = default_network().bounds_enu_m(localizer.reference_point, margin_m)
    assert (area.east_min_m, area.north_max_m) == pytest.approx((east_min, north_max))
    inside = area.distance_outside_m(np.array([0.0]), np.array([0.0]))
    outside = area.distance_outside_m(np.array([east_max + 5_000.0]), np.array([0.0]))
    assert inside[0] == 0.0 and outside[0] == pytest.approx(5_000.0)
    # A prediction pushed far off the area is flagged even when the receivers are home.
    check = area.check(np.array([[east_max + 10 * area.size_m, 0.0]]), np.eye(2)[None] * 1e6,
                       np.zeros((1, 2, 3)), np.array([[True, True]]))
    assert WARN_POSITION_OUTSIDE in check.warnings[0] and check.out_of_area[0]
