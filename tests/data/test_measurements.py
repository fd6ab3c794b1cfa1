"""The long measurement format: validation of bad files, and the round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heimdall.data.measurement_files import read_measurements, write_measurements
from heimdall.data.shards import DatasetReader
from heimdall.errors import InputError, NotFoundError
from heimdall.pipelines import generate

HEADER = "sample_id,receiver_id,rx_lat,rx_lon,rss_dbm,tx_lat,tx_lon\n"


def _write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_empty_rss_means_not_heard(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "s1,torino,45.044,7.672,-90.5,45.1,7.5\ns1,genova,44.395,8.956,,45.1,7.5\n")
    table = read_measurements(path)
    assert np.isnan(table.rss_dbm[1]) and table.rss_dbm[0] == -90.5
    assert table.has_truth


def test_readings_below_the_thermal_floor_are_not_received_markers(tmp_path: Path) -> None:
    # -200 dBm is far below kTB in 1 Hz (-174 dBm): fingerprint files write it for "not received".
    rows = "s1,torino,45.044,7.672,-90.5,45.1,7.5\ns1,genova,44.395,8.956,{},45.1,7.5\n"
    marked = read_measurements(_write(tmp_path, HEADER + rows.format("-200"), "marked.csv"))
    empty = read_measurements(_write(tmp_path, HEADER + rows.format(""), "empty.csv"))
    assert np.isnan(marked.rss_dbm[1]) and marked.rss_dbm[0] == -90.5
    np.testing.assert_array_equal(marked.rss_dbm, empty.rss_dbm)
    # Just above the floor is a (weak) power reading.
    assert read_measurements(_write(tmp_path, HEADER + rows.format("-173.5"))).rss_dbm[1] == -173.5
    with pytest.raises(InputError, match="no receiver that heard"):
        read_measurements(_write(tmp_path, HEADER + "s1,a,45,7,-200,45,7\n", "silent.csv"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sample_id,receiver_id,rx_lat,rss_dbm\ns1,a,45,-90\n", "missing required column(s): rx_lon"),
        (HEADER, "no measurement rows"),
        (HEADER + "s1,a,45,7,nan,45,7\n", "non-finite"),
        (HEADER + "s1,a,45,7,inf,45,7\n", "non-finite"),
        (HEADER + "s1,a,45,7,loud,45,7\n", "non-numeric"),
        (HEADER + "s1,a,95,7,-90,45,7\n", "latitude 95.0 out of range"),
        (HEADER + "s1,a,45,190,-90,45,7\n", "longitude 190.0 out of range"),
        (HEADER + "s1,a,45,7,-90,45,-200\n", "transmitter longitude"),
        (HEADER + "s1,a,45,7,,45,7\n", "no receiver that heard"),
        (HEADER + "s1,a,45,7,-90,45,7\ns1,a,45,7,-91,45,7\n", "appears twice"),
        (HEADER + ",a,45,7,-90,45,7\n", "empty value"),
        ("", "not a readable"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        read_measurements(_write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_measurements(tmp_path / "nope.csv")


def test_truth_required_when_asked(tmp_path: Path) -> None:
    path = _write(tmp_path, "sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\ns1,a,45,7,-90\n")
    assert not read_measurements(path).has_truth
    with pytest.raises(InputError, match="tx_lat"):
        read_measurements(path, require_truth=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_then_read_reproduces_samples(ctx, tmp_path: Path, suffix: str) -> None:
    generate(ctx, "m", 1200, seed=2)
    reader = DatasetReader(ctx.store, "m")
    test = reader.load("test")
    path = tmp_path / f"test{suffix}"
    rows = write_measurements(path, test, reader.manifest.reference, reader.manifest.station_ids)
    assert rows == int(test.present.sum())
    samples, ids = read_measurements(path, require_truth=True).to_samples(reader.manifest.reference, reader.manifest.station_ids)
    assert ids == [str(i) for i in test.sample_id]
    np.testing.assert_allclose(samples.tx_position_m, test.tx_position_m, atol=0.05)
    # Offline receivers are not rows, so slots differ: compare per station instead.
    for original, back in ((test, samples),):
        for name in ("rss_dbm", "rx_position_m"):
            by_station_a = _by_station(original, name)
            by_station_b = _by_station(back, name)
            np.testing.assert_allclose(by_station_b, by_station_a, atol=0.05, equal_nan=True)


def _by_station(samples, field: str) -> np.ndarray:
    values = getattr(samples, field)
    out = np.full((len(samples), 7) + values.shape[2:], np.nan)
    rows, slots = np.nonzero(samples.present)
    out[rows, samples.rx_id[rows, slots]] = values[rows, slots]
    return out


def test_request_rows_follow_the_file_rules() -> None:
    """`MeasurementTable.from_rows` (the API's) and the file reader share one validator."""
    from types import SimpleNamespace

    from heimdall.data.measurements import MeasurementTable

    def row(receiver: str, rss_dbm: float | None, lat: float = 45.0) -> SimpleNamespace:
        return SimpleNamespace(receiver_id=receiver, rx_lat=lat, rx_lon=7.0, rss_dbm=rss_dbm)

    table = MeasurementTable.from_rows([row("a", -90.0), row("b", None, 45.2)])
    assert list(table.receiver_id) == ["a", "b"] and np.isnan(table.rss_dbm[1]) and table.rx_alt_m.tolist() == [0, 0]
    with pytest.raises(InputError, match="request: receiver 'a' appears twice"):
        MeasurementTable.from_rows([row("a", -90.0), row("a", -91.0)])
    with pytest.raises(InputError, match="no receiver that heard"):
        MeasurementTable.from_rows([row("a", None)])
    with pytest.raises(InputError, match="latitude 95.0 out of range"):
        MeasurementTable.from_rows([row("a", -90.0, lat=95.0)])
    with pytest.raises(InputError, match="rss_dbm must be a finite number"):
        MeasurementTable.from_rows([row("a", float("inf"))])


def test_unheard_samples_flags_every_row_of_a_transmission_nobody_heard() -> None:
    from heimdall.data.measurements import unheard_samples

    sample_id = np.array(["a", "b", "a", 7, "c", "b", 7, "c"], dtype=object)
    heard = np.array([False, False, True, False, False, False, False, True])
    # "a" and "c" were heard by one receiver each; "b" and 7 by none.
    expected = [False, True, False, True, False, True, True, False]
    np.testing.assert_array_equal(unheard_samples(sample_id, heard), expected)
    assert not unheard_samples(np.arange(4), np.ones(4, dtype=bool)).any()
