"""One reader for measurement files: CSV and Parquet of the same frame give the same dataset.

Issue 20, finding 1: a null `snr_db` in a Parquet file made every row invalid and a null
`rss_dbm` ("listened, heard nothing") dropped the row, while the same data as CSV imported.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heimdall.data.importers import (
    DROP_IMPLAUSIBLE,
    ImportedMeasurements,
    read_measurements_lenient,
)
from heimdall.data.measurement_files import read_long_frame, read_measurements
from heimdall.data.measurements import MeasurementTable
from heimdall.errors import HeimdallError, InputError

FIELDS = ("sample_id", "receiver_id", "rx_lat_deg", "rx_lon_deg", "rx_alt_m", "rss_dbm", "snr_db", "tx_lat_deg", "tx_lon_deg")


def _campaign(rows_per_sample: int = 4, samples: int = 3) -> pd.DataFrame:
    records = []
    for s in range(samples):
        for r in range(rows_per_sample):
            records.append(
                {
                    "sample_id": f"s{s}",
                    "receiver_id": f"rx{r}",
                    "rx_lat": 40.76 + 0.01 * r,
                    "rx_lon": -111.84 - 0.01 * r,
                    "rx_alt_m": 1400.0 + r,
                    "rss_dbm": -70.0 - 5 * r - s,
                    "snr_db": 20.0 - r,
                    "tx_lat": 40.765,
                    "tx_lon": -111.845,
                }
            )
    return pd.DataFrame(records)


def _write_both(frame: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    csv, parquet = directory / "m.csv", directory / "m.parquet"
    frame.to_csv(csv, index=False, na_rep="")
    frame.to_parquet(parquet, index=False)
    return csv, parquet


def _same_table(a: MeasurementTable, b: MeasurementTable) -> None:
    for name in FIELDS:
        left, right = getattr(a, name), getattr(b, name)
        if left.dtype.kind == "f":
            np.testing.assert_array_equal(left, right, err_msg=name)
        else:
            assert [str(x) for x in left] == [str(x) for x in right], name


def _same_import(a: ImportedMeasurements, b: ImportedMeasurements) -> None:
    _same_table(a.table, b.table)
    assert a.report == b.report
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.frequency_hz == b.frequency_hz


def test_parquet_nulls_read_as_empty_cells_like_csv(tmp_path: Path) -> None:
    """The reported case: null snr_db everywhere, null rss_dbm on some rows (heard nothing)."""
    frame = _campaign()
    frame["snr_db"] = None
    frame.loc[frame.receiver_id == "rx3", "rss_dbm"] = None
    csv, parquet = _write_both(frame, tmp_path)
    from_csv, from_parquet = read_measurements_lenient(csv), read_measurements_lenient(parquet)
    _same_import(from_csv, from_parquet)
    assert from_parquet.report.samples == 3
    assert from_parquet.report.rows_dropped == {}
    assert len(from_parquet.table.sample_id) == 12  # the unheard rows stay, as not heard
    assert np.isnan(from_parquet.table.rss_dbm[from_parquet.table.receiver_id == "rx3"]).all()
    assert np.isnan(from_parquet.table.snr_db).all()
    _same_table(read_measurements(csv), read_measurements(parquet))


def test_arrow_nulls_in_every_optional_column(tmp_path: Path) -> None:
    """Real Arrow nulls (not NaN) in float and string columns, written with pyarrow directly."""
    frame = _campaign()
    table = pa.table(
        {
            "sample_id": pa.array(frame.sample_id.tolist()),
            "receiver_id": pa.array(frame.receiver_id.tolist()),
            "timestamp": pa.array([None] * len(frame), type=pa.timestamp("s", tz="UTC")),
            "rx_lat": pa.array(frame.rx_lat.tolist()),
            "rx_lon": pa.array(frame.rx_lon.tolist()),
            "rx_alt_m": pa.array([None] * len(frame), type=pa.float64()),
            "rss_dbm": pa.array([None if i % 4 == 3 else v for i, v in enumerate(frame.rss_dbm)], type=pa.float64()),
            "snr_db": pa.array([None] * len(frame), type=pa.float64()),
            "frequency_hz": pa.array([None] * len(frame), type=pa.float64()),
            "tx_lat": pa.array(frame.tx_lat.tolist()),
            "tx_lon": pa.array(frame.tx_lon.tolist()),
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    imported = read_measurements_lenient(tmp_path / "m.parquet")
    assert imported.report.rows_dropped == {}
    assert imported.report.samples == 3
    assert int(np.isfinite(imported.table.rss_dbm).sum()) == 9
    assert np.all(imported.table.rx_alt_m == 0.0)
    assert np.isnat(imported.timestamps).all()
    assert np.isnan(read_long_frame(tmp_path / "m.parquet").loc[3, "rss_dbm"])
    assert read_long_frame(tmp_path / "m.parquet").loc[3, "timestamp"] == ""


def test_present_but_non_finite_rss_is_dropped_in_both_formats(tmp_path: Path) -> None:
    frame = _campaign()
    frame["rss_dbm"] = frame["rss_dbm"].astype(object)
    frame.loc[0, "rss_dbm"] = "-inf"
    frame.to_csv(tmp_path / "m.csv", index=False)
    numeric = _campaign()
    numeric.loc[0, "rss_dbm"] = -math.inf
    numeric.to_parquet(tmp_path / "m.parquet", index=False)
    a, b = read_measurements_lenient(tmp_path / "m.csv"), read_measurements_lenient(tmp_path / "m.parquet")
    _same_import(a, b)
    assert a.report.rows_dropped == {"non-finite rss": 1}


def test_absurd_altitude_and_snr_are_dropped_and_refused(tmp_path: Path) -> None:
    """Finding 6: rx_alt_m = -1e9 and snr_db = 1e300 pass no more (the API's ranges)."""
    frame = _campaign()
    frame.loc[0, "rx_alt_m"] = -1e9
    frame.loc[5, "snr_db"] = 1e300
    csv, parquet = _write_both(frame, tmp_path)
    for path in (csv, parquet):
        imported = read_measurements_lenient(path)
        assert imported.report.rows_dropped == {DROP_IMPLAUSIBLE: 2}
        assert imported.table.rx_alt_m.min() > -500
        with pytest.raises(InputError, match=r"rx_alt_m -1e\+09 in row 2 is outside \[-500, 100000\]"):
            read_measurements(path)


_number = st.one_of(
    st.none(),
    st.floats(min_value=-200, max_value=200, allow_nan=False, width=64),
    st.just(math.nan),
    st.just(math.inf),
)
_row = st.fixed_dictionaries(
    {
        "sample_id": st.sampled_from(["a", "b", "c"]),
        "receiver_id": st.sampled_from(["r1", "r2", "r3", "r4"]),
        "rx_lat": st.one_of(st.floats(min_value=-89, max_value=89, allow_nan=False), st.none()),
        "rx_lon": st.floats(min_value=-179, max_value=179, allow_nan=False),
        "rx_alt_m": _number,
        "rss_dbm": _number,
        "snr_db": _number,
        "tx_lat": st.one_of(st.just(45.0), st.none()),
        "tx_lon": st.just(7.5),
    }
)


def _outcome(reader, path: Path):  # noqa: ANN001, ANN202 - a test helper over two readers
    try:
        return reader(path)
    except HeimdallError as exc:
        return f"{type(exc).__name__}: {str(exc).replace(path.name, 'FILE')}"


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_row, min_size=1, max_size=12))
def test_any_frame_reads_the_same_from_csv_and_parquet(rows: list[dict]) -> None:
    """Property: whatever the nulls, NaNs and infinities, both files give one result."""
    frame = pd.DataFrame(rows)
    with tempfile.TemporaryDirectory() as directory:
        csv, parquet = _write_both(frame, Path(directory))
        for reader in (read_measurements_lenient, read_measurements):
            a, b = _outcome(reader, csv), _outcome(reader, parquet)
            if isinstance(a, str) or isinstance(b, str):
                assert a == b
            elif reader is read_measurements:
                _same_table(a, b)
            else:
                _same_import(a, b)


def test_a_timestamp_column_gives_each_sample_its_earliest_time(tmp_path: Path) -> None:
    from heimdall.geo import ReferencePoint

    path = tmp_path / "q.csv"
    path.write_text(
        "sample_id,timestamp,receiver_id,rx_lat,rx_lon,rss_dbm\n"
        "a,2022-04-25T10:00:05,r1,40.76,-111.84,-60\n"
        "a,2022-04-25T10:00:03,r2,40.765,-111.845,-70\n"
        "b,,r1,40.76,-111.84,-65\n"
        "c,2022-04-25T11:00:00+01:00,r1,40.76,-111.84,-62\n"
    )
    samples, names = read_measurements(path).to_samples(ReferencePoint(40.76, -111.84, 0.0), ["r1", "r2"])
    assert names == ["a", "b", "c"]
    start = float(np.datetime64("2022-04-25T10:00:00", "s").astype("int64"))
    # a: its earlier row; b: unknown; c: a UTC offset read as UTC.
    np.testing.assert_array_equal(samples.timestamp_s - start, [3.0, np.nan, 0.0])
    path.write_text("sample_id,receiver_id,rx_lat,rx_lon,rss_dbm\na,r1,40.76,-111.84,-60\n")
    assert read_measurements(path).to_samples(ReferencePoint(40.76, -111.84, 0.0), ["r1"])[0].timestamp_s is None


def test_a_timestamp_that_is_not_a_time_is_refused_with_its_row(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("sample_id,timestamp,receiver_id,rx_lat,rx_lon,rss_dbm\n"
                    "a,2022-04-25T10:00:05,r1,40.76,-111.84,-60\na,yesterday,r2,40.76,-111.84,-60\n")
    with pytest.raises(InputError, match="'timestamp'.*'yesterday' in row 3"):
        read_measurements(path)


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separated_files_import_as_the_comma_file(tmp_path: Path, separator: str) -> None:
    # Spreadsheets in locales with a decimal comma save "CSV" with semicolons.
    frame = _campaign()
    comma, other = tmp_path / "comma.csv", tmp_path / "other.csv"
    frame.to_csv(comma, index=False)
    frame.to_csv(other, index=False, sep=separator)
    _same_import(read_measurements_lenient(comma), read_measurements_lenient(other))
    _same_table(read_measurements(comma), read_measurements(other))  # what `localize` reads


def test_column_names_match_without_case_but_not_twice(tmp_path: Path) -> None:
    frame = _campaign()
    plain, shouting = tmp_path / "plain.csv", tmp_path / "upper.csv"
    frame.to_csv(plain, index=False)
    frame.rename(columns={"rss_dbm": "RSS_dBm", "sample_id": " Sample_ID"}).to_csv(shouting, index=False)
    _same_import(read_measurements_lenient(plain), read_measurements_lenient(shouting))
    upper_parquet = tmp_path / "upper.parquet"
    frame.rename(columns={"rss_dbm": "RSS_DBM"}).to_parquet(upper_parquet, index=False)
    _same_import(read_measurements_lenient(plain), read_measurements_lenient(upper_parquet))
    twice = frame.assign(RSS_DBM=-50.0)
    twice.to_csv(shouting, index=False)
    twice.to_parquet(upper_parquet, index=False)
    for path in (shouting, upper_parquet):
        with pytest.raises(InputError, match="named more than once.*rss_dbm"):
            read_measurements_lenient(path)


def test_a_missing_column_names_the_file_column_that_looks_meant(tmp_path: Path) -> None:
    path = tmp_path / "vendor.csv"
    _campaign().rename(columns={"rss_dbm": "rssi", "receiver_id": "gateway"}).to_csv(path, index=False)
    with pytest.raises(InputError) as raised:
        read_measurements_lenient(path)
    message = str(raised.value)
    assert "missing required column(s): receiver_id, rss_dbm" in message
    # Named, never renamed: a vendor's rssi may not be dBm.
    assert "rename 'gateway' to 'receiver_id', 'rssi' to 'rss_dbm'" in message
    _campaign().drop(columns="rss_dbm").to_csv(path, index=False)
    with pytest.raises(InputError) as raised:
        read_measurements(path)
    assert str(raised.value).endswith("missing required column(s): rss_dbm")


def test_decimal_commas_are_refused_by_column_not_dropped_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "comma.csv"
    text = _campaign().to_csv(index=False, sep=";")
    # Only the numbers get decimal commas, as a German or French spreadsheet writes them.
    lines = text.splitlines()
    lines[1:] = [";".join(cell.replace(".", ",") if cell[-1:].isdigit() else cell for cell in line.split(";"))
                 for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="column 'rx_lat' writes numbers with a decimal comma .'40,76'"):
        read_measurements_lenient(path)
    with pytest.raises(InputError, match="decimal comma"):
        read_measurements(path)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        # Seconds, with or without a fraction (floored, as an ISO time's fraction is).
        (["1650895952", "1650895953.9", ""], ["2022-04-25T14:12:32", "2022-04-25T14:12:33", "NaT"]),
        # Milliseconds, microseconds, nanoseconds: told apart by the column's largest magnitude.
        (["1650895952999", "1650895953000"], ["2022-04-25T14:12:32", "2022-04-25T14:12:33"]),
        (["1650895952999999"], ["2022-04-25T14:12:32"]),
        # 1.650895952999999999e18 as a float64 rounds up into the next second; as text it does not.
        (["1650895952999999999", "1650895953000000000"], ["2022-04-25T14:12:32", "2022-04-25T14:12:33"]),
        # ISO with an offset and Unix times in one column both read as UTC.
        (["2022-04-25T16:12:32+02:00", "1650895952"], ["2022-04-25T14:12:32", "2022-04-25T14:12:32"]),
    ],
)
def test_unix_times_read_in_any_unit_as_the_same_instant(cells: list[str], expected: list[str]) -> None:
    from heimdall.data.measurement_files import parse_timestamps

    values, unparsed = parse_timestamps(np.array(cells, dtype=object))
    np.testing.assert_array_equal(values, np.array(expected, dtype="datetime64[s]"))
    assert not unparsed.any()


def test_numbers_that_are_no_plausible_unix_time_are_unparsed() -> None:
    from heimdall.data.measurement_files import UNIX_TIME_YEARS, parse_timestamps

    # A compact 2022-04-25 14:12:32 read as milliseconds is the year 2610; 1650895 s is January 1970.
    for cells in (["20220425141232"], ["1650895"], ["abc", "1650895952"]):
        values, unparsed = parse_timestamps(np.array(cells, dtype=object))
        assert unparsed[0] and np.isnat(values[0])
    assert UNIX_TIME_YEARS == (1980, 2100)


def test_a_file_of_unix_times_imports_as_its_iso_twin(tmp_path: Path) -> None:
    iso, unix = tmp_path / "iso.csv", tmp_path / "unix.csv"
    frame = _campaign()
    stamps = pd.Timestamp("2024-03-01T10:00:00") + pd.to_timedelta(np.arange(len(frame)) // 4 * 7, unit="s")
    frame.assign(timestamp=stamps.strftime("%Y-%m-%dT%H:%M:%S")).to_csv(iso, index=False)
    frame.assign(timestamp=(stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta("1ms")).to_csv(unix, index=False)
    _same_import(read_measurements_lenient(iso), read_measurements_lenient(unix))
    np.testing.assert_array_equal(read_measurements(unix).timestamp_s, read_measurements(iso).timestamp_s)


def test_a_timestamp_column_in_an_unknown_format_is_one_error_not_every_row_dropped(tmp_path: Path) -> None:
    path = tmp_path / "dmy.csv"
    frame = _campaign()
    frame.assign(timestamp="25/04/2022 14:12:32").to_csv(path, index=False)
    with pytest.raises(InputError, match=r"12 of 12 values of column 'timestamp' are neither ISO 8601 nor Unix times, "
                                         r"such as '25/04/2022 14:12:32' in row 2"):
        read_measurements_lenient(path)
    # A few bad cells among good ones only drop their rows.
    frame.assign(timestamp=["yesterday"] + ["2022-04-25T14:12:32"] * (len(frame) - 1)).to_csv(path, index=False)
    assert read_measurements_lenient(path).report.rows_dropped == {"invalid value": 1}


def test_nothing_left_says_what_was_dropped(tmp_path: Path) -> None:
    path = tmp_path / "zero.csv"
    _campaign().assign(rx_lat=0.0, rx_lon=0.0).to_csv(path, index=False)
    with pytest.raises(HeimdallError, match=r"no usable sample left .*\(rows dropped: receiver at \(0, 0\): 12\)"):
        read_measurements_lenient(path)
