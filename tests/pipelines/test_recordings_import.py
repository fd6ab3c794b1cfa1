"""`heimdall import-recordings`: SigMF transmissions in, an iq dataset out, or one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.recordings import RECORDING_SAMPLES
from heimdall.data.shards import DatasetReader
from heimdall.data.sigmf import Recording, write_recording
from heimdall.pipelines import open_context
from heimdall.settings import Settings

FS_HZ = 48_000.0


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _by_station(reader: DatasetReader, order: np.ndarray) -> dict[str, np.ndarray]:
    """Per (sample, station id) arrays of the samples `order`, receivers keyed by station id."""
    samples = reader.load("all").select(order)
    ids = reader.manifest.station_ids
    out: dict[str, list] = {"rss": [], "snr": [], "heard": [], "spec": [], "key": []}
    for i in range(len(samples)):
        for slot in np.flatnonzero(samples.present[i]):
            out["key"].append((i, ids[int(samples.rx_id[i, slot])]))
            out["rss"].append(samples.rss_dbm[i, slot])
            out["snr"].append(samples.snr_db[i, slot])
            out["heard"].append(samples.heard[i, slot])
            out["spec"].append(samples.spectrogram[i, slot].astype(np.float32))
    keys = out.pop("key")
    perm = sorted(range(len(keys)), key=lambda k: keys[k])
    return {k: np.asarray(v)[perm] for k, v in out.items()} | {"keys": [keys[k] for k in perm]}


@pytest.mark.slow
def test_export_then_import_gives_the_same_features_and_trains(home: Path, tmp_path: Path) -> None:
    _json(["generate", "--name", "iq", "--samples", "48", "--kind", "iq", "--seed", "2"])
    sigmf = tmp_path / "sigmf"
    written = _json(["datasets", "export", "iq", "--split", "all", "--format", "sigmf", "--limit", "48", "-o", str(sigmf)])
    imported = _json(["import-recordings", str(sigmf), "--name", "back", "--split-mode", "random", "--seed", "1"])
    assert imported["samples"] == 48 and imported["recordings"] == written["recordings"]
    assert imported["receivers"] == 7 and imported["sample_rate_hz"] == FS_HZ
    assert sum(imported["splits"].values()) == 48 and imported["splits"]["train"] > 0
    store = open_context(Settings()).store
    original, back = DatasetReader(store, "iq"), DatasetReader(store, "back")
    assert back.manifest.kind == "iq" and back.manifest.frequency_hz == original.manifest.frequency_hz
    assert sorted(back.network.ids) == sorted(original.network.ids)
    # The import numbers transmissions in directory order ("0", "1", "10", ...).
    names = sorted(str(i) for i in range(48))
    back_samples = back.load("all")
    back_order = np.argsort(back_samples.sample_id)
    original_order = np.argsort(original.load("all").sample_id)[[int(n) for n in names]]
    a, b = _by_station(original, original_order), _by_station(back, back_order)
    assert a["keys"] == b["keys"]
    np.testing.assert_array_equal(a["heard"], b["heard"])
    np.testing.assert_allclose(a["rss"], b["rss"], atol=1e-3, equal_nan=True)
    np.testing.assert_allclose(a["snr"], b["snr"], atol=1e-3, equal_nan=True)
    # float16 spectrograms in dBm: equal to within one float16 step (~0.06 dB at -100 dBm).
    np.testing.assert_allclose(a["spec"], b["spec"], atol=0.13, rtol=0)
    # The truth came through the metadata: same transmitter coordinates.
    tx_lat = original.load("all").tx_lat_deg[original_order]
    np.testing.assert_allclose(back_samples.tx_lat_deg[back_order], tx_lat, atol=1e-9)
    trained = _json(["train", "--dataset", "back", "--epochs", "1", "--batch-size", "16", "--spectrogram-encoder", "nano"])
    assert Path(trained["checkpoint"]).is_file()


def _recording(receiver_id: str, lat_deg: float, **overrides: object) -> Recording:
    rng = np.random.default_rng(abs(hash(receiver_id)) % 2**32)
    t_s = np.arange(RECORDING_SAMPLES) / FS_HZ
    iq = 1e-5 * np.exp(2j * np.pi * 1_000.0 * t_s) + 1e-7 * (rng.normal(size=t_s.size) + 1j * rng.normal(size=t_s.size))
    fields: dict[str, object] = dict(
        receiver_id=receiver_id, rx_lat_deg=lat_deg, rx_lon_deg=7.7, rx_alt_m=200.0, sample_rate_hz=FS_HZ,
        frequency_hz=145.5e6, datetime=None, iq=iq.astype(np.complex64), tx_lat_deg=45.3, tx_lon_deg=7.8,
    )  # fmt: skip
    fields.update(overrides)
    return Recording(**fields)  # type: ignore[arg-type]


def _write_sets(root: Path, count: int = 2, **overrides: object) -> Path:
    for s in range(count):
        for k, rx in enumerate(("alpha", "bravo", "charlie")):
            write_recording(root / str(s), rx, _recording(rx, 45.0 + 0.1 * k, **overrides))
    return root


def _no_dataset_left(home: Path) -> None:
    assert _json(["datasets", "list"])["datasets"] == []
    staging = home / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_transmissions_without_truth_are_refused(home: Path, tmp_path: Path) -> None:
    root = _write_sets(tmp_path / "rec", tx_lat_deg=None, tx_lon_deg=None)
    line = _error(["import-recordings", str(root), "--name", "x"])
    assert "2 of 2 transmissions" in line and "no truth position" in line and "localize --recordings" in line
    _no_dataset_left(home)


def test_mismatched_sample_rates_name_both_transmissions(home: Path, tmp_path: Path) -> None:
    root = _write_sets(tmp_path / "rec")
    for rx in ("alpha", "bravo", "charlie"):
        write_recording(root / "9", rx, _recording(rx, 45.0 + 0.1 * ("abc".index(rx[0])), sample_rate_hz=96_000.0))
    line = _error(["import-recordings", str(root), "--name", "x"])
    assert "'9'" in line and "'0'" in line and "sample_rate_hz differs" in line and "96000" in line
    _no_dataset_left(home)


def test_too_short_non_finite_and_missing_metadata_name_the_file(home: Path, tmp_path: Path) -> None:
    short = _write_sets(tmp_path / "short")
    write_recording(short / "1", "bravo", _recording("bravo", 45.1, iq=np.ones(1000, np.complex64)))
    line = _error(["import-recordings", str(short), "--name", "x"])
    assert "bravo.sigmf-data" in line and "1000 samples" in line and f"at least {RECORDING_SAMPLES}" in line

    bad = _write_sets(tmp_path / "nan")
    data = bad / "0" / "charlie.sigmf-data"
    values = np.fromfile(data, dtype="<f4")
    values[10] = np.nan
    values.tofile(data)
    line = _error(["import-recordings", str(bad), "--name", "x"])
    assert "charlie.sigmf-data" in line and "non-finite" in line

    meta = _write_sets(tmp_path / "meta")
    path = meta / "1" / "alpha.sigmf-meta"
    content = json.loads(path.read_text())
    del content["global"]["core:sample_rate"]
    path.write_text(json.dumps(content))
    line = _error(["import-recordings", str(meta), "--name", "x"])
    assert "alpha.sigmf-meta" in line and "core:sample_rate" in line
    _no_dataset_left(home)


def test_bad_split_mode_and_missing_directory(home: Path, tmp_path: Path) -> None:
    root = _write_sets(tmp_path / "rec")
    assert "--split-mode" in _error(["import-recordings", str(root), "--name", "x", "--split-mode", "time"])
    assert "not found" in _error(["import-recordings", str(tmp_path / "nowhere"), "--name", "x"])
    _no_dataset_left(home)
