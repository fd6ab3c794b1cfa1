"""Fingerprint tables ("wide" files) turned into the long measurement format.

Fingerprinting campaigns are often published one row per transmission with one column of
received power per receiver (LoRaWAN gateway tables, WiFi/BLE fingerprint sets), and the
receivers' positions in a file of their own. `wide_to_long` turns such a pair of frames
(as `measurement_files.read_long_frame` reads them: names stripped and lower-case, cells
text or float) into the rows of the long format, one per (transmission, receiver), so the
importer and `localize` apply the same rules to both layouts.

The wide file's columns: `sample_id` (optional; rows are numbered from 1 without it),
`timestamp`, `frequency_hz`, `tx_lat`, `tx_lon` (optional, as in the long format), and one
column per receiver of the receivers file, named by its `receiver_id` (case ignored),
holding that receiver's power in dBm: empty, or a marker below -174 dBm such as -200, where
it heard nothing. Other columns (a spreading factor, an HDOP) are ignored and named in the
log. The receivers file: `receiver_id, rx_lat, rx_lon, rx_alt_m?`, one row per receiver.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from heimdall.data.measurements import coordinates_out_of_range
from heimdall.errors import InputError

__all__ = ["RESERVED_COLUMNS", "RECEIVER_COLUMNS", "wide_to_long"]

log = logging.getLogger(__name__)

#: Columns of a wide file that describe the transmission, never a receiver.
RESERVED_COLUMNS = ("sample_id", "timestamp", "frequency_hz", "tx_lat", "tx_lon")
#: Columns of a receivers file (`rx_alt_m` optional).
RECEIVER_COLUMNS = ("receiver_id", "rx_lat", "rx_lon", "rx_alt_m")


def _numbers(column: pd.Series) -> np.ndarray:
    """Text or numeric cells -> float64, NaN where empty or not a number."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(column.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)


def _receivers(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The receivers file checked strictly (it is short and every row matters): id, lat, lon, alt."""
    missing = [c for c in RECEIVER_COLUMNS[:3] if c not in frame.columns]
    if missing:
        raise InputError(f"{name}: missing required column(s): {', '.join(missing)}")
    if frame.empty:
        raise InputError(f"{name}: no receivers")
    ids = frame["receiver_id"].astype(str).str.strip()
    if (ids == "").any():
        raise InputError(f"{name}: empty receiver_id in row {int(np.flatnonzero(ids == '')[0]) + 2}")
    keys = ids.str.lower()
    repeated = sorted(set(ids[keys.duplicated(keep=False)]))
    if repeated:
        raise InputError(f"{name}: receiver(s) listed more than once (case ignored): {', '.join(repeated)}")
    reserved = sorted(set(ids[keys.isin(RESERVED_COLUMNS)]))
    if reserved:
        raise InputError(f"{name}: receiver id(s) {', '.join(reserved)} name a column of the transmission; rename them")
    lat, lon = _numbers(frame["rx_lat"]), _numbers(frame["rx_lon"])
    # An empty altitude is ground level, as in the long format.
    alt = _numbers(frame["rx_alt_m"]) if "rx_alt_m" in frame.columns else np.zeros(len(frame))
    alt = np.where(np.isnan(alt), 0.0, alt)
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & np.isfinite(alt)) | coordinates_out_of_range(lat, lon)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}: receiver {ids.iloc[row]!r} has no valid position (row {row + 2})")
    return pd.DataFrame({"key": keys.to_numpy(), "receiver_id": ids.to_numpy(), "rx_lat": lat, "rx_lon": lon,
                         "rx_alt_m": alt})


def wide_to_long(wide: pd.DataFrame, receivers: pd.DataFrame, names: tuple[str, str], max_rows: int) -> pd.DataFrame:
    """One row per transmission x receiver column, in the long format's columns.

    `names` are the two files' names for messages; `max_rows` bounds the long table (the
    product of transmissions and receivers) before it is built.
    """
    wide_name, receivers_name = names
    stations = _receivers(receivers, receivers_name)
    columns = [c for c in wide.columns if c in set(stations["key"])]
    if not columns:
        layout = ("; it has a receiver_id column: a file in the long format needs no --receivers"
                  if "receiver_id" in wide.columns else "")
        raise InputError(
            f"{wide_name}: none of the {len(stations)} receivers of {receivers_name} is a column "
            f"(a receiver's readings go in a column named by its receiver_id){layout}"
        )
    ignored = [c for c in wide.columns if c not in columns and c not in RESERVED_COLUMNS]
    if ignored:
        log.info("%s: columns ignored (neither a receiver of %s nor a transmission's): %s",
                 wide_name, receivers_name, ", ".join(ignored))
    n, r = len(wide), len(columns)
    if n * r > max_rows:
        raise InputError(
            f"{wide_name}: {n} transmissions x {r} receivers is more than {max_rows} readings; split the file"
        )
    station = stations.set_index("key").loc[columns]
    sample_id = (wide["sample_id"].to_numpy(dtype=object) if "sample_id" in wide.columns
                 else np.arange(1, n + 1).astype(str).astype(object))
    long = {
        "sample_id": np.repeat(sample_id, r),
        "receiver_id": np.tile(station["receiver_id"].to_numpy(dtype=object), n),
        "rx_lat": np.tile(station["rx_lat"].to_numpy(), n),
        "rx_lon": np.tile(station["rx_lon"].to_numpy(), n),
        "rx_alt_m": np.tile(station["rx_alt_m"].to_numpy(), n),
        "rss_dbm": wide[columns].to_numpy().reshape(-1),
    }
    for column in RESERVED_COLUMNS[1:]:
        if column in wide.columns:
            long[column] = np.repeat(wide[column].to_numpy(), r)
    return pd.DataFrame(long)
