"""The grids `models.tracks` smooths a segment of timestamped answers on.

Both run the same forward-backward pass of a hidden-Markov model: a state (where the
transmitter is) over a lattice of points, moved between transmissions by the fitted motion
(a Gaussian blur, or a jump anywhere), and weighed at each transmission by how well the
place explains it. They differ in that measurement:

- `GaussianSegment`: each answer's Gaussian (its position and covariance), on a lattice
  around the segment's answers. Any localiser's answers can be smoothed this way, but an
  answer's posterior with two places it could be (the map confuses them) is one ellipse
  between them.
- `ScoreSegment`: the radio map's own log-likelihood of each transmission's readings at every
  point of its grid (`RadioMapNet`'s `grid_log_score` output), on that grid. A transmission
  that could be at either of two places keeps both until its neighbours in time say which.

In both, a share of the answers is taken to be confidently wrong (a uniform floor under the
measurement). Distances in metres, times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["GaussianSegment", "ScoreGrid", "ScoreSegment", "gaussian_blur", "median_and_spread"]

#: Grid cells per side of a Gaussian segment's grid at most (memory: cells^2 per transmission).
MAX_CELLS_PER_SIDE = 64
#: Finest step (m) of a Gaussian segment's grid.
MIN_CELL_M = 5.0
#: Motion blurs wider than this (cells) run as two matrix products, whose cost does not grow
#: with the width; a direct convolution's does (on a 90 x 90 lattice, 0.4 ms at 10 cells and
#: 3.9 ms at 100 against 0.2 ms for the products; below about 3 cells the convolution is faster).
MATRIX_BLUR_SIGMA_CELLS = 4.0
#: The blur's kernel is cut at this many sigmas, as `scipy.ndimage.gaussian_filter`'s `truncate`.
BLUR_TRUNCATE = 3.0


@dataclass(frozen=True)
class ScoreGrid:
    """The lattice a radio map scores: point r * cols + c at (east0 + c step, north0 + r step) m."""

    east0_m: float
    north0_m: float
    step_m: float
    cols: int
    rows: int

    @classmethod
    def from_axes(cls, east_m: np.ndarray, north_m: np.ndarray, step_m: float) -> ScoreGrid:
        """From a map's grid axes (`RadioMapNet.grid_east_m`, `grid_north_m`) and step."""
        return cls(float(east_m[0]), float(north_m[0]), float(step_m), len(east_m), len(north_m))

    @classmethod
    def from_points(cls, grid_m: np.ndarray) -> ScoreGrid:
        """From the lattice's points [G,2] in row-major order (`RadioMapNet.grid_m`)."""
        east, north = np.unique(grid_m[:, 0]), np.unique(grid_m[:, 1])
        step = float(east[1] - east[0]) if len(east) > 1 else float(north[1] - north[0]) if len(north) > 1 else 1.0
        return cls(float(east[0]), float(north[0]), step, len(east), len(north))

    @property
    def points_m(self) -> np.ndarray:
        """The lattice's points [G,2] (m), row-major."""
        east, north = np.meshgrid(self.east0_m + self.step_m * np.arange(self.cols),
                                  self.north0_m + self.step_m * np.arange(self.rows))
        return np.stack([east.ravel(), north.ravel()], axis=1)

    def to_dict(self) -> dict[str, float | int]:
        return {"east0_m": self.east0_m, "north0_m": self.north0_m, "step_m": self.step_m,
                "cols": self.cols, "rows": self.rows}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> ScoreGrid | None:
        if not values:
            return None
        return cls(float(values["east0_m"]), float(values["north0_m"]), float(values["step_m"]),
                   int(values["cols"]), int(values["rows"]))


class _Segment:
    """Forward-backward over a lattice (`shape` rows x cols, `step` m, `points` [G,2] m) for one
    time-ordered segment; subclasses give each transmission's measurement."""

    def __init__(self, times_s: np.ndarray, motion: Any, outlier_share: float, shape: tuple[int, int],
                 step_m: float, points_m: np.ndarray):
        self.times_s, self.motion, self.outlier_share = times_s, motion, outlier_share
        self.shape, self.step, self.points = shape, step_m, points_m

    def measurement(self, i: int, inflation: float) -> np.ndarray:
        """Transmission i's likelihood over the lattice [rows, cols], its spread widened by `inflation`."""
        raise NotImplementedError

    def _moved(self, p: np.ndarray, gap_s: float) -> np.ndarray:
        """The state `p` after `gap_s` of motion: blurred, or anywhere with the jump probability."""
        sigma_cells = float(self.motion.sigma_m(gap_s)) / self.step
        blurred = gaussian_blur(p, sigma_cells) if sigma_cells > 0.05 else p
        blurred = blurred * (p.sum() / max(float(blurred.sum()), 1e-300))
        jump = float(self.motion.jump_probability(gap_s))
        return (1.0 - jump) * blurred + jump * p.sum() / p.size

    def smooth(self, inflation: np.ndarray, center_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forward-backward with each measurement's spread widened by `inflation` [n]: the
        marginals' geometric medians [n,2] (m; `center_m` [n,2] instead where given) and second
        moments about them [n,2,2] (m^2), plus the lattice's quantisation variance."""
        n, times, cells = len(self.times_s), self.times_s, self.points.shape[0]
        share = self.outlier_share

        def likelihood(i: int) -> np.ndarray:
            return (1.0 - share) * self.measurement(i, float(inflation[i])) + share / cells

        forward = np.empty((n, *self.shape), dtype=np.float32)
        state = np.full(self.shape, 1.0 / cells)
        for i in range(n):
            if i > 0:
                state = self._moved(forward[i - 1].astype(np.float64), times[i] - times[i - 1])
            state = state * likelihood(i)
            forward[i] = state / state.sum()
        out_position, out_covariance = np.empty((n, 2)), np.empty((n, 2, 2))
        backward = np.ones(self.shape)
        for i in range(n - 1, -1, -1):
            if i < n - 1:
                message = backward * likelihood(i + 1)
                backward = self._moved(message / message.sum(), times[i + 1] - times[i])
                backward = backward / backward.sum()
            weights = (forward[i] * backward).ravel()
            center = None if center_m is None else center_m[i]
            out_position[i], out_covariance[i] = median_and_spread(weights / weights.sum(), self.points, center)
        return out_position, out_covariance + self.step * self.step / 12.0 * np.eye(2)


class GaussianSegment(_Segment):
    """Answers (position [n,2] m, covariance [n,2,2] m^2) as Gaussian measurements, on a lattice
    covering them with three median sigmas around."""

    def __init__(self, position_m: np.ndarray, covariance_m2: np.ndarray, times_s: np.ndarray, motion: Any,
                 outlier_share: float):
        reach = 3.0 * float(np.median(np.sqrt(np.maximum(np.linalg.eigvalsh(covariance_m2)[:, -1], 1.0))))
        # A few very wide ellipses must not coarsen the grid: their mass beyond it carries no information.
        low = position_m.min(axis=0) - reach
        high = position_m.max(axis=0) + reach
        step = max(float((high - low).max()) / (MAX_CELLS_PER_SIDE - 1), MIN_CELL_M)
        cols, rows = (np.floor((high - low) / step).astype(int) + 1).tolist()
        self.grid_e, self.grid_n = np.meshgrid(low[0] + step * np.arange(cols), low[1] + step * np.arange(rows))
        points = np.stack([self.grid_e.ravel(), self.grid_n.ravel()], axis=1)
        super().__init__(times_s, motion, outlier_share, (rows, cols), step, points)
        self.position_m, self.covariance_m2 = position_m, covariance_m2

    def measurement(self, i: int, inflation: float) -> np.ndarray:
        covariance = self.covariance_m2[i] * inflation
        inverse = np.linalg.inv(covariance)
        norm = self.step * self.step / (2.0 * np.pi * np.sqrt(np.linalg.det(covariance)))
        de, dn = self.grid_e - self.position_m[i, 0], self.grid_n - self.position_m[i, 1]
        m2 = inverse[0, 0] * de * de + 2.0 * inverse[0, 1] * de * dn + inverse[1, 1] * dn * dn
        return norm * np.exp(-0.5 * m2)


class ScoreSegment(_Segment):
    """Each transmission's log-likelihood over a radio map's grid (`log_score` [n,G], G = rows x
    cols of `grid`) as its measurement, at `temperature` [n] (1: as the map scores it; a
    transmission the calibration one by one found k times less certain than the map says, k)."""

    def __init__(self, log_score: np.ndarray, grid: ScoreGrid, times_s: np.ndarray, motion: Any,
                 outlier_share: float, temperature: np.ndarray):
        super().__init__(times_s, motion, outlier_share, (grid.rows, grid.cols), grid.step_m, grid.points_m)
        self.log_score, self.temperature = log_score, temperature

    def measurement(self, i: int, inflation: float) -> np.ndarray:
        # Correlated transmissions count as a fraction of one: their likelihood is flattened.
        scaled = self.log_score[i].astype(np.float64) / (self.temperature[i] * inflation)
        weights = np.exp(scaled - scaled.max())
        return (weights / weights.sum()).reshape(self.shape)


def gaussian_blur(p: np.ndarray, sigma_cells: float) -> np.ndarray:
    """`p` [rows, cols] blurred by a Gaussian of `sigma_cells` along both axes, zero beyond the
    edges, the kernel cut at `BLUR_TRUNCATE` sigmas: `scipy.ndimage.gaussian_filter(p,
    sigma_cells, mode="constant", truncate=BLUR_TRUNCATE)` to rounding, faster when wide."""
    if sigma_cells <= MATRIX_BLUR_SIGMA_CELLS:
        return gaussian_filter(p, sigma_cells, mode="constant", truncate=BLUR_TRUNCATE)
    return _blur_matrix(p.shape[0], sigma_cells) @ p @ _blur_matrix(p.shape[1], sigma_cells)


@lru_cache(maxsize=256)
def _blur_matrix(n: int, sigma_cells: float) -> np.ndarray:
    """The symmetric [n, n] matrix of a 1-D Gaussian blur over n cells (zero beyond the edges),
    weights as `scipy.ndimage.gaussian_filter1d` normalises them. Cached: the forward and the
    backward pass blur by the same gaps."""
    radius = int(BLUR_TRUNCATE * sigma_cells + 0.5)
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_cells) ** 2)
    weights /= weights.sum()
    lag = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    matrix = np.where(lag <= radius, weights[radius + np.minimum(lag, radius)], 0.0)
    matrix.setflags(write=False)
    return matrix


def median_and_spread(
    weights: np.ndarray, points: np.ndarray, center: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Geometric median of a weighted point set (Weiszfeld; `center` instead where given) and
    the second moment about it."""
    if center is None:
        # Cells under 1e-7 of the mass (4,096 of them hold under 0.05% together) cannot move it.
        heavy = weights > 1.0e-7
        w, p = weights[heavy], points[heavy]
        center = w @ p / w.sum()
        for _ in range(10):
            offset = p - center
            inverse_distance = w / np.maximum(np.sqrt(np.einsum("ci,ci->c", offset, offset)), 1.0)
            center = inverse_distance @ p / inverse_distance.sum()
    spread = points - center
    # A product, not einsum("c,ci,cj->ij"): the same sum, four times as fast over 8,100 cells.
    return center, (spread * weights[:, None]).T @ spread
