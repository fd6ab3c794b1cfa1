"""Receivers and receiver networks: validation, local coordinates, YAML/JSON files.

A network file (YAML or JSON) holds what `ReceiverNetwork.to_dict` writes:

    name: italy-websdr
    frequency_hz: 145000000.0
    bandwidth_hz: 12500.0
    receivers:
      - {receiver_id: torino, name: Torino, lat_deg: 45.044, lon_deg: 7.672, alt_m: 250.0,
         antenna_gain_dbi: 0.0, noise_figure_db: 6.0}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from heimdall.errors import ConfigError, InputError, NotFoundError
from heimdall.fileio import temp_file_beside
from heimdall.geo import ReferencePoint, geodetic_to_ecef, geodetic_to_enu, validate_lat_lon

__all__ = [
    "MIN_RECEIVER_SEPARATION_M",
    "Receiver",
    "ReceiverNetwork",
    "default_network",
]

MIN_RECEIVER_SEPARATION_M = 1.0
"""Receivers closer than this (3-D, metres) are taken as one station listed twice."""

_YAML_SUFFIXES = (".yaml", ".yml")
_JSON_SUFFIXES = (".json",)


def _number(value: Any, what: str) -> float:
    """`value` as a finite float, or InputError naming `what`."""
    # bool is an int subclass, but `lat_deg: true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{what} must be finite, got {number}")
    return number


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Receiver:
    """A fixed receiver: WGS84 position (degrees, metres), gain (dBi), noise figure (dB)."""

    receiver_id: str
    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0
    antenna_gain_dbi: float = 0.0
    noise_figure_db: float = 6.0

    def __post_init__(self) -> None:
        _text(self.receiver_id, "receiver id")
        what = f"receiver {self.receiver_id!r}"
        _text(self.name, f"{what}: name")
        for name in ("lat_deg", "lon_deg", "alt_m", "antenna_gain_dbi", "noise_figure_db"):
            # Coerce ints (e.g. from YAML) to float so equality and serialisation are stable.
            object.__setattr__(self, name, _number(getattr(self, name), f"{what}: {name}"))
        validate_lat_lon(self.lat_deg, self.lon_deg, what)
        if self.noise_figure_db < 0.0:
            raise InputError(f"{what}: noise_figure_db {self.noise_figure_db} must be >= 0")


@dataclass(frozen=True)
class ReceiverNetwork:
    """A named set of receivers listening on one channel (centre frequency and bandwidth, Hz)."""

    name: str
    receivers: tuple[Receiver, ...]
    frequency_hz: float = 145e6
    bandwidth_hz: float = 12_500.0

    def __post_init__(self) -> None:
        _text(self.name, "network name")
        what = f"network {self.name!r}"
        if isinstance(self.receivers, (str, bytes, Mapping)) or not hasattr(
            self.receivers, "__iter__"
        ):
            raise InputError(f"{what}: receivers must be a sequence of Receiver")
        receivers = tuple(self.receivers)
        object.__setattr__(self, "receivers", receivers)
        if not receivers:
            raise InputError(f"{what}: has no receivers (at least 1 required)")
        for index, receiver in enumerate(receivers):
            if not isinstance(receiver, Receiver):
                raise InputError(
                    f"{what}: receiver #{index} is a {type(receiver).__name__}, not a Receiver"
                )
        for name in ("frequency_hz", "bandwidth_hz"):
            value = _number(getattr(self, name), f"{what}: {name}")
            if value <= 0.0:
                raise InputError(f"{what}: {name} {value} must be > 0")
            object.__setattr__(self, name, value)
        seen: set[str] = set()
        for receiver in receivers:
            if receiver.receiver_id in seen:
                raise InputError(f"{what}: duplicate receiver id {receiver.receiver_id!r}")
            seen.add(receiver.receiver_id)
        self._check_separation(what)

    def _check_separation(self, what: str) -> None:
        x, y, z = geodetic_to_ecef(
            [r.lat_deg for r in self.receivers],
            [r.lon_deg for r in self.receivers],
            [r.alt_m for r in self.receivers],
        )
        from scipy.spatial import cKDTree

        xyz = np.stack([x, y, z], axis=1)
        # A k-d tree finds the close pairs in O(n log n); the all-pairs matrix this replaces
        # took seconds and gigabytes for a few thousand receivers.
        pairs = cKDTree(xyz).query_pairs(MIN_RECEIVER_SEPARATION_M, output_type="ndarray")
        if len(pairs):
            distance_m = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
            close = pairs[distance_m < MIN_RECEIVER_SEPARATION_M]
        else:
            close = pairs
        if len(close):
            # The first pair in (i, j) order, as a scan of the receivers in order would name.
            i, j = sorted((int(a), int(b)) for a, b in close)[0]
            a, b = self.receivers[i], self.receivers[j]
            raise InputError(
                f"{what}: duplicate position: receivers {a.receiver_id!r} and "
                f"{b.receiver_id!r} are {float(np.linalg.norm(xyz[i] - xyz[j])):.3f} m apart "
                f"(minimum {MIN_RECEIVER_SEPARATION_M:g} m)"
            )

    def __len__(self) -> int:
        return len(self.receivers)

    @property
    def ids(self) -> tuple[str, ...]:
        """Receiver ids, in network order."""
        return tuple(r.receiver_id for r in self.receivers)

    def index_of(self, receiver_id: str) -> int:
        """Position of `receiver_id` in the network; NotFoundError if absent."""
        for index, receiver in enumerate(self.receivers):
            if receiver.receiver_id == receiver_id:
                return index
        raise NotFoundError(
            f"network {self.name!r}: no receiver {receiver_id!r} (known: {', '.join(self.ids)})"
        )

    def reference_point(self) -> ReferencePoint:
        """The mean latitude/longitude of the receivers (degrees), at altitude 0 m."""
        lat_deg = np.array([r.lat_deg for r in self.receivers])
        lon_deg = np.array([r.lon_deg for r in self.receivers])
        # Unwrap longitudes about the first receiver so a network straddling the
        # antimeridian averages to a point inside it, not to the far side of the globe.
        offset_deg = (lon_deg - lon_deg[0] + 180.0) % 360.0 - 180.0
        mean_lon_deg = (lon_deg[0] + offset_deg.mean() + 180.0) % 360.0 - 180.0
        return ReferencePoint(float(lat_deg.mean()), float(mean_lon_deg), 0.0)

    def positions_enu_m(self, ref: ReferencePoint | None = None) -> np.ndarray:
        """Receiver east/north/up positions [R, 3] in metres about `ref`.

        `ref` defaults to `reference_point()`.
        """
        ref = self.reference_point() if ref is None else ref
        east, north, up = geodetic_to_enu(
            [r.lat_deg for r in self.receivers],
            [r.lon_deg for r in self.receivers],
            [r.alt_m for r in self.receivers],
            ref,
        )
        return np.stack([east, north, up], axis=1)

    def bounds_enu_m(
        self, ref: ReferencePoint | None = None, margin_m: float = 0.0
    ) -> tuple[float, float, float, float]:
        """Receivers' (east_min, east_max, north_min, north_max) in metres, widened by margin_m."""
        margin_m = _number(margin_m, "margin_m")
        if margin_m < 0.0:
            raise InputError(f"margin_m {margin_m} must be >= 0")
        enu = self.positions_enu_m(ref)
        return (
            float(enu[:, 0].min() - margin_m),
            float(enu[:, 0].max() + margin_m),
            float(enu[:, 1].min() - margin_m),
            float(enu[:, 1].max() + margin_m),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (str, float, list, dict) for YAML/JSON."""
        return {
            "name": self.name,
            "frequency_hz": self.frequency_hz,
            "bandwidth_hz": self.bandwidth_hz,
            "receivers": [asdict(r) for r in self.receivers],
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReceiverNetwork:
        """Build from `to_dict`'s form; InputError naming the problem if it is malformed.

        A receiver's `name` may be left out (it defaults to its id); unknown keys are
        rejected so that a misspelt key does not silently fall back to a default.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"network must be a mapping, got {type(data).__name__}")
        _reject_unknown(data, {"name", "frequency_hz", "bandwidth_hz", "receivers"}, "network")
        for key in ("name", "receivers"):
            if key not in data:
                raise InputError(f"network: missing required key {key!r}")
        what = f"network {data['name']!r}"
        raw_receivers = data["receivers"]
        if not isinstance(raw_receivers, list):
            raise InputError(
                f"{what}: receivers must be a list, got {type(raw_receivers).__name__}"
            )
        receivers = tuple(
            _receiver_from_dict(item, index, what) for index, item in enumerate(raw_receivers)
        )
        optional = {k: data[k] for k in ("frequency_hz", "bandwidth_hz") if k in data}
        return cls(name=data["name"], receivers=receivers, **optional)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to `path` (YAML for .yaml/.yml, JSON for .json) atomically; return the path.

        The file is written next to its destination and renamed over it, so a reader never
        sees a half-written file and a crash leaves the old file intact.
        """
        path = Path(path)
        fmt = _format_of(path)
        if not path.parent.is_dir():
            raise NotFoundError(
                f"cannot save network: directory {str(path.parent)!r} does not exist"
            )
        if fmt == "yaml":
            text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        fd, tmp_name = temp_file_beside(path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            # Re-raised below; only the half-written temporary file is cleaned up.
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReceiverNetwork:
        """Read a network file written by `save` (or by hand).

        NotFoundError if the file does not exist; ConfigError, naming the file, if it has an
        unknown suffix, does not parse, or describes an invalid network.
        """
        path = Path(path)
        fmt = _format_of(path)
        if not path.is_file():
            raise NotFoundError(f"network file {str(path)!r} not found")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"network file {str(path)!r}: cannot read: {exc}") from exc
        try:
            data = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            message = " ".join(str(exc).split())  # parser messages span lines; keep one
            raise ConfigError(
                f"network file {str(path)!r}: invalid {fmt.upper()}: {message}"
            ) from exc
        if data is None:
            raise ConfigError(f"network file {str(path)!r} is empty")
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise ConfigError(f"network file {str(path)!r}: {exc}") from exc


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _YAML_SUFFIXES:
        return "yaml"
    if suffix in _JSON_SUFFIXES:
        return "json"
    raise ConfigError(
        f"network file {str(path)!r}: unknown suffix {suffix!r} (use .yaml, .yml or .json)"
    )


def _reject_unknown(data: Mapping[Any, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise InputError(
            f"{what}: unknown key(s) {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _receiver_from_dict(item: Any, index: int, network_what: str) -> Receiver:
    what = f"{network_what}: receiver #{index}"
    if not isinstance(item, Mapping):
        raise InputError(f"{what} must be a mapping, got {type(item).__name__}")
    allowed = {f.name for f in fields(Receiver)}
    _reject_unknown(item, allowed, what)
    for key in ("receiver_id", "lat_deg", "lon_deg"):
        if key not in item:
            raise InputError(f"{what}: missing required key {key!r}")
    kwargs = dict(item)
    kwargs.setdefault("name", kwargs["receiver_id"])
    try:
        return Receiver(**kwargs)
    except InputError as exc:
        # Receiver's own message names the receiver; add which network and entry it is.
        raise InputError(f"{what}: {exc}") from exc


# (id, name, lat_deg, lon_deg, alt_m) of the Italian WebSDRs on 2 m.
_ITALY_WEBSDR: tuple[tuple[str, str, float, float, float], ...] = (
    ("aquila-di-giaveno", "Aquila di Giaveno", 45.030, 7.270, 600.0),
    ("montanaro", "Montanaro", 45.234, 7.857, 300.0),
    ("torino", "Torino", 45.044, 7.672, 250.0),
    ("coazze", "Coazze", 45.048, 7.238, 700.0),
    ("passo-del-giovi", "Passo del Giovi", 44.561, 8.956, 480.0),
    ("genova", "Genova", 44.395, 8.956, 100.0),
    ("milano-baggio", "Milano-Baggio", 45.478, 9.123, 120.0),
)


def default_network() -> ReceiverNetwork:
    """The seven Italian WebSDRs ("italy-websdr"), listening at 145 MHz, 12.5 kHz channel."""
    return ReceiverNetwork(
        name="italy-websdr",
        receivers=tuple(
            Receiver(receiver_id=rid, name=name, lat_deg=lat, lon_deg=lon, alt_m=alt)
            for rid, name, lat, lon, alt in _ITALY_WEBSDR
        ),
        frequency_hz=145e6,
        bandwidth_hz=12_500.0,
    )
