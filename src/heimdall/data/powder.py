"""The POWDER "Wireless Device Localization Dataset" JSON layout, imported with the rules of
`data.importers` (bad rows dropped and counted by reason)."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.importers import (
    DROP_INVALID,
    DROP_MISSING_TX,
    DROP_NON_FINITE_RSS,
    DROP_SEVERAL_TX,
    MAX_ABS_RSS_DB,
    SAME_TX_DEG,
    ImportedMeasurements,
    finalise_import,
    flag_rows,
    position_checks,
)
from heimdall.data.measurement_files import parse_timestamps
from heimdall.errors import DataError, InputError, NotFoundError

__all__ = ["POWDER_FREQUENCY_HZ", "read_powder_json"]

log = logging.getLogger(__name__)

#: Carrier of the POWDER FRS campaign (Baofeng BF-F8HP on FRS/GMRS), Hz.
POWDER_FREQUENCY_HZ = 462.7e6

def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise InputError(f"duplicate key {duplicate!r}")
    return dict(pairs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tx_of(entry: dict[str, Any]) -> tuple[float, float, bool]:
    """(lat, lon) of a sample's transmitter, NaN when missing or at (0, 0), and whether the
    sample lists further transmitters at other positions."""
    coords = entry.get("tx_coords")
    if not isinstance(coords, list) or not coords:
        return math.nan, math.nan, False
    valid = [
        (float(c[0]), float(c[1])) for c in coords
        if isinstance(c, list) and len(c) >= 2 and _is_number(c[0]) and _is_number(c[1])
    ]
    if len(valid) < len(coords) or not valid:
        return math.nan, math.nan, False
    lat, lon = valid[0]
    if not (math.isfinite(lat) and math.isfinite(lon)) or (lat == 0.0 and lon == 0.0):
        return math.nan, math.nan, False
    several = any(abs(la - lat) > SAME_TX_DEG or abs(lo - lon) > SAME_TX_DEG for la, lo in valid[1:])
    return lat, lon, several


def read_powder_json(path: Path) -> ImportedMeasurements:
    """Read the POWDER "Wireless Device Localization Dataset" JSON layout.

    `{timestamp: {"rx_data": [[rss_db, lat, lon, name], ...], "tx_coords": [[lat, lon]],
    "metadata": [...]}}`. The sample id is the timestamp string. POWDER RSS is in dB relative
    to each receiver (uncalibrated): it is stored in the table's `rss_dbm` column, but it is
    NOT an absolute power; offset-free methods (kNN on mean-removed fingerprints, models with
    per-station calibration) are the ones that fit it. The carrier is `POWDER_FREQUENCY_HZ`.
    Altitudes are unknown (0 m); SNR is absent (NaN).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"measurement file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except InputError as exc:
        raise InputError(f"{path.name}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{path.name}: not valid JSON ({message})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path.name}: expected a JSON object keyed by timestamp, got {type(data).__name__}")
    if not data:
        raise DataError(f"{path.name}: no samples")
    rows: list[tuple[str, str, float, float, float, float, float]] = []
    sample_dropped: Counter[str] = Counter()
    tx_dropped_rows: Counter[str] = Counter()
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("rx_data"), list):
            raise InputError(f"{path.name}: sample {key!r} has no 'rx_data' list")
        tx_lat, tx_lon, several = _tx_of(entry)
        if several or not math.isfinite(tx_lat):
            reason = DROP_SEVERAL_TX if several else DROP_MISSING_TX
            sample_dropped[reason] += 1
            tx_dropped_rows[reason] += len(entry["rx_data"])
            continue
        for index, rx in enumerate(entry["rx_data"]):
            if not (
                isinstance(rx, list) and len(rx) == 4 and (rx[0] is None or _is_number(rx[0]))
                and _is_number(rx[1]) and _is_number(rx[2]) and isinstance(rx[3], str) and rx[3].strip()
            ):
                raise InputError(
                    f"{path.name}: sample {key!r} rx_data[{index}] is not [rss_db, lat, lon, name]: {rx!r}"
                )
            rss = math.nan if rx[0] is None else float(rx[0])
            rows.append((key, rx[3].strip(), float(rx[1]), float(rx[2]), rss, tx_lat, tx_lon))
    m = len(rows)
    sample_id, receiver_id, rx_lat, rx_lon, rss, tx_lat_col, tx_lon_col = (
        zip(*rows) if rows else ((),) * 7
    )
    columns = {
        "sample_id": np.array(sample_id, dtype=object).astype(str),
        "receiver_id": np.array(receiver_id, dtype=object).astype(str),
        "rx_lat": np.array(rx_lat, dtype=np.float64),
        "rx_lon": np.array(rx_lon, dtype=np.float64),
        "rx_alt_m": np.zeros(m),
        "rss_dbm": np.array(rss, dtype=np.float64),
        "snr_db": np.full(m, np.nan),
        "tx_lat": np.array(tx_lat_col, dtype=np.float64),
        "tx_lon": np.array(tx_lon_col, dtype=np.float64),
    }
    columns["timestamp"], unparsed = parse_timestamps(columns["sample_id"])
    if unparsed.any():
        log.warning("%s: %d sample keys are not timestamps; their time is unknown", path.name, int(unparsed.sum()))
    drop = np.zeros(m, dtype=bool)
    reasons: Counter[str] = Counter(tx_dropped_rows)
    position_checks(columns, drop, reasons)
    # In this layout every receiver listed was listening; a -Infinity (or null) reading is a
    # failed measurement, not "heard nothing", so the row is dropped rather than kept unheard.
    flag_rows(reasons, drop, ~np.isfinite(columns["rss_dbm"]) | (np.abs(columns["rss_dbm"]) > MAX_ABS_RSS_DB),
          DROP_NON_FINITE_RSS)
    flag_rows(reasons, drop, ~(np.isfinite(columns["rx_lat"]) & np.isfinite(columns["rx_lon"])), DROP_INVALID)
    rows_read = m + sum(tx_dropped_rows.values())
    return finalise_import(columns, drop, reasons, rows_read, sample_dropped, path.name, POWDER_FREQUENCY_HZ)
