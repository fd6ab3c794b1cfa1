"""Import of real measurement campaigns, dropping (and counting) the rows that are unusable.

`read_measurements` (measurements.py) is strict: one bad value rejects the file. Real
campaigns have bad rows (a bus GPS reporting (0, 0), a power reading of -Infinity), so the
importers here drop such rows, count them by reason in an `ImportReport` and log a warning.
A file that cannot be read, has the wrong structure or misses a required column is still an
`InputError`; a file left with no usable sample is a `DataError`.

This module reads the long format (`read_measurements_lenient`); `data.powder` reads the
POWDER JSON layout with the same rules. Both return `ImportedMeasurements`: the `MeasurementTable`, a per-row timestamp
array aligned with the table's rows (`MeasurementTable` has no timestamp field) and the
report. Measured datasets are for training and evaluation, so rows without a transmitter
position are dropped.

Drop reasons, checked in this order (a row is counted once, under its first reason):
`DROP_ZERO_POSITION`, `DROP_OUT_OF_RANGE`, `DROP_IMPLAUSIBLE` (long format only), `DROP_NON_FINITE_RSS`, `DROP_MISSING_TX`,
`DROP_SEVERAL_TX` (every row of a sample with more than one transmitter position),
`DROP_INVALID` (non-finite receiver position; in CSV also an empty id, an unparseable number
or timestamp),
`DROP_DUPLICATE`, then `DROP_NO_HEARD` for the rows of a sample left with no heard receiver.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from heimdall.data.measurements import (
    REQUIRED_COLUMNS,
    NOT_RECEIVED_BELOW_DBM,
    RSS_RANGE_DBM,
    RX_ALT_RANGE_M,
    SNR_RANGE_DB,
    MeasurementTable,
    coordinates_out_of_range,
    duplicate_receivers,
    not_received_markers,
    out_of_range,
    unheard_samples,
)
from heimdall.data.measurement_files import (
    number_cells,
    parse_timestamps,
    read_long_file,
    refuse_unreadable_times,
)
from heimdall.errors import DataError

__all__ = [
    "DROP_ZERO_POSITION",
    "DROP_OUT_OF_RANGE",
    "DROP_IMPLAUSIBLE",
    "DROP_NON_FINITE_RSS",
    "DROP_MISSING_TX",
    "DROP_SEVERAL_TX",
    "DROP_INVALID",
    "DROP_DUPLICATE",
    "DROP_NO_HEARD",
    "ImportReport",
    "ImportedMeasurements",
    "MAX_ABS_RSS_DB",
    "SAME_TX_DEG",
    "finalise_import",
    "flag_rows",
    "position_checks",
    "read_measurements_lenient",
]

log = logging.getLogger(__name__)

DROP_ZERO_POSITION = "receiver at (0, 0)"
DROP_OUT_OF_RANGE = "coordinates out of range"
#: An altitude or SNR outside the ranges the API accepts (`RX_ALT_RANGE_M`, `SNR_RANGE_DB`).
DROP_IMPLAUSIBLE = "altitude or snr out of range"
#: A present RSS reading that is -Infinity, NaN, null, non-numeric or beyond +-400 dB.
DROP_NON_FINITE_RSS = "non-finite rss"
DROP_MISSING_TX = "missing transmitter position"
#: A sample labelled with more than one transmitter position (two transmitters on the air at
#: once, or rows of one sample that disagree): its readings mix both, so no one truth fits.
DROP_SEVERAL_TX = "several transmitter positions"
DROP_INVALID = "invalid value"
DROP_DUPLICATE = "duplicate receiver in sample"
DROP_NO_HEARD = "sample without a heard receiver"

#: |rss| above this (dB) is not a power reading (same bound as the strict reader).
MAX_ABS_RSS_DB = 400.0
#: Transmitter positions of one sample further apart than this (degrees, about 1 m) are
#: different transmitters, not a rounding of one position.
SAME_TX_DEG = 1e-5


@dataclass(frozen=True)
class ImportReport:
    """What an import kept and dropped.

    `rows_dropped` maps a reason to the rows removed for it (each row once), so
    `rows_read == rows_kept + sum(rows_dropped.values())`. `samples_dropped` maps a reason to
    the samples removed entirely (a sample whose every row was dropped is counted under
    `DROP_NO_HEARD`). `samples` is the number of samples kept.
    """

    rows_read: int
    rows_dropped: dict[str, int]
    samples: int
    samples_dropped: dict[str, int] = field(default_factory=dict)
    #: Kept readings below `NOT_RECEIVED_BELOW_DBM` (-174 dBm): "not received" markers, read
    #: as "listened, heard nothing".
    readings_not_received: int = 0

    @property
    def rows_kept(self) -> int:
        return self.rows_read - sum(self.rows_dropped.values())

    def summary(self) -> str:
        """One line: rows read/kept, samples kept, drop counts by reason."""
        drops = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.rows_dropped.items()))
        lost = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.samples_dropped.items()))
        markers = (
            f"; {self.readings_not_received} readings below {NOT_RECEIVED_BELOW_DBM:g} dBm read as heard nothing"
            if self.readings_not_received else ""
        )
        return (
            f"{self.rows_read} rows read, {self.rows_kept} kept, {self.samples} samples"
            f" (rows dropped: {drops or 'none'}; samples dropped: {lost or 'none'}{markers})"
        )


@dataclass(frozen=True)
class ImportedMeasurements:
    """An imported campaign: the table, one timestamp per table row, and the report.

    `timestamps` is [M] `datetime64[s]` aligned with the table's rows (NaT where unknown).
    POWDER timestamps are the file's local wall-clock times (America/Denver) as written; CSV
    timestamps carrying a UTC offset are converted to UTC, naive ones are kept as written.
    """

    table: MeasurementTable
    timestamps: np.ndarray
    report: ImportReport
    frequency_hz: float | None = None

    def sample_timestamps(self) -> dict[str, np.datetime64]:
        """Sample id -> earliest timestamp of its rows (NaT when none is known)."""
        frame = pd.DataFrame({"s": self.table.sample_id, "t": self.timestamps})
        earliest = frame.groupby("s", sort=False)["t"].min()
        return {str(k): np.datetime64("NaT", "s") if pd.isna(v) else np.datetime64(v, "s") for k, v in earliest.items()}


def finalise_import(
    columns: dict[str, np.ndarray], drop: np.ndarray, reasons: Counter[str], rows_read: int,
    samples_dropped: Counter[str], file_name: str, frequency_hz: float | None,
) -> ImportedMeasurements:
    """Apply the duplicate, not-received-marker and no-heard rules to the surviving rows;
    build the result."""
    keep = ~drop
    # A receiver listed twice in a sample: the first kept row wins.
    duplicated = np.zeros_like(keep)
    repeated = duplicate_receivers(columns["sample_id"][keep], columns["receiver_id"][keep])
    duplicated[np.flatnonzero(keep)[repeated]] = True
    reasons[DROP_DUPLICATE] += int(duplicated.sum())
    keep &= ~duplicated
    markers = keep & not_received_markers(columns["rss_dbm"])
    columns["rss_dbm"] = np.where(markers, np.nan, columns["rss_dbm"])
    heard = keep & np.isfinite(columns["rss_dbm"])
    all_ids = pd.unique(columns["sample_id"])
    heard_ids = set(columns["sample_id"][heard])
    no_heard_rows = keep & unheard_samples(columns["sample_id"], heard)
    reasons[DROP_NO_HEARD] += int(no_heard_rows.sum())
    keep &= ~no_heard_rows
    samples_dropped[DROP_NO_HEARD] += len(all_ids) - len(heard_ids)
    if not keep.any():
        drops = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()) if count)
        raise DataError(f"{file_name}: no usable sample left after dropping invalid rows (rows dropped: {drops})")
    table = MeasurementTable(
        sample_id=columns["sample_id"][keep],
        receiver_id=columns["receiver_id"][keep],
        rx_lat_deg=columns["rx_lat"][keep],
        rx_lon_deg=columns["rx_lon"][keep],
        rx_alt_m=columns["rx_alt_m"][keep],
        rss_dbm=columns["rss_dbm"][keep],
        snr_db=columns["snr_db"][keep],
        tx_lat_deg=columns["tx_lat"][keep],
        tx_lon_deg=columns["tx_lon"][keep],
    )
    report = ImportReport(
        rows_read=rows_read,
        rows_dropped={k: v for k, v in reasons.items() if v},
        samples=len(heard_ids),
        samples_dropped={k: v for k, v in samples_dropped.items() if v},
        readings_not_received=int((markers & keep).sum()),
    )
    if report.rows_dropped or report.samples_dropped or report.readings_not_received:
        log.warning("%s: %s", file_name, report.summary())
    else:
        log.info("%s: %s", file_name, report.summary())
    return ImportedMeasurements(table, columns["timestamp"][keep], report, frequency_hz)


def flag_rows(reasons: Counter[str], drop: np.ndarray, bad: np.ndarray, reason: str) -> None:
    """Mark rows `bad` that are not yet dropped as dropped for `reason`."""
    new = bad & ~drop
    reasons[reason] += int(new.sum())
    drop |= new


def _several_tx(columns: dict[str, np.ndarray], drop: np.ndarray) -> np.ndarray:
    """[M] rows of samples whose rows not yet dropped give transmitter positions more than
    `SAME_TX_DEG` apart."""
    frame = pd.DataFrame(
        {"s": columns["sample_id"], "lat": columns["tx_lat"], "lon": columns["tx_lon"]}
    )[~drop]
    groups = frame.groupby("s", sort=False)[["lat", "lon"]]
    spread = (groups.max() - groups.min()).max(axis=1)
    several = set(spread.index[spread.to_numpy() > SAME_TX_DEG])
    return np.isin(columns["sample_id"], list(several)) if several else np.zeros(len(drop), dtype=bool)


def position_checks(
    columns: dict[str, np.ndarray], drop: np.ndarray, reasons: Counter[str]
) -> None:
    """Drop receivers at (0, 0) (a GPS without a fix) and coordinates out of range."""
    lat, lon = columns["rx_lat"], columns["rx_lon"]
    flag_rows(reasons, drop, (lat == 0.0) & (lon == 0.0), DROP_ZERO_POSITION)
    out = coordinates_out_of_range(lat, lon) | coordinates_out_of_range(columns["tx_lat"], columns["tx_lon"])
    flag_rows(reasons, drop, out, DROP_OUT_OF_RANGE)


# --- lenient long format -----------------------------------------------------------------


def read_measurements_lenient(path: Path, receivers: Path | None = None) -> ImportedMeasurements:
    """Read the long format (CSV or Parquet), dropping and counting invalid rows; with
    `receivers`, a wide fingerprint table and its receivers' positions (`wide_format`).

    Required columns: `REQUIRED_COLUMNS` plus `tx_lat`, `tx_lon`; optional: `timestamp`
    (ISO 8601 or Unix time, `parse_timestamps`), `rx_alt_m`, `snr_db`, `frequency_hz`. An
    empty `rss_dbm` means "listened, heard nothing" and is kept, as is a marker below -174
    dBm (`NOT_RECEIVED_BELOW_DBM`); a present but non-finite or non-numeric one drops the row.
    A single finite value in `frequency_hz` is carried to `ImportedMeasurements.frequency_hz`.
    """
    path = Path(path)
    frame = read_long_file(path, (*REQUIRED_COLUMNS, "tx_lat", "tx_lon"), receivers)
    m = len(frame)
    if m == 0:
        raise DataError(f"{path.name}: no measurement rows")
    drop = np.zeros(m, dtype=bool)
    reasons: Counter[str] = Counter()
    invalid = np.zeros(m, dtype=bool)

    def numeric(name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values with NaN for empty/invalid, mask of present-but-invalid cells)."""
        if name not in frame.columns:
            return np.full(m, np.nan), np.zeros(m, dtype=bool)
        values, _missing, invalid = number_cells(frame[name])
        return values, invalid

    columns: dict[str, np.ndarray] = {
        "sample_id": frame["sample_id"].astype(str).str.strip().to_numpy(),
        "receiver_id": frame["receiver_id"].astype(str).str.strip().to_numpy(),
    }
    for name in ("rx_lat", "rx_lon"):
        columns[name], bad = numeric(name)
        invalid |= bad | np.isnan(columns[name])
    for name in ("rx_alt_m", "snr_db", "frequency_hz"):
        columns[name], bad = numeric(name)
        invalid |= bad
    columns["tx_lat"], _ = numeric("tx_lat")
    columns["tx_lon"], _ = numeric("tx_lon")
    columns["rss_dbm"], rss_bad = numeric("rss_dbm")
    # Readings the API would refuse (an altitude of -1e9 m, an SNR of 1e300 dB) drop the row.
    implausible = out_of_range(columns["rx_alt_m"], RX_ALT_RANGE_M) | out_of_range(columns["snr_db"], SNR_RANGE_DB)
    columns["rx_alt_m"] = np.nan_to_num(columns["rx_alt_m"], nan=0.0)
    timestamps, bad_time = np.full(m, np.datetime64("NaT", "s")), np.zeros(m, dtype=bool)
    if "timestamp" in frame.columns:
        timestamps, bad_time = parse_timestamps(frame["timestamp"].to_numpy())
        refuse_unreadable_times(path.name, frame["timestamp"], timestamps, bad_time)
    columns["timestamp"] = timestamps
    invalid |= bad_time | (columns["sample_id"] == "") | (columns["receiver_id"] == "")

    with np.errstate(invalid="ignore"):
        position_checks(columns, drop, reasons)
        flag_rows(reasons, drop, implausible, DROP_IMPLAUSIBLE)
        flag_rows(reasons, drop, rss_bad | out_of_range(columns["rss_dbm"], RSS_RANGE_DBM), DROP_NON_FINITE_RSS)
    flag_rows(reasons, drop, ~(np.isfinite(columns["tx_lat"]) & np.isfinite(columns["tx_lon"])), DROP_MISSING_TX)
    flag_rows(reasons, drop, _several_tx(columns, drop), DROP_SEVERAL_TX)
    flag_rows(reasons, drop, invalid, DROP_INVALID)
    freqs = np.unique(columns["frequency_hz"][~drop & np.isfinite(columns["frequency_hz"])])
    if len(freqs) > 1:
        log.warning("%s: %d different frequency_hz values; none carried", path.name, len(freqs))
    frequency_hz = float(freqs[0]) if len(freqs) == 1 else None
    return finalise_import(columns, drop, reasons, m, Counter(), path.name, frequency_hz)
