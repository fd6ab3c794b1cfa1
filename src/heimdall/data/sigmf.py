"""SigMF recordings (https://sigmf.org, 1.0): one receiver's IQ of one transmission.

A recording is a pair `stem.sigmf-meta` (JSON) + `stem.sigmf-data` (raw samples), written
and read here with plain `json` and `numpy` (the `sigmf` package is not a dependency).
What Heimdall stores:

- global: `core:datatype` ("cf32_le" when written), `core:sample_rate` (Hz), `core:version`,
  `core:recorder`, `core:geolocation` (the receiver, a GeoJSON Point [lon_deg, lat_deg,
  alt_m], altitude above the WGS84 ellipsoid), `core:extensions`, and the `heimdall:`
  namespace: `heimdall:receiver_id`, `heimdall:sample_id`, `heimdall:tx_lat_deg`,
  `heimdall:tx_lon_deg` (truth, when known);
- captures: one, `core:sample_start` 0, `core:frequency` (Hz), `core:datetime` (ISO 8601);
- annotations: none.

A directory of recordings (one per receiver) is one transmission: `read_recording_set`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.errors import InputError
from heimdall.features import MAX_IQ_SAMPLES
from heimdall.fileio import temp_file_beside

__all__ = [
    "META_SUFFIX",
    "DATA_SUFFIX",
    "SUPPORTED_DATATYPES",
    "Recording",
    "write_recording",
    "read_recording",
    "read_recording_set",
]

META_SUFFIX = ".sigmf-meta"
DATA_SUFFIX = ".sigmf-data"
SIGMF_VERSION = "1.0.0"
_EXTENSION = {"name": "heimdall", "version": "1.0.0", "optional": True}

# SigMF datatype -> (numpy dtype of one real component, scale to full-scale float).
_DATATYPES: dict[str, tuple[str, float]] = {
    "cf32_le": ("<f4", 1.0),
    "cf32_be": (">f4", 1.0),
    "ci16_le": ("<i2", 1.0 / 32768.0),  # int16 full scale -> [-1, 1)
    "ci16_be": (">i2", 1.0 / 32768.0),
}
SUPPORTED_DATATYPES = tuple(_DATATYPES)


@dataclass(frozen=True, eq=False)  # eq=False: an ndarray field has no truth value for ==
class Recording:
    """One receiver's recording of one transmission.

    Positions in degrees (WGS84) and metres above the ellipsoid; `iq` complex64 [T] at
    `sample_rate_hz`, centred on `frequency_hz`; `datetime` ISO 8601 (UTC) or None;
    `tx_lat_deg`/`tx_lon_deg` the transmitter's true position when known.
    """

    receiver_id: str
    rx_lat_deg: float
    rx_lon_deg: float
    rx_alt_m: float
    sample_rate_hz: float
    frequency_hz: float
    datetime: str | None
    iq: np.ndarray
    tx_lat_deg: float | None = None
    tx_lon_deg: float | None = None
    sample_id: str | None = None

    def __post_init__(self) -> None:
        who = f"recording of receiver {self.receiver_id!r}"
        if not isinstance(self.receiver_id, str) or not self.receiver_id:
            raise InputError(f"{who}: receiver_id must be a non-empty string")
        iq = np.asarray(self.iq)
        if iq.ndim != 1 or not np.iscomplexobj(iq):
            raise InputError(f"{who}: iq must be a 1-D complex array, got {iq.dtype} {iq.shape}")
        object.__setattr__(self, "iq", np.ascontiguousarray(iq, dtype=np.complex64))
        _check_position(who, self.rx_lat_deg, self.rx_lon_deg)
        if not math.isfinite(self.rx_alt_m):
            raise InputError(f"{who}: rx_alt_m is not finite")
        for name in ("sample_rate_hz", "frequency_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{who}: {name} must be finite and > 0, got {value}")
        if (self.tx_lat_deg is None) != (self.tx_lon_deg is None):
            raise InputError(f"{who}: give both tx_lat_deg and tx_lon_deg or neither")
        if self.tx_lat_deg is not None:
            _check_position(who, self.tx_lat_deg, self.tx_lon_deg)

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return len(self.iq) / self.sample_rate_hz


#: Largest .sigmf-meta accepted (real ones are kilobytes; annotations included).
MAX_META_BYTES = 16 * 2**20

def _check_position(who: str, lat_deg: float, lon_deg: float | None) -> None:
    if not (math.isfinite(lat_deg) and -90.0 <= lat_deg <= 90.0):
        raise InputError(f"{who}: latitude {lat_deg} is outside [-90, 90] degrees")
    if lon_deg is None or not (math.isfinite(lon_deg) and -180.0 <= lon_deg <= 180.0):
        raise InputError(f"{who}: longitude {lon_deg} is outside [-180, 180] degrees")


def _metadata(recording: Recording) -> dict[str, Any]:
    global_: dict[str, Any] = {
        "core:datatype": "cf32_le",
        "core:sample_rate": float(recording.sample_rate_hz),
        "core:version": SIGMF_VERSION,
        "core:recorder": "heimdall",
        "core:num_channels": 1,
        "core:geolocation": {
            "type": "Point",
            "coordinates": [
                float(recording.rx_lon_deg),
                float(recording.rx_lat_deg),
                float(recording.rx_alt_m),
            ],
        },
        "core:extensions": [_EXTENSION],
        "heimdall:receiver_id": recording.receiver_id,
    }
    if recording.sample_id is not None:
        global_["heimdall:sample_id"] = recording.sample_id
    if recording.tx_lat_deg is not None:
        global_["heimdall:tx_lat_deg"] = float(recording.tx_lat_deg)
        global_["heimdall:tx_lon_deg"] = float(recording.tx_lon_deg)
    capture: dict[str, Any] = {
        "core:sample_start": 0,
        "core:frequency": float(recording.frequency_hz),
    }
    if recording.datetime is not None:
        capture["core:datetime"] = recording.datetime
    return {"global": global_, "captures": [capture], "annotations": []}


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write to a temporary name in the same directory, then rename over `path`."""
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_recording(directory: str | Path, stem: str, recording: Recording) -> Path:
    """Write `stem.sigmf-data` (cf32_le) then `stem.sigmf-meta` in `directory`, each atomically
    (data first, so a meta file never points at a missing or partial data file).
    Returns the meta file's path."""
    if not stem or Path(stem).name != stem or stem.startswith("."):
        raise InputError(f"recording stem {stem!r} must be a plain file name")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / f"{stem}{META_SUFFIX}"
    data = np.empty(2 * len(recording.iq), dtype="<f4")
    data[0::2] = recording.iq.real
    data[1::2] = recording.iq.imag
    _write_atomic(directory / f"{stem}{DATA_SUFFIX}", data.tobytes())
    text = json.dumps(_metadata(recording), indent=2, allow_nan=False) + "\n"
    _write_atomic(meta_path, text.encode("utf-8"))
    return meta_path


def _number(meta_path: Path, block: dict[str, Any], key: str, where: str) -> float:
    if key not in block:
        raise InputError(f"{meta_path}: missing {key!r} in {where}")
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{meta_path}: {key!r} in {where} is not a finite number: {value!r}")
    return float(value)


def _load_meta(meta_path: Path) -> dict[str, Any]:
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: metadata file not found")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise InputError(f"{meta_path}: {meta_path.stat().st_size} bytes of metadata, more than {MAX_META_BYTES}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: invalid JSON ({exc})") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("global"), dict):
        raise InputError(f"{meta_path}: no 'global' object (not SigMF metadata)")
    return meta


def _frequency_hz(meta_path: Path, meta: dict[str, Any]) -> float:
    captures = meta.get("captures")
    if not isinstance(captures, list) or not captures or not isinstance(captures[0], dict):
        raise InputError(f"{meta_path}: no captures (the centre frequency lives there)")
    frequencies = {_number(meta_path, c, "core:frequency", "captures") for c in captures}
    if len(frequencies) > 1:
        raise InputError(f"{meta_path}: captures at several frequencies {sorted(frequencies)}")
    frequency_hz = frequencies.pop()
    if frequency_hz <= 0:
        raise InputError(f"{meta_path}: 'core:frequency' must be > 0 Hz, got {frequency_hz}")
    return frequency_hz


def _receiver_position(meta_path: Path, global_: dict[str, Any]) -> tuple[float, float, float]:
    """(lat_deg, lon_deg, alt_m) from the GeoJSON point; altitude 0 m when absent."""
    point = global_.get("core:geolocation")
    if not isinstance(point, dict):
        raise InputError(f"{meta_path}: missing receiver position 'core:geolocation'")
    coords = point.get("coordinates")
    if (
        point.get("type") != "Point"
        or not isinstance(coords, list)
        or len(coords) not in (2, 3)
        or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords)
        or not all(math.isfinite(c) for c in coords)
    ):
        raise InputError(f"{meta_path}: 'core:geolocation' is not a GeoJSON Point [lon, lat, alt?]")
    lon_deg, lat_deg = float(coords[0]), float(coords[1])
    if not (-90.0 <= lat_deg <= 90.0 and -180.0 <= lon_deg <= 180.0):
        raise InputError(f"{meta_path}: receiver lat {lat_deg}, lon {lon_deg} out of range")
    return lat_deg, lon_deg, float(coords[2]) if len(coords) == 3 else 0.0


def _read_iq(meta_path: Path, datatype: str, min_samples: int) -> np.ndarray:
    data_path = meta_path.with_name(meta_path.name[: -len(META_SUFFIX)] + DATA_SUFFIX)
    if not data_path.is_file():
        raise InputError(f"{meta_path}: data file {data_path.name} not found")
    component, scale = _DATATYPES[datatype]
    sample_bytes = 2 * np.dtype(component).itemsize
    size = data_path.stat().st_size
    if size % sample_bytes:
        raise InputError(
            f"{data_path}: {size} bytes is not a whole number of {datatype} samples "
            f"({sample_bytes} bytes each)"
        )
    if size // sample_bytes > MAX_IQ_SAMPLES:
        # Refused from the file size alone, before anything is read or allocated.
        raise InputError(
            f"{data_path}: {size // sample_bytes} samples, more than the {MAX_IQ_SAMPLES} one recording may hold"
        )
    if size // sample_bytes < min_samples:
        raise InputError(
            f"{data_path}: {size // sample_bytes} samples, at least {min_samples} needed"
        )
    raw = np.fromfile(data_path, dtype=component).astype(np.float32)
    if not np.isfinite(raw).all():
        raise InputError(f"{data_path}: holds non-finite samples (NaN or inf)")
    iq = np.empty(len(raw) // 2, dtype=np.complex64)
    iq.real = raw[0::2] * scale
    iq.imag = raw[1::2] * scale
    return iq


def read_recording(meta_path: str | Path, *, min_samples: int = 1) -> Recording:
    """Read one SigMF recording (cf32_le/be or ci16_le/be; ci16 scaled to [-1, 1)).

    Raises InputError naming the file and the problem: missing or invalid JSON, missing
    `core:datatype` / `core:sample_rate` / capture `core:frequency`, unsupported datatype or
    several channels, missing data file, a data size that is not a whole number of samples,
    fewer than `min_samples` samples, non-finite samples, missing `heimdall:receiver_id` or
    `core:geolocation`.
    """
    meta_path = Path(meta_path)
    if not meta_path.name.endswith(META_SUFFIX):
        raise InputError(f"{meta_path}: not a SigMF metadata file (expected *{META_SUFFIX})")
    meta = _load_meta(meta_path)
    global_ = meta["global"]
    datatype = global_.get("core:datatype")
    if datatype is None:
        raise InputError(f"{meta_path}: missing 'core:datatype' in global")
    if datatype not in _DATATYPES:
        raise InputError(
            f"{meta_path}: unsupported datatype {datatype!r} (supported: "
            f"{', '.join(SUPPORTED_DATATYPES)})"
        )
    if global_.get("core:num_channels", 1) != 1:
        raise InputError(f"{meta_path}: {global_['core:num_channels']} channels, only 1 supported")
    sample_rate_hz = _number(meta_path, global_, "core:sample_rate", "global")
    if sample_rate_hz <= 0:
        raise InputError(f"{meta_path}: 'core:sample_rate' must be > 0 Hz, got {sample_rate_hz}")
    frequency_hz = _frequency_hz(meta_path, meta)
    receiver_id = global_.get("heimdall:receiver_id")
    if not isinstance(receiver_id, str) or not receiver_id:
        raise InputError(f"{meta_path}: missing receiver id 'heimdall:receiver_id'")
    rx_lat_deg, rx_lon_deg, rx_alt_m = _receiver_position(meta_path, global_)
    tx = [
        _number(meta_path, global_, key, "global") if key in global_ else None
        for key in ("heimdall:tx_lat_deg", "heimdall:tx_lon_deg")
    ]
    sample_id = global_.get("heimdall:sample_id")
    datetime = meta["captures"][0].get("core:datetime")
    if datetime is not None and not isinstance(datetime, str):
        raise InputError(f"{meta_path}: 'core:datetime' is not a string")
    iq = _read_iq(meta_path, datatype, min_samples)
    try:
        return Recording(
            receiver_id=receiver_id,
            rx_lat_deg=rx_lat_deg,
            rx_lon_deg=rx_lon_deg,
            rx_alt_m=rx_alt_m,
            sample_rate_hz=sample_rate_hz,
            frequency_hz=frequency_hz,
            datetime=datetime,
            iq=iq,
            tx_lat_deg=tx[0],
            tx_lon_deg=tx[1],
            sample_id=None if sample_id is None else str(sample_id),
        )
    except InputError as exc:
        raise InputError(f"{meta_path}: {exc}") from exc


def read_recording_set(directory: str | Path, min_samples: int = 1) -> list[Recording]:
    """Every `*.sigmf-meta` in `directory` (sorted by name): one transmission, one recording
    per receiver. All must share sample rate and centre frequency (exact, in Hz), receiver
    ids must be unique, and sample ids / truth positions, where given, must agree.
    Raises InputError naming the directory or the two conflicting files."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} is a file, not a directory of SigMF recordings")
    if not directory.is_dir():
        raise InputError(f"{directory}: recordings directory not found")
    paths = sorted(directory.glob(f"*{META_SUFFIX}"))
    if not paths:
        raise InputError(f"{directory}: no *{META_SUFFIX} recordings")
    recordings = [read_recording(p, min_samples=min_samples) for p in paths]
    first_path, first = paths[0], recordings[0]
    seen: dict[str, Path] = {}
    for path, rec in zip(paths, recordings):
        for name, unit in (("sample_rate_hz", "Hz"), ("frequency_hz", "Hz")):
            if getattr(rec, name) != getattr(first, name):
                raise InputError(
                    f"{path.name} and {first_path.name} in {directory}: {name} differs "
                    f"({getattr(rec, name)} {unit} vs {getattr(first, name)} {unit})"
                )
        if rec.receiver_id in seen:
            raise InputError(
                f"{path.name} and {seen[rec.receiver_id].name} in {directory}: "
                f"duplicate receiver id {rec.receiver_id!r}"
            )
        seen[rec.receiver_id] = path
    for name in ("sample_id", "tx_lat_deg", "tx_lon_deg"):
        given = [
            (p, getattr(r, name)) for p, r in zip(paths, recordings) if getattr(r, name) is not None
        ]
        for path, value in given[1:]:
            if value != given[0][1]:
                raise InputError(
                    f"{path.name} and {given[0][0].name} in {directory}: {name} differs "
                    f"({value!r} vs {given[0][1]!r}); a set is one transmission"
                )
    return recordings
