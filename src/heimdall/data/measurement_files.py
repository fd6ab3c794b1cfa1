"""Files in the long measurement format (CSV or Parquet): reading, cell parsing, writing.

The table and its rules are `data.measurements.MeasurementTable`; this module turns files
into it (`read_measurements`) and samples back into files (`write_measurements`).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from heimdall.data.layout import SPLIT_NAMES, SampleArrays
from heimdall.data.measurements import REQUIRED_COLUMNS, MeasurementTable
from heimdall.data.wide_format import wide_to_long
from heimdall.errors import InputError, NotFoundError
from heimdall.fileio import temp_file_beside
from heimdall.geo import ReferencePoint, enu_to_geodetic

__all__ = [
    "MAX_ROWS",
    "NUMERIC_COLUMNS",
    "number_cells",
    "parse_timestamps",
    "timestamp_seconds",
    "read_long_file",
    "read_long_frame",
    "read_measurements",
    "refuse_unreadable_times",
    "write_measurements",
]

#: Every column the long format names.
LONG_COLUMNS = ("sample_id", "timestamp", "receiver_id", "rx_lat", "rx_lon", "rx_alt_m", "rss_dbm", "snr_db",
                "frequency_hz", "tx_lat", "tx_lon", "split")
NUMERIC_COLUMNS = ("rx_lat", "rx_lon", "rx_alt_m", "rss_dbm", "snr_db", "frequency_hz", "tx_lat", "tx_lon")
#: A request or file larger than this many rows is refused rather than half-processed.
MAX_ROWS = 5_000_000
#: A Unix time: a plain number (an integer count, or seconds with a fraction).
_UNIX_TIME = re.compile(r"[+-]?\d+(\.\d*)?")
#: Years (first included, last excluded) a Unix time must fall in to be read as one.
UNIX_TIME_YEARS = (1980, 2100)
#: Column separators a CSV may use: spreadsheets in locales with a decimal comma write ";".
_SEPARATORS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
#: Names other tools give the long format's columns; named in the error, never renamed
#: silently (an `rssi` in a vendor's own units is not dBm).
_LIKELY_MEANT = {
    "rss_dbm": ("rssi", "rss", "rssi_dbm", "power_dbm", "signal_dbm"),
    "rx_lat": ("rxlat", "gw_lat", "gateway_lat", "receiver_lat"),
    "rx_lon": ("rxlon", "gw_lon", "gateway_lon", "receiver_lon"),
    "tx_lat": ("lat", "latitude", "true_lat"),
    "tx_lon": ("lon", "lng", "longitude", "true_lon"),
    "receiver_id": ("rx_id", "receiver", "gateway", "gateway_id", "station", "station_id"),
    "sample_id": ("sample", "message_id", "packet_id", "transmission_id", "uplink_id"),
}


def _cell_text(column: pd.Series) -> pd.Series:
    """A column of any dtype as stripped Python strings, "" for every kind of missing value
    (null, None, NaN, NaT, NA): exactly what an empty CSV cell reads as."""
    missing = column.isna().to_numpy()
    text = np.array([str(v).strip() for v in column.to_numpy(dtype=object)], dtype=object)
    text[missing] = ""
    return pd.Series(text, index=column.index, dtype=object)


def _is_number_dtype(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def read_long_frame(path: Path) -> pd.DataFrame:
    """The one reader of long-format files (CSV or Parquet), with one meaning of "missing".

    Every cell is a stripped string, "" where the value is missing (an empty CSV cell; a
    Parquet null, NaN or NaT), except the numeric columns (`NUMERIC_COLUMNS`) a Parquet file
    stores as numbers: those stay float64 with NaN where missing (formatting millions of
    floats as text only to parse them again cost seconds). `number_cells` reads either form
    the same way; callers decide what a missing value means per column (an empty `rss_dbm`
    = listened, heard nothing; an empty `snr_db` = not measured). At most `MAX_ROWS` rows.
    """
    try:
        if path.suffix.lower() == ".parquet":
            raw = pd.read_parquet(path)
            if len(raw) > MAX_ROWS:
                raise InputError(f"{path.name}: more than {MAX_ROWS} rows; split the file")
            _refuse_repeated(path.name, [_column_key(name) for name in raw.columns])
            frame = pd.DataFrame(
                {
                    _column_key(name): (
                        raw[name].to_numpy(dtype=np.float64, na_value=np.nan)
                        if _column_key(name) in NUMERIC_COLUMNS and _is_number_dtype(raw[name].dtype)
                        else _cell_text(raw[name])
                    )
                    for name in raw.columns
                },
                index=raw.index,
            )
        else:
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, nrows=MAX_ROWS + 1, sep=_csv_separator(path)
            )
            frame = frame.apply(lambda column: column.astype(object).str.strip()) if len(frame.columns) else frame
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: not a readable CSV/Parquet measurement file ({exc})") from exc
    if len(frame) > MAX_ROWS:
        raise InputError(f"{path.name}: more than {MAX_ROWS} rows; split the file")
    names = [_column_key(c) for c in frame.columns]
    _refuse_repeated(path.name, names)
    frame.columns = names
    return frame


def _column_key(name: object) -> str:
    """A column's name as matched: stripped, without case (a spreadsheet's "RSS_dBm" is rss_dbm)."""
    return str(name).strip().lower()


def _refuse_repeated(file_name: str, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{file_name}: column(s) named more than once (case ignored): {', '.join(repeated)}")


def _csv_separator(path: Path) -> str:
    """The header line's separator: "," unless the header has none and ";" or a tab splits it."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline(65536)
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    if counts[","] > 0:
        return ","
    best = max(_SEPARATORS[1:], key=counts.__getitem__)
    return best if counts[best] > 0 else ","


def _missing_message(name: str, missing: list[str], present: list[str]) -> str:
    """The missing-columns error, naming a column of the file that looks meant for each."""
    hints = []
    # A column the format already names (tx_lat) is never offered for another (rx_lat).
    free = [c for c in present if c not in LONG_COLUMNS]
    for column in missing:
        meant = [c for c in free if c in _LIKELY_MEANT.get(column, ())]
        meant = meant or difflib.get_close_matches(column, free, n=1, cutoff=0.75)
        if meant:
            hints.append(f"{meant[0]!r} to {column!r}")
            free.remove(meant[0])
    message = f"{name}: missing required column(s): {', '.join(missing)}"
    if hints:
        message += f"; if the file means them, rename {', '.join(hints)}"
    if {"receiver_id", "rss_dbm"} <= set(missing):
        message += "; a table with one column per receiver is read with --receivers FILE (their positions)"
    return message


def number_cells(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column of `read_long_frame` as numbers: (float64 values, NaN where missing or
    invalid; mask of missing cells; mask of cells present but not a finite number).

    Text cells: "" is missing; "nan", "inf", "abc" are present and invalid. Numeric cells
    (Parquet): NaN is missing (Parquet writers store a null float as NaN), +-inf invalid.
    """
    if _is_number_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, ~missing & ~np.isfinite(values)
    text = column.astype(object)
    missing = (text == "").to_numpy() | text.isna().to_numpy()
    values = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=np.float64)
    invalid = ~missing & ~np.isfinite(values)
    return np.where(missing, np.nan, values), missing, invalid


def _parse_numeric(column: pd.Series, name: str, allow_empty: bool) -> np.ndarray:
    """A column -> float64; missing cells -> NaN when allowed; anything non-finite is an error."""
    values, missing, invalid = number_cells(column)
    if missing.any() and not allow_empty:
        raise InputError(f"column {name!r} is empty in row {int(np.flatnonzero(missing)[0]) + 2}")
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise InputError(
            f"column {name!r} has a non-finite or non-numeric value {str(column.iloc[row])!r} in row {row + 2}"
        )
    return values


def parse_timestamps(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 strings or Unix times -> (datetime64[s] with NaT for empty, bool mask of
    unparseable values).

    A plain number is a Unix time, in seconds, milliseconds, microseconds or nanoseconds as
    the column's largest magnitude says (network servers and SDR logs write them so); one
    that lands outside `UNIX_TIME_YEARS` (a compact 20220425141232, say) is unparseable
    rather than a date centuries away.
    """
    series = pd.Series(text, dtype=object).astype(str).str.strip()
    empty = series.isin(["", "nan", "NaT", "None"])
    number = ~empty & series.str.fullmatch(_UNIX_TIME).to_numpy(dtype=bool)
    parsed = pd.to_datetime(series.where(~empty & ~number, None), errors="coerce", format="ISO8601", utc=True)
    values = parsed.dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    if number.any():
        cells = series[number]
        counts = pd.to_numeric(cells).to_numpy(dtype=np.float64)
        # s below 1e11 (year 5138), ms below 1e14, us below 1e17, else ns.
        power = int(np.searchsorted([1e11, 1e14, 1e17], float(np.abs(counts).max()), side="right"))
        seconds = np.floor(counts / 1000.0**power)
        # Whole numbers lose their sub-second digits as text: a float64 nanosecond count
        # (1.65e18) is not exact and could round into the next second.
        whole = ~cells.str.contains(".", regex=False).to_numpy()
        if power and whole.any():
            digits = cells[whole].str[: -3 * power]
            seconds[whole] = pd.to_numeric(digits.where(digits.str.fullmatch(r"[+-]?\d+"), "0")).to_numpy(np.float64)
        first, last = (float(np.datetime64(f"{y}-01-01", "s").astype("int64")) for y in UNIX_TIME_YEARS)
        plausible = (seconds >= first) & (seconds < last)
        values[number] = np.where(plausible, seconds, 0).astype("int64").astype("datetime64[s]")
        values[np.flatnonzero(number)[~plausible]] = np.datetime64("NaT", "s")
    return values, ~empty.to_numpy() & np.isnat(values)


def refuse_unreadable_times(name: str, column: pd.Series, times: np.ndarray, unparsed: np.ndarray) -> None:
    """A timestamp `column` mostly in a format the reader does not know (25/04/2022) is one
    error naming it, not every row dropped as invalid; a few bad cells drop their rows.
    `times` and `unparsed` are `parse_timestamps`' answer for it."""
    given = int((unparsed | ~np.isnat(times)).sum())
    if given and unparsed.sum() * 2 > given:
        row = int(np.flatnonzero(unparsed)[0])
        raise InputError(
            f"{name}: {int(unparsed.sum())} of {given} values of column 'timestamp' are neither ISO 8601 nor Unix "
            f"times, such as {str(column.iloc[row])!r} in row {row + 2}; write 2022-04-25T14:12:32 "
            "(an offset such as +02:00 is read) or seconds since 1970"
        )


def timestamp_seconds(times: np.ndarray) -> np.ndarray:
    """datetime64 -> seconds since 1970-01-01 (float64), NaN for NaT: a dataset's `timestamp_s`."""
    times = np.asarray(times).astype("datetime64[s]")
    return np.where(np.isnat(times), np.nan, times.astype("int64").astype(np.float64))


def read_measurements(path: Path, require_truth: bool = False, receivers: Path | None = None) -> MeasurementTable:
    """Read and validate a CSV or Parquet file in the long measurement format (or a wide
    one with its `receivers` file, `read_long_file`)."""
    path = Path(path)
    frame = read_long_file(path, REQUIRED_COLUMNS + (("tx_lat", "tx_lon") if require_truth else ()), receivers)
    if frame.empty:
        raise InputError(f"{path.name}: no measurement rows")
    # Cell-level rules (a number that is not one, an empty required cell) with their row;
    # the value rules are `MeasurementTable.from_columns`'s, the API's too.
    allow_empty = {"rx_lat": False, "rx_lon": False, "tx_lat": not require_truth, "tx_lon": not require_truth}
    columns = {
        name: _parse_numeric(frame[name], name, allow_empty.get(name, True))
        for name in ("rx_lat", "rx_lon", "tx_lat", "tx_lon", "rss_dbm", "rx_alt_m", "snr_db")
        if name in frame.columns
    }
    if "timestamp" in frame.columns:
        # Optional: at localisation a radio map widens the ellipses of transmissions far in
        # time from its training ones (`Localizer.predict`).
        times, unparsed = parse_timestamps(frame["timestamp"].to_numpy())
        if unparsed.any():
            row = int(np.flatnonzero(unparsed)[0])
            raise InputError(
                f"{path.name}: column 'timestamp' has a value that is neither an ISO 8601 nor a Unix time "
                f"{str(frame['timestamp'].iloc[row])!r} in row {row + 2}"
            )
        columns["timestamp_s"] = timestamp_seconds(times)
    return MeasurementTable.from_columns(
        path.name, frame["sample_id"].to_numpy(), frame["receiver_id"].to_numpy(), columns
    )


def read_long_file(path: Path, required: tuple[str, ...], receivers: Path | None = None) -> pd.DataFrame:
    """`read_long_frame` of an existing file that has the `required` columns (else an error).

    With `receivers` (a file of receiver positions) `path` is a wide fingerprint table, one
    row per transmission, turned into long rows first (`wide_format.wide_to_long`)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"measurement file {path} not found")
    if receivers is not None and not Path(receivers).is_file():
        raise NotFoundError(f"receivers file {receivers} not found")
    frame = read_long_frame(path)
    offered = list(frame.columns)
    if receivers is not None:
        receivers = Path(receivers)
        wide = frame
        frame = wide_to_long(wide, read_long_frame(receivers), (path.name, receivers.name), MAX_ROWS)
        # The wide file's other columns (`latitude` meant for tx_lat) are not carried into
        # the long rows, but the hint offers them; its receivers' columns it does not.
        stations = {_column_key(x) for x in frame["receiver_id"].unique()}
        offered = list(frame.columns) + [c for c in wide.columns if _column_key(c) not in stations]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(_missing_message(path.name, missing, offered))
    _refuse_decimal_commas(path.name, frame)
    return frame


def _refuse_decimal_commas(name: str, frame: pd.DataFrame) -> None:
    """A numeric column written with decimal commas ("40,77") is refused by name, before
    the importer would drop every row of it as unparseable."""
    for column in NUMERIC_COLUMNS:
        if column not in frame.columns or _is_number_dtype(frame[column].dtype):
            continue
        head = frame[column].iloc[:1000]
        filled = head[head != ""]
        matches = filled.str.fullmatch(_DECIMAL_COMMA)
        if len(filled) and matches.mean() > 0.5:
            row = int(np.flatnonzero(matches.to_numpy())[0])
            raise InputError(
                f"{name}: column {column!r} writes numbers with a decimal comma "
                f"({filled.iloc[row]!r}); write them with a decimal point"
            )


def write_measurements(
    path: Path, samples: SampleArrays, reference: ReferencePoint, station_ids: list[str]
) -> int:
    """Write `samples` in the long format (truth included), atomically; return rows written."""
    n, r = samples.rx_id.shape
    sample_index, slot = np.nonzero(samples.present)
    pos = samples.rx_position_m[sample_index, slot].astype(np.float64)
    lat, lon, alt = enu_to_geodetic(pos[:, 0], pos[:, 1], pos[:, 2], reference)
    ids = samples.rx_id[sample_index, slot]
    rss = samples.rss_dbm[sample_index, slot].astype(np.float64)
    heard = samples.heard[sample_index, slot]
    frame = pd.DataFrame(
        {
            "sample_id": samples.sample_id[sample_index],
            "receiver_id": [station_ids[i] if 0 <= i < len(station_ids) else f"station-{i}" for i in ids],
            "rx_lat": np.round(lat, 7),
            "rx_lon": np.round(lon, 7),
            "rx_alt_m": np.round(alt, 2),
            "rss_dbm": np.where(heard, np.round(rss, 3), np.nan),
            "snr_db": np.where(heard, np.round(samples.snr_db[sample_index, slot].astype(np.float64), 3), np.nan),
            "tx_lat": np.round(samples.tx_lat_deg[sample_index], 7),
            "tx_lon": np.round(samples.tx_lon_deg[sample_index], 7),
            "split": [SPLIT_NAMES[c] for c in samples.split[sample_index]],
        }
    )
    if samples.timestamp_s is not None:
        # Written as the importer read them (naive times stay naive), so a round trip keeps them.
        seconds = samples.timestamp_s[sample_index]
        stamps = pd.to_datetime(np.where(np.isfinite(seconds), seconds, np.nan), unit="s")
        frame.insert(1, "timestamp", pd.Series(stamps).dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("").to_numpy())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    os.close(fd)
    try:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, na_rep="")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(frame)
