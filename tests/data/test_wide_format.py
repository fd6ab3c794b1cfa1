"""Wide fingerprint tables (one row per transmission, one dBm column per receiver) read as
the long format: the same dataset, the same table for `localize`, and one clear error for
each way a pair of files can disagree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from heimdall.cli import app
from heimdall.data.importers import read_measurements_lenient
from heimdall.data.measurement_files import read_measurements
from heimdall.data.wide_format import wide_to_long
from heimdall.errors import InputError, NotFoundError

RECEIVERS = pd.DataFrame({
    "receiver_id": ["GW-North", "gw-east", "gw-south"],
    "rx_lat": [40.78, 40.76, 40.74],
    "rx_lon": [-111.85, -111.82, -111.85],
    "rx_alt_m": [1450.0, 1400.0, 1380.0],
})
#: Readings per transmission, in RECEIVERS' order: "" and -200 are "heard nothing".
READINGS = [["-71.5", "-88", ""], ["-80", "-200", "-92.25"], ["", "-75", "-70"], ["-66", "-79", "-85"]]
TX = [(40.765, -111.84), (40.77, -111.845), (40.755, -111.83), (40.76, -111.85)]


def _wide(with_truth: bool = True, with_ids: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(READINGS, columns=["gw-north", "GW-East", "gw-south"])  # case as a user types it
    if with_ids:
        frame.insert(0, "sample_id", [f"t{i}" for i in range(len(READINGS))])
    frame.insert(1 if with_ids else 0, "timestamp", [f"2024-03-01T10:00:{10 * i:02d}" for i in range(len(READINGS))])
    if with_truth:
        frame["tx_lat"], frame["tx_lon"] = [t[0] for t in TX], [t[1] for t in TX]
    frame["sf"] = 7  # a LoRa spreading factor: neither a receiver nor the format's, ignored
    return frame


def _long(with_truth: bool = True, ids: list[str] | None = None) -> pd.DataFrame:
    ids = ids or [f"t{i}" for i in range(len(READINGS))]
    rows = []
    for i, readings in enumerate(READINGS):
        for rx, rss in zip(RECEIVERS.itertuples(), readings, strict=True):
            row = {"sample_id": ids[i], "timestamp": f"2024-03-01T10:00:{10 * i:02d}", "receiver_id": rx.receiver_id,
                   "rx_lat": rx.rx_lat, "rx_lon": rx.rx_lon, "rx_alt_m": rx.rx_alt_m, "rss_dbm": rss}
            if with_truth:
                row["tx_lat"], row["tx_lon"] = TX[i]
            rows.append(row)
    return pd.DataFrame(rows)


def _files(tmp_path: Path, wide: pd.DataFrame, long: pd.DataFrame, suffix: str = ".csv") -> tuple[Path, Path, Path]:
    paths = tmp_path / f"wide{suffix}", tmp_path / f"long{suffix}", tmp_path / "receivers.csv"
    for frame, path in ((wide, paths[0]), (long, paths[1])):
        frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
    RECEIVERS.to_csv(paths[2], index=False)
    return paths


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_wide_table_imports_as_its_long_twin(tmp_path: Path, suffix: str) -> None:
    wide_path, long_path, receivers = _files(tmp_path, _wide(), _long(), suffix)
    wide = read_measurements_lenient(wide_path, receivers)
    long = read_measurements_lenient(long_path)
    for name in ("sample_id", "receiver_id"):
        assert list(getattr(wide.table, name)) == list(getattr(long.table, name))
    for name in ("rx_lat_deg", "rx_lon_deg", "rx_alt_m", "rss_dbm", "tx_lat_deg", "tx_lon_deg"):
        np.testing.assert_array_equal(getattr(wide.table, name), getattr(long.table, name), err_msg=name)
    np.testing.assert_array_equal(wide.timestamps, long.timestamps)
    # The receivers file's spelling of an id wins over the column's; silences stay silences.
    assert set(wide.table.receiver_id) == set(RECEIVERS["receiver_id"])
    assert int(np.isnan(wide.table.rss_dbm).sum()) == 3 and wide.report.readings_not_received == 1


def test_localize_reads_a_wide_table_without_truth(tmp_path: Path) -> None:
    wide_path, long_path, receivers = _files(tmp_path, _wide(with_truth=False, with_ids=False),
                                             _long(with_truth=False, ids=["1", "2", "3", "4"]))
    wide, long = read_measurements(wide_path, receivers=receivers), read_measurements(long_path)
    # Without a sample_id column each row is a transmission, numbered from 1.
    assert list(wide.sample_id) == list(long.sample_id) == [s for s in "1234" for _ in range(3)]
    np.testing.assert_array_equal(wide.rss_dbm, long.rss_dbm)
    assert np.isnan(wide.tx_lat_deg).all()


@pytest.mark.parametrize(
    ("receivers", "fragment"),
    [
        (RECEIVERS.assign(receiver_id=["gw-north", "GW-North", "gw-south"]),
         "more than once (case ignored): GW-North, gw-north"),
        (RECEIVERS.assign(receiver_id=["gw-north", "tx_lat", "gw-south"]), "tx_lat name a column of the transmission"),
        (RECEIVERS.assign(rx_lat=[40.78, 95.0, 40.74]), "receiver 'gw-east' has no valid position (row 3)"),
        (RECEIVERS.assign(rx_lon=["-111.85", "west", "-111.85"]), "receiver 'gw-east' has no valid position"),
        (RECEIVERS.drop(columns="rx_lon"), "missing required column(s): rx_lon"),
        (RECEIVERS.assign(receiver_id=["a", "b", "c"]), "none of the 3 receivers of receivers.csv is a column"),
    ],
)
def test_receivers_files_that_do_not_fit_are_refused_by_name(
    tmp_path: Path, receivers: pd.DataFrame, fragment: str
) -> None:
    wide_path, _, receivers_path = _files(tmp_path, _wide(), _long())
    receivers.to_csv(receivers_path, index=False)
    with pytest.raises(InputError) as raised:
        read_measurements_lenient(wide_path, receivers_path)
    assert fragment in str(raised.value)


def test_a_long_file_given_receivers_and_a_wide_one_without_are_told_which_they_are(tmp_path: Path) -> None:
    wide_path, long_path, receivers = _files(tmp_path, _wide(), _long())
    with pytest.raises(InputError, match="a file in the long format needs no --receivers"):
        read_measurements_lenient(long_path, receivers)
    with pytest.raises(InputError, match="one column per receiver is read with --receivers FILE"):
        read_measurements_lenient(wide_path)
    with pytest.raises(NotFoundError, match="receivers file .*nowhere.csv not found"):
        read_measurements_lenient(wide_path, tmp_path / "nowhere.csv")


def test_a_wide_tables_truth_under_other_names_is_named_in_the_error(tmp_path: Path) -> None:
    wide = _wide().rename(columns={"tx_lat": "Latitude", "tx_lon": "longitude"})
    # A receiver whose id looks like a coordinate column is a receiver, never offered for one
    # (first in the file, where the hint would take it first).
    wide.insert(0, "lat", wide.pop("gw-south"))
    receivers = RECEIVERS.assign(receiver_id=["GW-North", "gw-east", "LAT"])
    wide_path, _long_path, receivers_path = _files(tmp_path, wide, _long())
    receivers.to_csv(receivers_path, index=False)
    with pytest.raises(InputError) as refused:
        read_measurements_lenient(wide_path, receivers_path)
    assert str(refused.value) == (
        "wide.csv: missing required column(s): tx_lat, tx_lon; "
        "if the file means them, rename 'latitude' to 'tx_lat', 'longitude' to 'tx_lon'"
    )


def test_a_wide_table_too_large_is_refused_before_it_is_built() -> None:
    wide = _wide().astype(str).rename(columns=str.lower)  # as `read_long_frame` reads it
    with pytest.raises(InputError, match="4 transmissions x 3 receivers is more than 11 readings"):
        wide_to_long(wide, RECEIVERS.astype(str), ("w.csv", "r.csv"), max_rows=11)
    assert len(wide_to_long(wide, RECEIVERS.astype(str), ("w.csv", "r.csv"), max_rows=12)) == 12


def test_the_cli_imports_a_wide_table_and_refuses_receivers_for_powder_json(home: Path, tmp_path: Path) -> None:
    wide_path, _, receivers = _files(tmp_path, _wide(), _long())
    runner = CliRunner()
    args = ["import-measurements", str(wide_path), "--receivers", str(receivers), "--name", "wide",
            "--split-mode", "random", "--frequency-hz", "868e6", "--json"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["samples"] == 4 and payload["rows_read"] == 12 and payload["readings_not_received"] == 1
    result = runner.invoke(app, ["import-measurements", str(wide_path), "--receivers", str(receivers),
                                 "--name", "w2", "--format", "powder-json"], catch_exceptions=False)
    assert result.exit_code == 1 and "POWDER JSON file lists its receivers itself" in result.stderr


def test_localize_passes_the_receivers_file_on(home: Path, tmp_path: Path) -> None:
    wide_path, long_path, receivers = _files(tmp_path, _wide(with_truth=False), _long(with_truth=False))
    runner = CliRunner()
    # The file is read before any model is loaded: its errors show without a bundle.
    result = runner.invoke(app, ["localize", "--model", str(tmp_path), "--measurements", str(long_path),
                                 "--receivers", str(receivers)], catch_exceptions=False)
    assert result.exit_code == 1 and "a file in the long format needs no --receivers" in result.stderr
    result = runner.invoke(app, ["localize", "--model", str(tmp_path), "--measurements", str(wide_path),
                                 "--receivers", str(receivers)], catch_exceptions=False)
    assert result.exit_code == 1 and "not a complete model bundle" in result.stderr
    result = runner.invoke(app, ["localize", "--model", str(tmp_path), "--recordings", str(tmp_path),
                                 "--receivers", str(receivers)], catch_exceptions=False)
    assert result.exit_code == 1 and "--receivers goes with --measurements" in result.stderr
