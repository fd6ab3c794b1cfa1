"""The long measurement format of DESIGN.md: one row per (sample, receiver).

`sample_id, timestamp?, receiver_id, rx_lat, rx_lon, rx_alt_m?, rss_dbm?, snr_db?,
frequency_hz?, tx_lat?, tx_lon?`. An empty `rss_dbm` means the receiver listened and heard
nothing; a value that is present but not a finite number is an error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heimdall.data.layout import SPLIT_NAMES, UNKNOWN_STATION, SampleArrays
from heimdall.errors import InputError, NotFoundError
from heimdall.fileio import temp_file_beside
from heimdall.geo import ReferencePoint, enu_to_geodetic, geodetic_to_enu, ground_to_local

__all__ = [
    "REQUIRED_COLUMNS",
    "RSS_RANGE_DBM",
    "SNR_RANGE_DB",
    "RX_ALT_RANGE_M",
    "out_of_range",
    "MeasurementTable",
    "read_long_frame",
    "read_long_file",
    "coordinates_out_of_range",
    "duplicate_receivers",
    "unheard_samples",
    "number_cells",
    "read_measurements",
    "write_measurements",
]

REQUIRED_COLUMNS = ("sample_id", "receiver_id", "rx_lat", "rx_lon", "rss_dbm")
NUMERIC_COLUMNS = ("rx_lat", "rx_lon", "rx_alt_m", "rss_dbm", "snr_db", "frequency_hz", "tx_lat", "tx_lon")
#: A request or file larger than this many rows is refused rather than half-processed.
MAX_ROWS = 5_000_000
#: Plausible ranges (inclusive) of the per-row readings; the API's request schema uses the
#: same ones, so a file and a request are held to the same rules. |rss_dbm| beyond 400 is no
#: power reading; an antenna more than 500 m below sea level or 100 km up is a typo.
RSS_RANGE_DBM = (-400.0, 400.0)
SNR_RANGE_DB = (-400.0, 400.0)
RX_ALT_RANGE_M = (-500.0, 100_000.0)
#: Up to this many rows (a localisation request's size) per-sample checks run in Python.
_SMALL_TABLE_ROWS = 1024


def out_of_range(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Mask of finite `values` outside the inclusive `bounds` (NaN = absent, never out of range)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & ((values < bounds[0]) | (values > bounds[1]))


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
            frame = pd.DataFrame(
                {
                    str(name).strip(): (
                        raw[name].to_numpy(dtype=np.float64, na_value=np.nan)
                        if str(name).strip() in NUMERIC_COLUMNS and _is_number_dtype(raw[name].dtype)
                        else _cell_text(raw[name])
                    )
                    for name in raw.columns
                },
                index=raw.index,
            )
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_ROWS + 1)
            frame = frame.apply(lambda column: column.astype(object).str.strip()) if len(frame.columns) else frame
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: not a readable CSV/Parquet measurement file ({exc})") from exc
    if len(frame) > MAX_ROWS:
        raise InputError(f"{path.name}: more than {MAX_ROWS} rows; split the file")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


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


@dataclass(frozen=True)
class MeasurementTable:
    """Validated rows of a measurement file, as columns."""

    sample_id: np.ndarray  # [M] str
    receiver_id: np.ndarray  # [M] str
    rx_lat_deg: np.ndarray
    rx_lon_deg: np.ndarray
    rx_alt_m: np.ndarray
    rss_dbm: np.ndarray  # NaN = not heard
    snr_db: np.ndarray
    tx_lat_deg: np.ndarray  # NaN when absent
    tx_lon_deg: np.ndarray

    @classmethod
    def from_columns(
        cls,
        source: str,
        sample_id: np.ndarray,
        receiver_id: np.ndarray,
        columns: dict[str, np.ndarray],
        first_row: int = 2,
    ) -> MeasurementTable:
        """The one validator of measurements: a table from id and number columns, or an
        `InputError` naming `source` and the first problem.

        `columns` holds float64 arrays (NaN = empty) named as in the file format: `rx_lat`,
        `rx_lon` (required), `rss_dbm` (NaN = listened, heard nothing), `rx_alt_m`, `snr_db`,
        `tx_lat`, `tx_lon` (optional). Row numbers in messages start at `first_row` (2 in a
        file with a header line).
        """
        m = len(sample_id)
        if m == 0:
            raise InputError(f"{source}: no measurements")
        for name, ids in (("sample_id", sample_id), ("receiver_id", receiver_id)):
            if any(not str(i).strip() for i in ids):
                raise InputError(f"{source}: column {name!r} has an empty value")

        def column(name: str) -> np.ndarray:
            return np.asarray(columns[name], dtype=np.float64) if name in columns else np.full(m, np.nan)

        rx_lat, rx_lon = column("rx_lat"), column("rx_lon")
        if not (np.all(np.isfinite(rx_lat)) and np.all(np.isfinite(rx_lon))):
            raise InputError(f"{source}: rx_lat and rx_lon are required for every receiver")
        _check_coordinates(rx_lat, rx_lon, "receiver", source)
        tx_lat, tx_lon = column("tx_lat"), column("tx_lon")
        if "tx_lat" in columns or "tx_lon" in columns:  # a request has no truth to check
            known = np.isfinite(tx_lat) & np.isfinite(tx_lon)
            _check_coordinates(tx_lat[known], tx_lon[known], "transmitter", source)
        rss = column("rss_dbm")
        if np.any(out_of_range(rss, RSS_RANGE_DBM)):
            raise InputError(f"{source}: rss_dbm outside +-400 dBm is not a power reading")
        rx_alt, snr = column("rx_alt_m"), column("snr_db")
        for name, values, bounds in (("rx_alt_m", rx_alt, RX_ALT_RANGE_M), ("snr_db", snr, SNR_RANGE_DB)):
            bad = out_of_range(values, bounds)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"{source}: {name} {values[row]:g} in row {row + first_row} is outside [{bounds[0]:g}, {bounds[1]:g}]"
                )
        table = cls(
            sample_id=np.asarray([str(i).strip() for i in sample_id], dtype=object),
            receiver_id=np.asarray([str(i).strip() for i in receiver_id], dtype=object),
            rx_lat_deg=rx_lat,
            rx_lon_deg=rx_lon,
            rx_alt_m=np.where(np.isnan(rx_alt), 0.0, rx_alt),
            rss_dbm=rss,
            snr_db=snr,
            tx_lat_deg=tx_lat,
            tx_lon_deg=tx_lon,
        )
        _check_samples(table, source)
        return table

    @classmethod
    def from_rows(cls, rows: Sequence[Any], source: str = "request") -> MeasurementTable:
        """One transmission (sample "0") from per-receiver records with the attributes
        `receiver_id`, `rx_lat`, `rx_lon` and optional `rx_alt_m`, `rss_dbm`, `snr_db`
        (None = empty), validated by `from_columns`."""

        def column(name: str) -> np.ndarray:
            values = [getattr(row, name, None) for row in rows]
            numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            if np.any(np.array([v is not None for v in values], dtype=bool) & ~np.isfinite(numbers)):
                raise InputError(f"{source}: {name} must be a finite number")
            return numbers

        names = ("rx_lat", "rx_lon", "rx_alt_m", "rss_dbm", "snr_db")
        ids = np.array([str(row.receiver_id) for row in rows], dtype=object)
        return cls.from_columns(source, np.full(len(rows), "0", dtype=object), ids, {n: column(n) for n in names})

    @property
    def has_truth(self) -> bool:
        return bool(np.all(np.isfinite(self.tx_lat_deg)) and np.all(np.isfinite(self.tx_lon_deg)))

    def to_samples(self, reference: ReferencePoint, station_ids: list[str]) -> tuple[SampleArrays, list[str]]:
        """Pad into `SampleArrays` about `reference`; returns it and the sample ids in order.

        Receivers the model does not know get `UNKNOWN_STATION` (its generic embedding).
        """
        order, first = np.unique(self.sample_id, return_index=True)
        names = [str(s) for s in self.sample_id[np.sort(first)]]
        index_of = {name: i for i, name in enumerate(names)}
        sample_index = np.array([index_of[s] for s in self.sample_id])
        counts = np.bincount(sample_index, minlength=len(names))
        r = int(counts.max())
        n = len(names)
        slot = np.zeros(len(sample_index), dtype=np.int64)
        seen = np.zeros(n, dtype=np.int64)
        for row, s in enumerate(sample_index):
            slot[row] = seen[s]
            seen[s] += 1
        station_index = {sid: i for i, sid in enumerate(station_ids)}
        east, north, up = geodetic_to_enu(self.rx_lat_deg, self.rx_lon_deg, self.rx_alt_m, reference)
        rx_position = np.zeros((n, r, 3), dtype=np.float32)
        rx_position[sample_index, slot] = np.column_stack([east, north, up])
        rx_id = np.full((n, r), UNKNOWN_STATION, dtype=np.int64)
        rx_id[sample_index, slot] = [station_index.get(str(x), UNKNOWN_STATION) for x in self.receiver_id]
        rss = np.full((n, r), np.nan, dtype=np.float32)
        rss[sample_index, slot] = self.rss_dbm
        snr = np.full((n, r), np.nan, dtype=np.float32)
        snr[sample_index, slot] = self.snr_db
        present = np.zeros((n, r), dtype=bool)
        present[sample_index, slot] = True
        heard = present & np.isfinite(rss)
        tx_lat = np.full(n, np.nan)
        tx_lon = np.full(n, np.nan)
        tx_lat[sample_index] = self.tx_lat_deg
        tx_lon[sample_index] = self.tx_lon_deg
        if self.has_truth:
            tx_e, tx_n = ground_to_local(tx_lat, tx_lon, reference)
        else:
            tx_e = tx_n = np.full(n, np.nan)
        samples = SampleArrays(
            sample_id=np.arange(n, dtype=np.int64),
            rx_position_m=rx_position,
            rx_id=rx_id,
            rss_dbm=rss,
            snr_db=snr,
            heard=heard,
            present=present,
            tx_position_m=np.column_stack([tx_e, tx_n]).astype(np.float32),
            tx_lat_deg=tx_lat,
            tx_lon_deg=tx_lon,
            tx_power_dbm=np.full(n, np.nan, dtype=np.float32),
            split=np.full(n, 2, dtype=np.int8),
        )
        return samples, names


def read_measurements(path: Path, require_truth: bool = False) -> MeasurementTable:
    """Read and validate a CSV or Parquet file in the long measurement format."""
    path = Path(path)
    frame = read_long_file(path, REQUIRED_COLUMNS + (("tx_lat", "tx_lon") if require_truth else ()))
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
    return MeasurementTable.from_columns(
        path.name, frame["sample_id"].to_numpy(), frame["receiver_id"].to_numpy(), columns
    )


def read_long_file(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """`read_long_frame` of an existing file that has the `required` columns (else an error)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"measurement file {path} not found")
    frame = read_long_frame(path)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name}: missing required column(s): {', '.join(missing)}")
    return frame


def coordinates_out_of_range(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Mask of latitudes beyond +-90 or longitudes beyond +-180 degrees (NaN is not out of range)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(lat) > 90) | (np.abs(lon) > 180)


def duplicate_receivers(sample_id: np.ndarray, receiver_id: np.ndarray) -> np.ndarray:
    """Mask of rows naming a receiver already listed earlier in the same sample."""
    if len(sample_id) > _SMALL_TABLE_ROWS:
        return pd.DataFrame({"s": sample_id, "r": receiver_id}).duplicated(["s", "r"]).to_numpy()
    # An API request: a set is ~50x faster than building a DataFrame for a dozen rows.
    seen: set[tuple[str, str]] = set()
    duplicated = np.zeros(len(sample_id), dtype=bool)
    for row, key in enumerate(zip(sample_id, receiver_id, strict=True)):
        duplicated[row] = key in seen
        seen.add(key)
    return duplicated


def unheard_samples(sample_id: np.ndarray, heard: np.ndarray) -> np.ndarray:
    """Mask of rows whose sample has no row with `heard`."""
    return ~np.isin(sample_id, np.unique(sample_id[heard]))


def _check_coordinates(lat: np.ndarray, lon: np.ndarray, what: str, source: str) -> None:
    bad_lat = np.abs(lat) > 90
    bad_lon = np.abs(lon) > 180
    if bad_lat.any():
        raise InputError(f"{source}: {what} latitude {lat[bad_lat][0]} out of range [-90, 90]")
    if bad_lon.any():
        raise InputError(f"{source}: {what} longitude {lon[bad_lon][0]} out of range [-180, 180]")


def _check_samples(table: MeasurementTable, source: str) -> None:
    duplicated = duplicate_receivers(table.sample_id, table.receiver_id)
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise InputError(f"{source}: receiver {table.receiver_id[row]!r} appears twice in sample {table.sample_id[row]!r}")
    unheard = unheard_samples(table.sample_id, np.isfinite(table.rss_dbm))
    if unheard.any():
        raise InputError(
            f"{source}: sample {table.sample_id[np.flatnonzero(unheard)[0]]!r} has no receiver that heard anything "
            "(at least one receiver must have heard the transmitter: rss_dbm not empty)"
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
