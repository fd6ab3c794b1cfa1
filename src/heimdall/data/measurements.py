"""The long measurement format (docs/TRAINING.md, section 7): one row per (sample, receiver).

`sample_id, timestamp?, receiver_id, rx_lat, rx_lon, rx_alt_m?, rss_dbm?, snr_db?,
frequency_hz?, tx_lat?, tx_lon?`. An empty `rss_dbm`, or one below the thermal noise floor
(-174 dBm: a "not received" marker such as -200), means the receiver listened and heard
nothing; a value that is present but not a finite number is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from heimdall.data.layout import UNKNOWN_STATION, SampleArrays
from heimdall.errors import InputError
from heimdall.geo import ReferencePoint, geodetic_to_enu, ground_to_local

__all__ = [
    "REQUIRED_COLUMNS",
    "RSS_RANGE_DBM",
    "SNR_RANGE_DB",
    "RX_ALT_RANGE_M",
    "out_of_range",
    "MeasurementTable",
    "coordinates_out_of_range",
    "duplicate_receivers",
    "unheard_samples",
    "NOT_RECEIVED_BELOW_DBM",
    "not_received_markers",
]

REQUIRED_COLUMNS = ("sample_id", "receiver_id", "rx_lat", "rx_lon", "rss_dbm")
#: Plausible ranges (inclusive) of the per-row readings; the API's request schema uses the
#: same ones, so a file and a request are held to the same rules. |rss_dbm| beyond 400 is no
#: power reading; an antenna more than 500 m below sea level or 100 km up is a typo.
RSS_RANGE_DBM = (-400.0, 400.0)
#: A received power below the thermal noise floor in 1 Hz (kTB at 290 K: -174 dBm) is no
#: measurement: fingerprint files write such values (-200 dBm is common) for "not received".
#: They are read as "listened, heard nothing", the same as an empty `rss_dbm`; read as powers,
#: they skewed the path-loss fit and cost the radio map 25-37 m of median on two synthetic
#: LoRaWAN-like campaigns (benchmarks/not_received.py, docs/REAL_DATA.md).
NOT_RECEIVED_BELOW_DBM = -174.0
SNR_RANGE_DB = (-400.0, 400.0)
RX_ALT_RANGE_M = (-500.0, 100_000.0)
#: Up to this many rows (a localisation request's size) per-sample checks run in Python.
_SMALL_TABLE_ROWS = 1024


def out_of_range(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Mask of finite `values` outside the inclusive `bounds` (NaN = absent, never out of range)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & ((values < bounds[0]) | (values > bounds[1]))


def not_received_markers(rss_dbm: np.ndarray) -> np.ndarray:
    """Mask of readings below `NOT_RECEIVED_BELOW_DBM`: "not received" markers, not powers."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(rss_dbm) & (rss_dbm < NOT_RECEIVED_BELOW_DBM)


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
    #: [M] seconds (the file's `timestamp`), NaN where unknown; None: no timestamp column.
    timestamp_s: np.ndarray | None = None

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
        `rx_lon` (required), `rss_dbm` (NaN or below `NOT_RECEIVED_BELOW_DBM` = listened, heard
        nothing), `rx_alt_m`, `snr_db`, `tx_lat`, `tx_lon`, `timestamp_s` (optional; seconds,
        NaN where unknown). Row numbers in messages
        start at `first_row` (2 in a file with a header line).
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
        rss = np.where(not_received_markers(rss), np.nan, rss)
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
            timestamp_s=column("timestamp_s") if "timestamp_s" in columns else None,
        )
        _check_samples(table, source)
        return table

    @classmethod
    def from_rows(cls, rows: Sequence[Any], source: str = "request", timestamp_s: float | None = None) -> MeasurementTable:
        """One transmission (sample "0") from per-receiver records with the attributes
        `receiver_id`, `rx_lat`, `rx_lon` and optional `rx_alt_m`, `rss_dbm`, `snr_db`
        (None = empty), validated by `from_columns`; `timestamp_s`: when it was heard (s)."""

        def column(name: str) -> np.ndarray:
            values = [getattr(row, name, None) for row in rows]
            numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            if np.any(np.array([v is not None for v in values], dtype=bool) & ~np.isfinite(numbers)):
                raise InputError(f"{source}: {name} must be a finite number")
            return numbers

        names = ("rx_lat", "rx_lon", "rx_alt_m", "rss_dbm", "snr_db")
        ids = np.array([str(row.receiver_id) for row in rows], dtype=object)
        columns = {n: column(n) for n in names}
        if timestamp_s is not None:
            columns["timestamp_s"] = np.full(len(rows), float(timestamp_s))
        return cls.from_columns(source, np.full(len(rows), "0", dtype=object), ids, columns)

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
            timestamp_s=self._sample_times(sample_index, n),
        )
        return samples, names

    def _sample_times(self, sample_index: np.ndarray, n: int) -> np.ndarray | None:
        """Each sample's earliest known row timestamp (s, NaN where none), None without any."""
        if self.timestamp_s is None or not np.isfinite(self.timestamp_s).any():
            return None
        times = np.full(n, np.inf)
        np.minimum.at(times, sample_index, np.where(np.isfinite(self.timestamp_s), self.timestamp_s, np.inf))
        return np.where(np.isinf(times), np.nan, times)


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
    # Hashed, not np.isin: sample ids are often strings, and np.isin on object arrays compares
    # every row with every id (43 s for a 455,000-row file of 12,309 transmissions).
    codes, uniques = pd.factorize(pd.Series(sample_id, dtype=object), use_na_sentinel=False)
    heard_any = np.bincount(codes[heard], minlength=len(uniques)) > 0
    return ~heard_any[codes]


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
