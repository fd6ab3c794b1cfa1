"""Feature-level scenario: where the transmitter is and what each receiver measures.

One sample: a transmitter placed uniformly over the network's area plus a margin, with an
unknown transmit power; per receiver a path loss, static terrain shadowing (a fixed,
spatially correlated field per station, see `terrain`), per-transmission log-normal
shadowing, Rician fading
(averaged over a few looks, as a power measurement over a short window is) and an unknown
calibration offset of that station. A receiver hears the transmission when its SNR
reaches `min_snr_db`; samples heard by fewer than `min_receivers` are redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from heimdall.errors import DataError, InputError, NotFoundError
from heimdall.sim import propagation
from heimdall.sim.dem import DemTerrain
from heimdall.sim.terrain import StaticMap, TerrainField

__all__ = ["ScenarioConfig", "ReceiverKnobs", "load_scenario", "NetworkGeometry", "SimulatedBlock", "simulate_block", "path_loss_db"]

PathLossModel = Literal["log-distance", "free-space", "two-ray", "okumura-hata"]


class ScenarioConfig(BaseModel):
    """Every knob of the feature-level simulation (stored with each dataset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    area_margin_m: float = Field(20_000.0, ge=0.0)
    tx_power_min_dbm: float = 30.0
    tx_power_max_dbm: float = 40.0
    tx_height_m: float = Field(1.5, gt=0.0)
    rx_height_m: float = Field(10.0, gt=0.0)
    path_loss_model: PathLossModel = "log-distance"
    path_loss_exponent: float = Field(3.0, gt=1.0, le=6.0)
    #: When set, each sample draws its exponent uniformly from [path_loss_exponent, this].
    path_loss_exponent_max: float | None = Field(None, gt=1.0, le=6.0)
    reference_distance_m: float = Field(100.0, gt=0.0)
    shadowing_sigma_db: float = Field(4.0, ge=0.0)
    #: When set, each sample draws its shadowing sigma uniformly from [shadowing_sigma_db, this].
    shadowing_sigma_max_db: float | None = Field(None, ge=0.0)
    terrain_sigma_db: float = Field(5.0, ge=0.0)
    terrain_correlation_m: float = Field(20_000.0, gt=0.0)
    terrain_seed: int = 0
    fading_k_factor_db: float | None = 3.0
    fading_looks: int = Field(8, ge=1)
    calibration_sigma_db: float = Field(2.0, ge=0.0)
    receiver_offline_probability: float = Field(0.05, ge=0.0, lt=1.0)
    min_snr_db: float = 3.0
    min_receivers: int = Field(3, ge=1)
    max_draw_factor: int = Field(50, ge=1)
    # Fitted to a real network (`heimdall scenario fit`); the defaults change nothing.
    #: "dbm": receivers report absolute dBm; "relative": dB in each device's own scale,
    #: which `rx_offset_db` maps the simulated dBm onto.
    rss_scale: Literal["dbm", "relative"] = "dbm"
    #: Receiver id -> dB added to what that receiver reports (its scale or calibration).
    rx_offset_db: dict[str, float] = Field(default_factory=dict)
    #: Receiver id -> lowest RSS it reports (dB, reported scale); where set, it replaces
    #: the `min_snr_db` rule for that receiver.
    rx_detection_threshold_db: dict[str, float] = Field(default_factory=dict)
    #: Receiver id -> probability it is not listening; overrides receiver_offline_probability.
    rx_offline_probability: dict[str, float] = Field(default_factory=dict)
    #: Directory of DEM tiles (SRTM .hgt or GeoTIFF); terrain diffraction is added to the
    #: path loss when set (see `heimdall.sim.dem`). Never downloaded.
    dem_dir: str | None = None
    #: Points per terrain profile between transmitter and receiver.
    terrain_profile_points: int = Field(48, ge=8, le=1024)
    #: .npz of per-station static shadowing measured on the network (a `StaticMap`, kriged
    #: by `heimdall scenario fit`), added to the random terrain field where set.
    static_field_file: str | None = None

    @model_validator(mode="after")
    def _check_power_range(self) -> ScenarioConfig:
        if self.tx_power_max_dbm < self.tx_power_min_dbm:
            raise ValueError("tx_power_max_dbm is below tx_power_min_dbm")
        if self.path_loss_exponent_max is not None and self.path_loss_exponent_max < self.path_loss_exponent:
            raise ValueError("path_loss_exponent_max is below path_loss_exponent")
        if self.shadowing_sigma_max_db is not None and self.shadowing_sigma_max_db < self.shadowing_sigma_db:
            raise ValueError("shadowing_sigma_max_db is below shadowing_sigma_db")
        bad = {k: v for k, v in self.rx_offline_probability.items() if not 0.0 <= v < 1.0}
        if bad:
            raise ValueError(f"rx_offline_probability must be in [0, 1), got {bad}")
        return self

    def per_receiver(self, receiver_ids: tuple[str, ...] | list[str]) -> ReceiverKnobs:
        """The per-receiver fields as arrays in `receiver_ids` order; InputError naming any
        receiver the scenario knows but the network does not."""
        known = set(receiver_ids)
        for field in ("rx_offset_db", "rx_detection_threshold_db", "rx_offline_probability"):
            unknown = sorted(set(getattr(self, field)) - known)
            if unknown:
                raise InputError(f"scenario {field} names receivers not in the network: {', '.join(unknown)}")
        return ReceiverKnobs(
            offset_db=np.array([self.rx_offset_db.get(i, 0.0) for i in receiver_ids]),
            threshold_db=np.array([self.rx_detection_threshold_db.get(i, np.nan) for i in receiver_ids]),
            offline_probability=np.array(
                [self.rx_offline_probability.get(i, self.receiver_offline_probability) for i in receiver_ids]
            ),
        )


@dataclass(frozen=True)
class ReceiverKnobs:
    """Per-receiver simulation settings, [R] each: reported-scale offset (dB), detection
    threshold (dB, reported scale; NaN: the SNR rule), probability of being offline."""

    offset_db: np.ndarray
    threshold_db: np.ndarray
    offline_probability: np.ndarray


def load_scenario(path: Path) -> ScenarioConfig:
    """A ScenarioConfig from a YAML or JSON file of its fields (unknown fields are errors;
    a relative `dem_dir` or `static_field_file` is taken relative to the file's directory)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"scenario file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"scenario file {path.name}: malformed YAML/JSON") from exc
    if not isinstance(data, dict):
        raise InputError(f"scenario file {path.name}: expected a mapping of ScenarioConfig fields")
    for key in ("dem_dir", "static_field_file"):
        value = data.get(key)
        if isinstance(value, str) and not Path(value).expanduser().is_absolute():
            # A relative path is relative to the scenario file, not to where one runs.
            data = {**data, key: str((path.parent / value).resolve())}
    try:
        return ScenarioConfig(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "scenario"
        raise InputError(f"scenario file {path.name}: {field}: {first['msg']}") from exc


@dataclass(frozen=True)
class NetworkGeometry:
    """What the simulator needs of a network, in local metres about its reference."""

    rx_position_m: np.ndarray  # [R, 3]
    rx_gain_dbi: np.ndarray  # [R]
    noise_figure_db: np.ndarray  # [R]
    frequency_hz: float
    bandwidth_hz: float
    bounds_m: tuple[float, float, float, float]  # east_min, east_max, north_min, north_max
    terrain: TerrainField
    #: Per-receiver knobs of a fitted scenario; None: the scenario's scalar defaults.
    receivers: ReceiverKnobs | None = None
    #: Terrain diffraction over a DEM; None: no DEM.
    dem: DemTerrain | None = None
    #: Static shadowing measured on the network; None: none.
    static_map: StaticMap | None = None


@dataclass(frozen=True)
class SimulatedBlock:
    """Accepted samples of one block and how many draws it took."""

    tx_position_m: np.ndarray  # [N, 2]
    tx_power_dbm: np.ndarray  # [N]
    rss_dbm: np.ndarray  # [N, R], NaN where not heard
    snr_db: np.ndarray  # [N, R], NaN where not heard
    heard: np.ndarray  # [N, R]
    present: np.ndarray  # [N, R]
    #: Every link, heard or not: the power the receiver would read (dBm, its calibration
    #: error included) and the SNR in the channel (dB); what IQ synthesis needs.
    link_power_dbm: np.ndarray  # [N, R]
    link_snr_db: np.ndarray  # [N, R]
    draws: int
    accepted: int
    #: Terrain features of every link [N, R] when the scenario has a DEM (else None).
    line_of_sight: np.ndarray | None = None
    obstructions: np.ndarray | None = None
    diffraction_loss_db: np.ndarray | None = None


def path_loss_db(
    distance_m: np.ndarray,
    geometry: NetworkGeometry,
    config: ScenarioConfig,
    path_loss_exponent: np.ndarray | float | None = None,
) -> np.ndarray:
    """Median path loss (dB) of each link under the configured model.

    `path_loss_exponent` (log-distance only) overrides the configured one, e.g. per sample
    as an [N, 1] array.
    """
    f = geometry.frequency_hz
    if config.path_loss_model == "log-distance":
        exponent = config.path_loss_exponent if path_loss_exponent is None else path_loss_exponent
        return propagation.log_distance_path_loss_db(distance_m, f, exponent, config.reference_distance_m)
    if config.path_loss_model == "free-space":
        return propagation.free_space_path_loss_db(distance_m, f)
    if config.path_loss_model == "two-ray":
        return propagation.two_ray_path_loss_db(distance_m, f, config.tx_height_m, config.rx_height_m)
    return propagation.okumura_hata_path_loss_db(distance_m, f, config.rx_height_m, config.tx_height_m)


def _draw(
    rng: np.random.Generator, n: int, geometry: NetworkGeometry, config: ScenarioConfig
) -> tuple[np.ndarray, ...]:
    """Draw n candidate samples (accepted or not)."""
    r = geometry.rx_position_m.shape[0]
    east_min, east_max, north_min, north_max = geometry.bounds_m
    tx = np.column_stack(
        [rng.uniform(east_min, east_max, n), rng.uniform(north_min, north_max, n)]
    )
    tx_power = rng.uniform(config.tx_power_min_dbm, config.tx_power_max_dbm, n)
    # The transmitter stands tx_height_m above the reference altitude; receivers at their own.
    delta = np.empty((n, r, 3))
    delta[..., :2] = tx[:, None, :] - geometry.rx_position_m[None, :, :2]
    delta[..., 2] = config.tx_height_m - geometry.rx_position_m[None, :, 2]
    distance_m = np.sqrt(np.sum(delta**2, axis=-1))
    # Randomised propagation (drawn only when asked, so default datasets keep their bytes).
    exponent = None
    if config.path_loss_exponent_max is not None:
        exponent = rng.uniform(config.path_loss_exponent, config.path_loss_exponent_max, (n, 1))
    loss = path_loss_db(distance_m, geometry, config, exponent)
    terrain: tuple[np.ndarray, ...] = ()
    if geometry.dem is not None:
        links = geometry.dem.link_features(tx, geometry.rx_position_m, config.tx_height_m)
        loss = loss + links.diffraction_loss_db
        terrain = (links.line_of_sight, links.obstructions, links.diffraction_loss_db.astype(np.float32))
    sigma_db: np.ndarray | float = config.shadowing_sigma_db
    if config.shadowing_sigma_max_db is not None:
        sigma_db = rng.uniform(config.shadowing_sigma_db, config.shadowing_sigma_max_db, (n, 1))
    shadow = geometry.terrain.shadowing_db(tx) + propagation.shadowing_db(rng, sigma_db, (n, r))
    if geometry.static_map is not None:
        shadow = shadow + geometry.static_map.shadowing_db(tx)
    fade = propagation.fading_gain_db(rng, config.fading_k_factor_db, (n, r), config.fading_looks)
    calibration = rng.normal(0.0, config.calibration_sigma_db, (n, r))
    knobs = geometry.receivers
    offline = config.receiver_offline_probability if knobs is None else knobs.offline_probability
    online = rng.random((n, r)) >= offline
    true_rx_dbm = tx_power[:, None] + geometry.rx_gain_dbi[None, :] - loss + shadow + fade
    noise_dbm = propagation.noise_floor_dbm(geometry.bandwidth_hz, geometry.noise_figure_db)
    snr = true_rx_dbm - noise_dbm[None, :]
    # The station reports power through its own (unknown) calibration error, in its scale.
    reported = true_rx_dbm + calibration
    audible = snr >= config.min_snr_db
    if knobs is not None:
        reported = reported + knobs.offset_db
        thresholded = np.isfinite(knobs.threshold_db)
        audible = np.where(thresholded, reported >= np.nan_to_num(knobs.threshold_db), audible)
    heard = online & audible
    measured = np.where(heard, reported, np.nan)
    return tx, tx_power, measured, np.where(heard, snr, np.nan), heard, online, reported, snr, *terrain


def simulate_block(
    rng: np.random.Generator, num_samples: int, geometry: NetworkGeometry, config: ScenarioConfig
) -> SimulatedBlock:
    """Draw until `num_samples` samples are heard by at least `min_receivers` receivers."""
    if num_samples <= 0:
        raise InputError(f"number of samples must be positive, got {num_samples}")
    kept: list[tuple[np.ndarray, ...]] = []
    have = 0
    draws = 0
    limit = num_samples * config.max_draw_factor
    while have < num_samples:
        if draws >= limit:
            raise DataError(
                f"only {have} of {draws} drawn samples were heard by >= {config.min_receivers} "
                f"receivers at SNR >= {config.min_snr_db} dB; the scenario (power, area, "
                "path loss) leaves almost nothing audible"
            )
        # Oversample a little so most blocks finish in one or two rounds.
        batch = max(64, int((num_samples - have) * 1.3))
        parts = _draw(rng, batch, geometry, config)
        draws += batch
        accept = parts[4].sum(axis=1) >= config.min_receivers
        kept.append(tuple(p[accept] for p in parts))
        have += int(accept.sum())
    columns = [np.concatenate([k[i] for k in kept])[:num_samples] for i in range(len(kept[0]))]
    # `accepted / draws` is the acceptance rate; the surplus of the last round is dropped.
    return SimulatedBlock(*columns[:8], draws, have, *columns[8:])
