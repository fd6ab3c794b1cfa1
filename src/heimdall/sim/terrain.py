"""Static, spatially correlated shadowing: the part of the path loss that terrain fixes.

Hills and buildings shadow the same places from the same station every time, so this
component is a fixed random field per station (Gudmundson's exponential correlation,
rho(d) = exp(-d / correlation_m)), not a fresh draw per transmission. It is what a learned
model can partly learn from data and a path-loss-model estimator cannot. The field is drawn
by random Fourier features: for the 2-D exponential kernel, the spectral density is a
bivariate Student-t with one degree of freedom, scaled by 1 / correlation_m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TerrainField"]

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
