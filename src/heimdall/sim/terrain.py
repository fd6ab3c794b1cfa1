"""Static, spatially correlated shadowing: the part of the path loss that terrain fixes.

Hills and buildings shadow the same places from the same station every time, so this
component is a fixed random field per station (Gudmundson's exponential correlation,
rho(d) = exp(-d / correlation_m)), not a fresh draw per transmission. It is what a learned
model can partly learn from data and a path-loss-model estimator cannot. The field is drawn
by random Fourier features: for the 2-D exponential kernel, the spectral density is a
bivariate Student-t with one degree of freedom, scaled by 1 / correlation_m.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heimdall.errors import ConfigError, NotFoundError

__all__ = ["TerrainField", "StaticMap"]

# 64 cosines per station: the marginal is Gaussian to a good approximation (CLT) and the
# cost stays a small part of a simulated link.
_FEATURES = 64
_SALT = 0x7E44A1


@dataclass(frozen=True)
class TerrainField:
    """Per-station shadowing fields in dB over east/north metres about a fixed reference."""

    frequencies_rad_m: np.ndarray  # [R, K, 2]
    phases_rad: np.ndarray  # [R, K]
    sigma_db: float

    @classmethod
    def draw(cls, seed: int, num_stations: int, sigma_db: float, correlation_m: float) -> TerrainField:
        """The field of world `seed`: the same seed always gives the same terrain."""
        rng = np.random.default_rng([seed, _SALT])
        z = rng.standard_normal((num_stations, _FEATURES, 2))
        u = rng.chisquare(1.0, (num_stations, _FEATURES, 1))
        frequencies = z / (np.sqrt(u) * correlation_m)
        phases = rng.uniform(0.0, 2.0 * np.pi, (num_stations, _FEATURES))
        return cls(frequencies, phases, float(sigma_db))

    def shadowing_db(self, position_m: np.ndarray) -> np.ndarray:
        """Shadowing (dB) of each station for transmitters at `position_m` [N, 2] -> [N, R]."""
        if self.sigma_db == 0.0:
            return np.zeros((position_m.shape[0], self.phases_rad.shape[0]))
        k = self.phases_rad.shape[1]
        # [N, R, K] phases; chunked by callers' block size, so memory stays ~N * R * K floats.
        # float32 phases: a feature with a phase large enough for float32 rounding to matter
        # (|angle| >~ 1e5 rad) varies over metres, so it is white noise at any precision.
        angle = np.einsum("nd,rkd->nrk", position_m.astype(np.float32), self.frequencies_rad_m.astype(np.float32))
        angle += self.phases_rad[None].astype(np.float32)
        return (self.sigma_db * np.sqrt(2.0 / k)) * np.cos(angle).sum(axis=-1, dtype=np.float64)


@dataclass(frozen=True)
class StaticMap:
    """Per-station static shadowing known from measurements: dB on a local grid,
    `values_db[r, i, j]` at north `north0_m + i * step_m`, east `east0_m + j * step_m`
    (kriged from a fit's residuals by `heimdall scenario fit`). Outside the grid the edge
    value holds."""

    values_db: np.ndarray  # [R, H, W]
    east0_m: float
    north0_m: float
    step_m: float

    def _cells(self, position_m: np.ndarray) -> tuple[np.ndarray, ...]:
        _, rows, cols = self.values_db.shape
        row = np.clip((position_m[:, 1] - self.north0_m) / self.step_m, 0.0, rows - 1.0)
        col = np.clip((position_m[:, 0] - self.east0_m) / self.step_m, 0.0, cols - 1.0)
        r0 = np.minimum(row.astype(np.int64), rows - 2)
        c0 = np.minimum(col.astype(np.int64), cols - 2)
        return r0, c0, row - r0, col - c0

    def shadowing_db(self, position_m: np.ndarray) -> np.ndarray:
        """Static shadowing (dB) of every station for transmitters at `position_m` [N, 2] -> [N, R]."""
        r0, c0, fr, fc = self._cells(position_m)
        v = self.values_db
        top = v[:, r0, c0] * (1 - fc) + v[:, r0, c0 + 1] * fc
        bottom = v[:, r0 + 1, c0] * (1 - fc) + v[:, r0 + 1, c0 + 1] * fc
        return (top * (1 - fr) + bottom * fr).T

    def pair_db(self, position_m: np.ndarray, station: np.ndarray) -> np.ndarray:
        """Static shadowing (dB) of station[i] for a transmitter at position_m[i], [M]."""
        r0, c0, fr, fc = self._cells(position_m)
        v = self.values_db
        top = v[station, r0, c0] * (1 - fc) + v[station, r0, c0 + 1] * fc
        bottom = v[station, r0 + 1, c0] * (1 - fc) + v[station, r0 + 1, c0 + 1] * fc
        return top * (1 - fr) + bottom * fr

    def save(self, path: Path, station_ids: list[str] | tuple[str, ...]) -> Path:
        """Write as .npz (values, grid origin and step, station ids), atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, values_db=self.values_db.astype(np.float32), east0_m=self.east0_m,
                            north0_m=self.north0_m, step_m=self.step_m, station_ids=np.array(list(station_ids)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path, station_ids: list[str] | tuple[str, ...]) -> StaticMap:
        """Read a saved map, its stations put in `station_ids` order (absent ones: 0 dB)."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"static field file {str(path)!r} not found")
        try:
            with np.load(path) as data:
                values = data["values_db"].astype(np.float64)
                saved = [str(s) for s in data["station_ids"]]
                origin = (float(data["east0_m"]), float(data["north0_m"]), float(data["step_m"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"static field file {path.name}: not a Heimdall static map ({exc})") from exc
        index = {sid: i for i, sid in enumerate(saved)}
        ordered = np.zeros((len(station_ids), *values.shape[1:]))
        for i, sid in enumerate(station_ids):
            if sid in index:
                ordered[i] = values[index[sid]]
        return cls(ordered, *origin)
