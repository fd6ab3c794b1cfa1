"""RadioMapNet: a fitted radio map and fingerprint memory, evaluated as a posterior over a grid.

The localiser for measured data. Everything it knows was fitted on labelled measurements
(`heimdall.training.radio_map_fit`); this module only evaluates it, in torch, so that the
same code scores candidates while fitting and runs inside the exported ONNX graph.

Per grid point g (east/north metres) and heard receiver j of station s(j), the received
power is modelled as

    rss_j = a_s - 10 n log10(|g - p_j|) + r_s(g) + c + e_j,

with a_s the station's offset (uncalibrated receivers), n the path-loss exponent, r_s(g)
a smoothed map of the station's residuals (terrain, buildings: what repeats at a place),
c the transmission's unknown common offset (transmit power; prior N(0, tau^2)) and e_j a
heavy-tailed error (Student-t, nu = 4) of variance v_s(g), which grows where the station
has no training data near g. A receiver that listened and heard nothing adds the
probability of being below its weakest heard level. The log-likelihood over the grid is
combined with two more terms:

- a prior: a smoothed density of the training transmitters (where transmitters were);
- fingerprint memory: the k nearest training fingerprints (RMS dB distance after removing
  the mean difference, as `evaluation.knn` does) put a kernel density at their positions,
  weighted by exp(-d^2 / 2h^2) on top of a constant background, so a query unlike every
  training fingerprint leaves the map alone;
- fingerprint points: the same neighbours are also candidates in their own right, beside
  the grid points, at their exact positions, with the map likelihood of the grid cell
  holding them and a mass rho exp(-d^2 / 2h^2) in place of the density. Where fingerprints
  repeat (fixed transmitters heard again) the answer can land on the place itself rather
  than on the nearest grid point; rho = 0 (as fitted where that does not pay) leaves the
  grid posterior alone.

The output is the posterior's geometric median (metres: the point of least expected distance
error) and a covariance: the posterior spread about it at a wider temperature, plus a floor,
times a calibration scale (all fitted on held-out folds).
Stations with `rx_id` outside [0, num_stations) use the generic row (mean offset, no
residual map, the largest variance) and take no part in fingerprint matching. When the
fit found that files list only the receivers that heard (`RadioMapConfig.fill_absent`), a
fixed station missing from a sample is scored as listening and hearing nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from heimdall.models.localization_net import BASE_INPUTS
from heimdall.models.radio_map_candidates import (
    GEOMETRIC_MEDIAN_CANDIDATES,
    geometric_median,
    nearest_fingerprints,
    with_fingerprint_points,
)

__all__ = [
    "GEOMETRIC_MEDIAN_CANDIDATES", "NOVELTY_CAP_DB", "RadioMapConfig", "RadioMapNet", "RADIO_MAP_KIND", "RADIO_MAP_OUTPUTS",
    "geometric_median",
    "with_fingerprint_points",
]

#: `model_kind` of a radio-map model in checkpoints and bundles.
RADIO_MAP_KIND = "radio_map"
#: Graph outputs: the two of every model, each reading's residual (dB) at the answer, from
#: which the runtime re-estimates drifted receiver offsets over a batch, and the readings'
#: log-likelihood at every grid point (with the fingerprint density, without the prior),
#: which the runtime's smoother along tracks takes as its measurements (`models.track_grids`).
RADIO_MAP_OUTPUTS = ("position_m", "covariance_m2", "station_residual_db", "grid_log_score")
#: Degrees of freedom of the Student-t error: a receiver reading 8 dB off costs little more
#: than one reading 4 dB off, so one bad receiver cannot pull the estimate far.
_STUDENT_NU = 4.0
#: Distances are clamped here so a grid point on top of a receiver has a finite path loss.
_MIN_DISTANCE_M = 1.0
#: Fingerprint distance (dB) of a pair sharing too few stations: never a neighbour.
_NO_MATCH_DB = 1.0e3
#: Cap (dB) on the fingerprint distance that widens the ellipse (the calibration in training uses it too).
NOVELTY_CAP_DB = 20.0
#: Bounds of the standard-normal CDF argument for not-heard receivers (float32-safe).
_CENSOR_Z = 8.0
@dataclass(frozen=True)
class RadioMapConfig:
    """Sizes and fitted hyperparameters of a `RadioMapNet` (stored in checkpoints and bundles)."""

    num_stations: int
    grid_rows: int
    grid_cols: int
    num_fingerprints: int
    #: Neighbours from the fingerprint memory.
    top_k: int = 32
    #: Fingerprint pairs sharing fewer heard-or-floored stations are never neighbours.
    min_common_stations: int = 3
    #: Not-heard stations enter fingerprints this far (dB) below the sample's weakest heard one.
    not_heard_margin_db: float = 10.0
    #: The fit found that a station missing from a sample listened and heard nothing (files
    #: that list only the receivers that heard): such stations are added, at their fixed
    #: positions, before scoring. Off: a missing station is unknown, as before.
    fill_absent: bool = False
    model_kind: str = RADIO_MAP_KIND

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


class RadioMapNet(nn.Module):
    """Fitted radio map + fingerprint memory -> posterior geometric median [B,2] m and covariance [B,2,2] m^2."""

    #: Samples the ONNX parity check uses (each scores the whole grid).
    parity_samples = 32
    output_names = RADIO_MAP_OUTPUTS

    def __init__(self, config: RadioMapConfig) -> None:
        super().__init__()
        self.config = config
        s, g, t = config.num_stations, config.grid_rows * config.grid_cols, config.num_fingerprints
        # Row s (the last) of every per-station table is the generic station.
        # The grid is a lattice: point r * cols + c sits at (grid_east_m[c], grid_north_m[r]).
        self.register_buffer("grid_east_m", torch.zeros(config.grid_cols))
        self.register_buffer("grid_north_m", torch.zeros(config.grid_rows))
        self.register_buffer("grid_m", torch.zeros(g, 2))
        self.register_buffer("grid_step_m", torch.ones(()))
        self.register_buffer("path_loss_exponent", torch.full((), 3.0))
        self.register_buffer("station_offset_db", torch.zeros(s + 1))
        self.register_buffer("residual_db", torch.zeros(s + 1, g))
        self.register_buffer("variance_db2", torch.full((s + 1, g), 36.0))
        #: Weakest heard level per station (dB); -inf: never censor (no data).
        self.register_buffer("heard_threshold_db", torch.full((s + 1,), -math.inf))
        self.register_buffer("common_offset_sd_db", torch.full((), 3.0))
        self.register_buffer("log_prior", torch.zeros(g))
        self.register_buffer("fingerprint_db", torch.zeros(t, s))
        self.register_buffer("fingerprint_mask", torch.zeros(t, s))
        self.register_buffer("fingerprint_position_m", torch.zeros(t, 2))
        self.register_buffer("fingerprint_bandwidth_db", torch.full((), 2.0))
        self.register_buffer("fingerprint_position_bandwidth_m", torch.ones(()))
        self.register_buffer("fingerprint_weight", torch.ones(()))
        self.register_buffer("fingerprint_background", torch.full((), 1.0e-2))
        #: rho of the fingerprint points (`with_fingerprint_points`); 0: grid points only.
        self.register_buffer("fingerprint_point_mass", torch.zeros(()))
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("covariance_temperature", torch.ones(()))
        self.register_buffer("covariance_floor_m2", torch.zeros(()))
        #: d0 (dB) of the widening 1 + (d / d0)^2 by the distance d to the nearest training
        #: fingerprint (capped at 20 dB); 0 = no widening.
        self.register_buffer("novelty_db", torch.zeros(()))
        # Post-hoc variance calibration factor (the same name as LocalizationNet's).
        self.register_buffer("covariance_scale", torch.ones(()))
        #: Weight of the silences' log-probability (receivers that listened and heard nothing)
        #: in the log-likelihood; 1: each counted as independent evidence. Dozens of silent
        #: receivers share their errors (the same walls shadow the transmitter from all of
        #: them, sensitivities vary), so the fit may count them for less
        #: (`training.radio_map_readings`).
        self.register_buffer("silence_weight", torch.ones(()))
        if config.fill_absent:
            #: Each station's fixed position (east/north/up, m) and whether it is added to a
            #: sample that lacks it (fixed stations that listened in training).
            self.register_buffer("station_position_m", torch.zeros(config.num_stations, 3))
            self.register_buffer("fill_station", torch.zeros(config.num_stations, dtype=torch.bool))

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the inputs `forward` takes, in order (also the ONNX graph's)."""
        return BASE_INPUTS

    def _stations(self, rx_id: torch.Tensor) -> torch.Tensor:
        known = (rx_id >= 0) & (rx_id < self.config.num_stations)
        return torch.where(known, rx_id, torch.full_like(rx_id, self.config.num_stations))

    def with_absent_stations(
        self, rx_position_m: torch.Tensor, rx_id: torch.Tensor, rss_dbm: torch.Tensor, heard: torch.Tensor,
        present: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The inputs with one more receiver per station (`num_stations` columns appended):
        listening and hearing nothing where `fill_station` and the sample lacks that station,
        not listening otherwise. Unchanged when the config's `fill_absent` is off."""
        if not self.config.fill_absent:
            return rx_position_m, rx_id, rss_dbm, heard, present
        s = self.config.num_stations
        one_hot = torch.nn.functional.one_hot(self._stations(rx_id), s + 1)[..., :s].to(rss_dbm.dtype)
        listed = torch.einsum("br,brs->bs", present.to(rss_dbm.dtype), one_hot) > 0
        extra = self.fill_station[None, :] & ~listed  # [B,S]
        # Broadcast the per-station tables over the (dynamic) batch by adding batch-shaped zeros.
        ids = torch.arange(s, dtype=rx_id.dtype)[None, :] + torch.zeros_like(rx_id[:, :1])
        positions = self.station_position_m.to(rx_position_m.dtype)[None] + torch.zeros_like(rx_position_m[:, :1, :])
        silent = torch.zeros_like(extra)
        return (
            torch.cat([rx_position_m, positions], dim=1), torch.cat([rx_id, ids], dim=1),
            torch.cat([rss_dbm, torch.zeros_like(extra, dtype=rss_dbm.dtype)], dim=1),
            torch.cat([heard, silent], dim=1), torch.cat([present, extra], dim=1),
        )

    def map_log_likelihood(
        self, rx_position_m: torch.Tensor, station: torch.Tensor, rss_dbm: torch.Tensor, heard: torch.Tensor,
        present: torch.Tensor, any_silent: bool = True,
    ) -> torch.Tensor:
        """Log-likelihood of the readings at every grid point, [B, G]. `any_silent` False
        (the caller knows no receiver in the batch listened and heard nothing) skips the
        silences' term, which is then exactly zero (a third of the time where every listed
        receiver heard)."""
        return self._map_terms(rx_position_m, station, rss_dbm, heard, present, any_silent)[0]

    def _map_terms(
        self, rx_position_m: torch.Tensor, station: torch.Tensor, rss_dbm: torch.Tensor, heard: torch.Tensor,
        present: torch.Tensor, any_silent: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-likelihood [B,G], each heard reading's residual after the common offset [B,R,G] dB).

        Laid out receiver-major ([B,R,G]) so the per-station tables gather without copies.
        The graph (`forward`) always adds the silences' term.
        """
        b, r = rss_dbm.shape
        east_sq = (rx_position_m[:, :, 0, None] - self.grid_east_m) ** 2  # [B,R,cols]
        north_sq = (rx_position_m[:, :, 1, None] - self.grid_north_m) ** 2  # [B,R,rows]
        distance_sq = (north_sq[..., :, None] + east_sq[..., None, :]).reshape(b, r, -1).clamp_min(_MIN_DISTANCE_M**2)
        # 10 n log10(d) = 5 n log10(d^2): no square root.
        mean_db = (
            self.residual_db[station]
            + self.station_offset_db[station][..., None]
            - 5.0 * self.path_loss_exponent * torch.log10(distance_sq)
        )
        used_r = (heard & present).to(mean_db.dtype)  # [B,R]
        used = used_r[..., None]
        residual = (rss_dbm[..., None] - mean_db) * used
        inverse_table = 1.0 / self.variance_db2  # [S+1,G]
        inverse = inverse_table[station] * used
        # Posterior mean of the common offset c given the readings (Gaussian prior tau^2).
        tau_sq = self.common_offset_sd_db**2
        common = tau_sq * (residual * inverse).sum(1) / (1.0 + tau_sq * inverse.sum(1))  # [B,G]
        centred = residual - common[:, None, :] * used
        # Unused readings have inverse 0, so their Student-t term is log1p(0) = 0.
        student = torch.log1p(centred * centred * inverse / _STUDENT_NU).sum(1)
        # sum over used readings of log(variance), as (readings per station) @ (log-variance table).
        per_station = torch.einsum("br,brs->bs", used_r, torch.nn.functional.one_hot(station, self.config.num_stations + 1).to(mean_db.dtype))
        log_variance = per_station @ torch.log(self.variance_db2)
        log_likelihood = -0.5 * (_STUDENT_NU + 1.0) * student - 0.5 * log_variance - 0.5 * common**2 / tau_sq
        if not any_silent:
            return log_likelihood, centred
        # Listened, heard nothing: probability of reading below the station's weakest heard level.
        threshold = self.heard_threshold_db[station]  # [B,R]
        finite = torch.isfinite(threshold)
        silent = ((present & ~heard) & finite).to(mean_db.dtype)[..., None]
        level = torch.where(finite, threshold, torch.zeros_like(threshold))[..., None]
        z = (level - mean_db - common[:, None, :]) * torch.sqrt(inverse_table[station])
        below = 0.5 * (1.0 + torch.erf(z.clamp(-_CENSOR_Z, _CENSOR_Z) / math.sqrt(2.0)))
        silences = (torch.log(below.clamp_min(1.0e-30)) * silent).sum(1)
        return log_likelihood + self.silence_weight * silences, centred

    def fingerprint_neighbours(
        self, station: torch.Tensor, rss_dbm: torch.Tensor, heard: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances [B,k] dB, indices [B,k]) of the k nearest training fingerprints.

        The distance is the RMS difference over stations both fingerprints have, after
        removing its mean (blind to the unknown transmit power); `_NO_MATCH_DB` for pairs
        sharing fewer than `min_common_stations`. A sample that heard nothing matches nothing.
        Equal distances are ranked by the mean level difference, then by index
        (`nearest_fingerprints`), the same in PyTorch and in the ONNX graph.
        """
        s = self.config.num_stations
        one_hot = torch.nn.functional.one_hot(station, s + 1)[..., :s].to(rss_dbm.dtype)  # [B,R,S]
        listening = present.to(rss_dbm.dtype)
        heard_here = heard & present
        weakest = torch.where(heard_here, rss_dbm, torch.full_like(rss_dbm, 1.0e4)).amin(dim=1, keepdim=True)
        value = torch.where(heard_here, rss_dbm, weakest - self.config.not_heard_margin_db) * listening
        q_mask = torch.einsum("br,brs->bs", listening, one_hot).clamp(max=1.0)
        q = torch.einsum("br,brs->bs", value, one_hot) * q_mask
        t, t_mask = self.fingerprint_db, self.fingerprint_mask
        # The distance is blind to a constant added to either side, so both are centred on
        # their own mean first: squares of -120 dBm readings would leave ~1e-3 dB^2 of float32
        # rounding in the mean square, more than separates a near neighbour from an equal one.
        q_mean = q.sum(1, keepdim=True) / q_mask.sum(1, keepdim=True).clamp_min(1.0)
        t_mean = (t * t_mask).sum(1, keepdim=True) / t_mask.sum(1, keepdim=True).clamp_min(1.0)
        q, t = (q - q_mean) * q_mask, (t - t_mean) * t_mask
        common = q_mask @ t_mask.T
        s1 = q @ t_mask.T - q_mask @ t.T
        s2 = (q * q) @ t_mask.T + q_mask @ (t * t).T - 2.0 * (q @ t.T)
        safe = common.clamp_min(1.0)
        mean_sq = (s2 / safe - (s1 / safe) ** 2).clamp_min(0.0)
        matches = (common >= self.config.min_common_stations) & heard_here.any(dim=1, keepdim=True)
        distance = torch.where(matches, mean_sq.sqrt(), torch.full_like(mean_sq, _NO_MATCH_DB))
        level_db = s1 / safe + q_mean - t_mean.T  # mean reading difference over the common stations
        index = nearest_fingerprints(mean_sq, level_db, matches, min(self.config.top_k, self.config.num_fingerprints))
        return distance.gather(1, index), index

    def fingerprint_log_density(
        self, distance_db: torch.Tensor, index: torch.Tensor, bandwidth_db: torch.Tensor, background: torch.Tensor
    ) -> torch.Tensor:
        """log(background + sum_k exp(-d_k^2 / 2h^2) K(g, x_k)) over the grid, [B, G]."""
        weight = torch.exp(-0.5 * (distance_db / bandwidth_db) ** 2)
        positions = self.fingerprint_position_m[index]  # [B,k,2]
        # The Gaussian kernel factors over east and north: two small tables and one product.
        scale = -0.5 / self.fingerprint_position_bandwidth_m**2
        east = torch.exp(scale * (self.grid_east_m[None, :, None] - positions[:, None, :, 0]) ** 2)  # [B,cols,k]
        north = torch.exp(scale * (self.grid_north_m[None, :, None] - positions[:, None, :, 1]) ** 2)  # [B,rows,k]
        density = torch.einsum("brk,bck->brc", north * weight[:, None, :], east)
        return torch.log(background + density.reshape(density.shape[0], -1))

    def cell_of(self, position_m: torch.Tensor) -> torch.Tensor:
        """Index of the grid point whose cell holds each position [..., 2] (clamped to the grid)."""
        cols, rows = self.config.grid_cols, self.config.grid_rows
        col = torch.round((position_m[..., 0] - self.grid_east_m[0]) / self.grid_step_m).clamp(0, cols - 1)
        row = torch.round((position_m[..., 1] - self.grid_north_m[0]) / self.grid_step_m).clamp(0, rows - 1)
        return (row * cols + col).long()

    def candidate_terms(
        self,
        rx_position_m: torch.Tensor,
        rx_id: torch.Tensor,
        rss_dbm: torch.Tensor,
        heard: torch.Tensor,
        present: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """The grid points and the fingerprint neighbours as candidates (`with_fingerprint_points`):
        (log-likelihood, log-density, log-prior [B,C], locations [B,C,2] m, residuals
        [B,R',C] dB, distance to the nearest training fingerprint [B] dB), C = G + top_k."""
        rx_position_m, rx_id, rss_dbm, heard, present = self.with_absent_stations(
            rx_position_m, rx_id, rss_dbm, heard, present
        )
        station = self._stations(rx_id)
        rss = torch.where(heard, rss_dbm, torch.zeros_like(rss_dbm))
        distance_db, index = self.fingerprint_neighbours(station, rss, heard, present)
        log_likelihood, residual = self._map_terms(rx_position_m, station, rss, heard, present)
        density = self.fingerprint_log_density(distance_db, index, self.fingerprint_bandwidth_db, self.fingerprint_background)
        position = self.fingerprint_position_m[index]  # [B,k,2]
        cell = self.cell_of(position)
        log_likelihood, density, log_prior, location = with_fingerprint_points(
            log_likelihood, density, self.log_prior, self.grid_m, cell, position, distance_db,
            self.fingerprint_bandwidth_db, self.fingerprint_point_mass,
        )
        gathered = residual.gather(2, cell[:, None, :].expand(-1, residual.shape[1], -1))
        return log_likelihood, density, log_prior, location, torch.cat([residual, gathered], dim=2), distance_db[:, 0]

    def posterior(
        self, log_likelihood: torch.Tensor, log_density: torch.Tensor, temperature: torch.Tensor,
        log_prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Posterior weights over the candidates, [B, C], at `temperature` (>= 1 widens);
        `log_prior` [B,C] defaults to the grid's [G]."""
        scaled = (log_likelihood + self.fingerprint_weight * self.temperature * log_density) / temperature
        return torch.softmax(scaled + (self.log_prior if log_prior is None else log_prior), dim=1)

    def summarize(
        self, log_likelihood: torch.Tensor, log_density: torch.Tensor, nearest_db: torch.Tensor,
        log_prior: torch.Tensor | None = None, location_m: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior geometric median [B,2] (m) and the calibrated covariance about it [B,2,2] (m^2), widened for
        queries far (`nearest_db`) from every training fingerprint. Candidates are the grid
        points unless `log_prior` [B,C] and `location_m` [B,C,2] say otherwise."""
        weights = self.posterior(log_likelihood, log_density, self.temperature, log_prior)
        location = (self.grid_m[None] if location_m is None else location_m).expand(weights.shape[0], -1, -1)
        mean_m = torch.einsum("bc,bci->bi", weights, location)
        position_m = geometric_median(weights, location, mean_m)
        wide = self.posterior(log_likelihood, log_density, self.covariance_temperature, log_prior)
        spread = location - position_m[:, None, :]  # [B,C,2]
        covariance = torch.einsum("bg,bgi,bgj->bij", wide, spread, spread)
        floor = self.grid_step_m**2 / 12.0 + self.covariance_floor_m2
        covariance = covariance + floor * torch.eye(2, dtype=covariance.dtype)
        ratio = nearest_db.clamp(max=NOVELTY_CAP_DB) / self.novelty_db.clamp_min(1.0e-6)
        widening = torch.where(self.novelty_db > 0, 1.0 + ratio * ratio, torch.ones_like(ratio))
        return position_m, covariance * (self.covariance_scale * widening)[:, None, None]

    def forward(
        self,
        rx_position_m: torch.Tensor,
        rx_id: torch.Tensor,
        rss_dbm: torch.Tensor,
        heard: torch.Tensor,
        present: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Position east/north [B,2] (m), its covariance [B,2,2] (m^2), each heard reading's
        expected residual under the posterior [B,R] (dB; 0 where not heard), and the log-score
        of every grid point [B,G] (the readings' log-likelihood plus the weighted fingerprint
        density, at temperature 1 and without the prior: what a transmission says about where
        it was, to combine with its neighbours in time)."""
        log_likelihood, density, log_prior, location, residual, nearest_db = self.candidate_terms(
            rx_position_m, rx_id, rss_dbm, heard, present
        )
        position_m, covariance_m2 = self.summarize(log_likelihood, density, nearest_db, log_prior, location)
        weights = self.posterior(log_likelihood, density, self.temperature, log_prior)
        g = self.grid_m.shape[0]
        score = log_likelihood[:, :g] + self.fingerprint_weight * self.temperature * density[:, :g]
        # Residuals of the input's receivers only (added stations heard nothing).
        return (position_m, covariance_m2, torch.einsum("bg,brg->br", weights, residual)[:, : rx_id.shape[1]],
                score)
