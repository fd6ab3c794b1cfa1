"""Import of real measurements (POWDER JSON, lenient long format) and measured datasets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heimdall.data.importers import (
    DROP_INVALID,
    DROP_MISSING_TX,
    DROP_SEVERAL_TX,
    DROP_NO_HEARD,
    DROP_NON_FINITE_RSS,
    DROP_ZERO_POSITION,
    ImportedMeasurements,
    read_measurements_lenient,
)
from heimdall.data.layout import SPLIT_CODES
from heimdall.data.measured import (
    MeasuredSamples,
    measured_samples,
    network_from_measurements,
    write_measured_dataset,
)
from heimdall.data.measurement_files import read_long_frame, write_measurements
from heimdall.data.measurements import MeasurementTable
from heimdall.data.powder import POWDER_FREQUENCY_HZ, read_powder_json
from heimdall.data.shards import DatasetReader
from heimdall.errors import DataError, InputError
from heimdall.geo import haversine_m
from heimdall.network import MIN_RECEIVER_SEPARATION_M
from heimdall.storage.artifacts import LocalStore

POWDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "powder-frs-april" / "april.json"
HEADER = "sample_id,timestamp,receiver_id,rx_lat,rx_lon,rss_dbm,tx_lat,tx_lon\n"


@pytest.fixture(scope="module")
def raw() -> dict:
    if not POWDER.is_file():
        pytest.fail(f"POWDER data not found at {POWDER} (shared/ must sit beside the repo)")
    return json.loads(POWDER.read_text())


@pytest.fixture(scope="module")
def powder(raw: dict) -> ImportedMeasurements:
    return read_powder_json(POWDER)


@pytest.fixture(scope="module")
def powder_samples(powder: ImportedMeasurements) -> MeasuredSamples:
    network = network_from_measurements(powder.table, "powder", POWDER_FREQUENCY_HZ)
    return measured_samples(powder.table, powder.timestamps, network, network.reference_point())


def test_powder_drops_and_counts_bad_rows(raw: dict, powder: ImportedMeasurements) -> None:
    rows = [rx for entry in raw.values() for rx in entry["rx_data"]]
    at_origin = sum(1 for rx in rows if rx[1] == 0 and rx[2] == 0)
    infinite = [rx for rx in rows if not math.isfinite(rx[0])]
    assert len(raw) == 811 and len(infinite) == 55
    # Rows at (0, 0) are counted there first; -Infinity rows elsewhere as non-finite rss.
    infinite_elsewhere = sum(1 for rx in infinite if not (rx[1] == 0 and rx[2] == 0))
    report = powder.report
    assert report.rows_read == len(rows)
    assert report.rows_dropped == {DROP_ZERO_POSITION: at_origin, DROP_NON_FINITE_RSS: infinite_elsewhere}
    assert report.rows_kept == len(rows) - at_origin - infinite_elsewhere == len(powder.table.sample_id)
    assert report.samples == 811 and report.samples_dropped == {}
    table = powder.table
    assert np.all(np.isfinite(table.rss_dbm)) and not np.any((table.rx_lat_deg == 0) & (table.rx_lon_deg == 0))
    assert powder.frequency_hz == POWDER_FREQUENCY_HZ


def test_powder_positions_and_times_are_campaign_ones(powder: ImportedMeasurements) -> None:
    table = powder.table
    for lat, lon in ((table.rx_lat_deg, table.rx_lon_deg), (table.tx_lat_deg, table.tx_lon_deg)):
        assert np.all(haversine_m(lat, lon, 40.76, -111.84) < 5_000.0)
    assert powder.timestamps.min() == np.datetime64("2022-04-25T14:12:32")
    assert powder.timestamps.max() == np.datetime64("2022-04-25T16:31:11")
    assert not np.isnat(powder.timestamps).any()


def test_powder_samples_keep_a_heard_receiver(powder_samples: MeasuredSamples) -> None:
    samples = powder_samples.samples
    assert len(samples) == 811 and samples.heard.any(axis=1).all()
    assert (samples.rx_id >= 0)[samples.present].all()
    assert powder_samples.sample_names[0] == "2022-04-25 14:12:32"
    # The bus moves: its per-sample positions differ by far more than a metre.
    bus = samples.rx_position_m[samples.rx_id == 0]
    assert np.ptp(bus[:, 0]) > 500.0


def _powder_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path


ENTRY = {"rx_data": [[-60.0, 40.76, -111.84, "a"], [-70.0, 40.77, -111.83, "b"]], "tx_coords": [[40.765, -111.835]]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"2022-01-01 00:00:00": {"rx_data": [', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"t": {"tx_coords": [[40, -111]]}}', "no 'rx_data' list"),
        ('{"t": {"rx_data": [[-60, 40.7, "x"]], "tx_coords": [[40, -111]]}}', "rx_data[0] is not"),
        ('{"t": {"rx_data": [["loud", 40.7, -111, "x"]], "tx_coords": [[40, -111]]}}', "rx_data[0] is not"),
        ('{"t": ' + json.dumps(ENTRY) + ', "t": ' + json.dumps(ENTRY) + "}", "duplicate key 't'"),
    ],
)
def test_powder_bad_files_are_input_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_powder_json(path)
    assert message in str(info.value) and "bad.json" in str(info.value) and "\n" not in str(info.value)


def test_powder_missing_tx_and_emptied_samples_are_dropped(tmp_path: Path) -> None:
    data = {
        "2022-01-01 00:00:00": ENTRY,
        "2022-01-01 00:00:01": {"rx_data": ENTRY["rx_data"], "tx_coords": []},
        "2022-01-01 00:00:02": {
            "rx_data": [[None, 40.76, -111.84, "a"], [-70.0, 0, 0, "b"]],
            "tx_coords": [[40.7, -111.8]],
        },
    }
    imported = read_powder_json(_powder_file(tmp_path, data))
    report = imported.report
    assert report.samples == 1 and list(imported.table.sample_id) == ["2022-01-01 00:00:00"] * 2
    assert report.rows_read == 6 and report.rows_kept == 2
    assert report.rows_dropped == {DROP_MISSING_TX: 2, DROP_NON_FINITE_RSS: 1, DROP_ZERO_POSITION: 1}
    assert report.samples_dropped == {DROP_MISSING_TX: 1, DROP_NO_HEARD: 1}
    with pytest.raises(DataError, match="no usable sample"):
        read_powder_json(_powder_file(tmp_path, {"t": data["2022-01-01 00:00:01"]}))


def test_lenient_csv_drops_bad_rows_and_keeps_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + "s1,2022-04-25T14:00:05,a,40.76,-111.84,-60,40.765,-111.835\n"
        + "s1,2022-04-25T14:00:05,b,40.77,-111.83,NaN,40.765,-111.835\n"  # non-finite rss
        + "s1,2022-04-25T14:00:05,c,40.75,-111.85,,40.765,-111.835\n"  # not heard: kept
        + "s2,2022-04-25T14:00:01Z,a,40.76,-111.84,-65,40.761,-111.845\n"
        + "s2,2022-04-25T14:00:01Z,b,40.77,-111.83,-75,,\n"  # no transmitter
        + "s3,yesterday,a,40.76,-111.84,-65,40.761,-111.845\n"  # bad timestamp
    )
    imported = read_measurements_lenient(path)
    report = imported.report
    assert report.rows_dropped == {DROP_NON_FINITE_RSS: 1, DROP_MISSING_TX: 1, DROP_INVALID: 1}
    assert report.samples == 2 and report.samples_dropped == {DROP_NO_HEARD: 1}
    assert list(imported.table.receiver_id) == ["a", "c", "a"]
    assert np.isnan(imported.table.rss_dbm[1])
    assert imported.sample_timestamps() == {
        "s1": np.datetime64("2022-04-25T14:00:05"),
        "s2": np.datetime64("2022-04-25T14:00:01"),
    }


def test_lenient_csv_reads_not_received_markers_as_heard_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + "s1,,a,40.76,-111.84,-60,40.765,-111.835\n"
        + "s1,,b,40.77,-111.83,-200,40.765,-111.835\n"  # marker: listened, heard nothing
        + "s1,,c,40.75,-111.85,-999,40.765,-111.835\n"  # beyond +-400: not a reading, dropped
        + "s2,,a,40.76,-111.84,-200,40.761,-111.845\n"  # only markers: nothing heard
    )
    imported = read_measurements_lenient(path)
    report = imported.report
    assert report.readings_not_received == 1 and "1 readings below -174 dBm" in report.summary()
    assert report.samples == 1 and report.samples_dropped == {DROP_NO_HEARD: 1}
    assert list(imported.table.receiver_id) == ["a", "b"]
    assert imported.table.rss_dbm[0] == -60 and np.isnan(imported.table.rss_dbm[1])


def test_lenient_csv_missing_column_and_empty_result_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\ns1,a,40.7,-111.8,-60\n")
    with pytest.raises(InputError, match="missing required column.*tx_lat"):
        read_measurements_lenient(path)
    path.write_text(HEADER + "s1,,a,40.7,-111.8,inf,40.7,-111.8\n")
    with pytest.raises(DataError, match="m.csv"):
        read_measurements_lenient(path)


def _table(ids: list[str], lat: list[float], lon: list[float]) -> MeasurementTable:
    m = len(ids)
    return MeasurementTable(
        sample_id=np.array([f"s{i}" for i in range(m)]), receiver_id=np.array(ids),
        rx_lat_deg=np.array(lat), rx_lon_deg=np.array(lon), rx_alt_m=np.zeros(m),
        rss_dbm=np.full(m, -60.0), snr_db=np.full(m, np.nan),
        tx_lat_deg=np.full(m, 40.76), tx_lon_deg=np.full(m, -111.84),
    )


def test_network_has_unique_receivers_and_separates_collisions(powder: ImportedMeasurements) -> None:
    network = network_from_measurements(powder.table, "powder", POWDER_FREQUENCY_HZ)
    assert len(set(network.ids)) == len(network) == len(set(powder.table.receiver_id)) == 12
    mobile = {r.receiver_id for r in network.receivers if "mobile" in r.name}
    assert mobile == {"bus-4603", "bus-6183"}
    # "x" and "y" report positions 0.3 m apart: both stay, at least the minimum apart.
    table = _table(["x", "y", "z"], [40.76, 40.760003, 40.77], [-111.84, -111.84, -111.83])
    network = network_from_measurements(table, "tiny", 462.7e6)
    x, y = network.receivers[0], network.receivers[1]
    assert network.ids == ("x", "y", "z") and x.lat_deg == 40.76
    assert haversine_m(x.lat_deg, x.lon_deg, y.lat_deg, y.lon_deg) >= MIN_RECEIVER_SEPARATION_M


def test_time_split_is_chronological(powder_samples: MeasuredSamples) -> None:
    split = powder_samples.with_splits("time", seed=0).samples.split
    times = powder_samples.timestamps
    train, val, test = (times[split == SPLIT_CODES[n]] for n in ("train", "val", "test"))
    assert train.max() < val.min() and val.max() < test.min()
    assert abs(len(train) - 0.7 * len(times)) <= 1 and abs(len(test) - 0.15 * len(times)) <= 1


def test_grid_split_gives_whole_cells_to_one_split(powder_samples: MeasuredSamples) -> None:
    cell_m = 200.0
    samples = powder_samples.with_splits("grid", seed=3, cell_size_m=cell_m).samples
    tx = samples.tx_position_m.astype(np.float64)
    cell = np.floor((tx - tx.min(axis=0)) / cell_m).astype(np.int64)
    keys = cell[:, 0] * 100_000 + cell[:, 1]
    for key in np.unique(keys):
        assert len(np.unique(samples.split[keys == key])) == 1
    assert set(np.unique(samples.split)) == {0, 1, 2}


def test_write_measured_dataset_round_trips(tmp_path: Path, powder: ImportedMeasurements) -> None:
    store = LocalStore(tmp_path / "store")
    manifest = write_measured_dataset(store, tmp_path / "staging", "powder-april", powder, "grid", seed=1)
    assert manifest.kind == "measured" and manifest.split_mode == "grid" and manifest.scenario is None
    assert manifest.frequency_hz == POWDER_FREQUENCY_HZ and manifest.num_samples == 811
    zero_rows = powder.report.rows_dropped[DROP_ZERO_POSITION]
    assert f"{DROP_ZERO_POSITION}: {zero_rows}" in (manifest.description or "")
    loaded = DatasetReader(store, "powder-april").load("all")
    assert sum(manifest.split_counts.values()) == len(loaded) == 811
    counts = [manifest.split_counts[n] for n in ("train", "val", "test")]
    assert np.array_equal(np.bincount(loaded.split, minlength=3), counts)
    # The transmission times travel with the dataset (time-ordered calibration needs them)
    # and back out to a long file as the importer read them.
    assert loaded.timestamp_s is not None and np.isfinite(loaded.timestamp_s).all()
    earliest = np.datetime64("2022-04-25T14:12:32").astype("datetime64[s]").astype(np.int64)
    assert loaded.timestamp_s.min() == earliest
    path = tmp_path / "back.csv"
    write_measurements(path, loaded, manifest.reference, list(manifest.station_ids))
    again = read_long_frame(path)
    first = again.drop_duplicates("sample_id").set_index("sample_id")["timestamp"]
    expected = pd.to_datetime(loaded.timestamp_s, unit="s").strftime("%Y-%m-%dT%H:%M:%S")
    assert list(first.loc[[str(i) for i in loaded.sample_id]]) == list(expected)


def test_samples_with_several_transmitter_positions_are_dropped(tmp_path: Path) -> None:
    """Two transmitters on the air at once (POWDER lists both) or rows of one sample that
    disagree: the readings mix two sources, so the sample is dropped and counted, while one
    position written twice, or rounded differently in its rows, is one transmitter."""
    two = {"rx_data": ENTRY["rx_data"], "tx_coords": [[40.765, -111.835], [40.770, -111.840]]}
    same = {"rx_data": ENTRY["rx_data"], "tx_coords": [[40.765, -111.835], [40.765, -111.835]]}
    data = {"2022-01-01 00:00:00": ENTRY, "2022-01-01 00:00:01": two, "2022-01-01 00:00:02": same}
    imported = read_powder_json(_powder_file(tmp_path, data))
    assert imported.report.samples == 2 and imported.report.rows_read == 6
    assert imported.report.rows_dropped == {DROP_SEVERAL_TX: 2}
    assert imported.report.samples_dropped == {DROP_SEVERAL_TX: 1}
    assert "2022-01-01 00:00:01" not in set(imported.table.sample_id)

    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + "s1,2022-04-25T14:00:05,a,40.76,-111.84,-60,40.765,-111.835\n"
        + "s1,2022-04-25T14:00:05,b,40.77,-111.83,-70,40.7650000001,-111.835\n"  # the same place
        + "s2,2022-04-25T14:00:06,a,40.76,-111.84,-61,40.765,-111.835\n"
        + "s2,2022-04-25T14:00:06,b,40.77,-111.83,-71,40.768,-111.835\n"  # 330 m away
        + "s3,2022-04-25T14:00:07,a,40.76,-111.84,-62,40.765,-111.835\n"
        + "s3,2022-04-25T14:00:07,b,40.77,-111.83,-72,,\n"  # no position: not a second one
    )
    imported = read_measurements_lenient(path)
    assert imported.report.rows_dropped == {DROP_SEVERAL_TX: 2, DROP_MISSING_TX: 1}
    assert list(imported.table.sample_id) == ["s1", "s1", "s3"]
