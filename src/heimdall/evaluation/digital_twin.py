"""A scenario fitted to a measured network, and how well it predicts held-out links in dB.

`fit_scenario_to_samples` fits the simulator's propagation model (`heimdall.sim.fitting`)
on the training split of a measured dataset and maps it onto a `ScenarioConfig` that
`heimdall generate` runs for that network. `validate_scenario` predicts every held-out
link's RSS from a scenario and compares it with a plain log-distance line fitted on the
same training rows (one exponent, one intercept, no receiver offsets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.data.layout import SampleArrays
from heimdall.data.synthetic import network_geometry
from heimdall.errors import DataError
from heimdall.geo import ReferencePoint
from heimdall.network import ReceiverNetwork
from heimdall.sim import propagation
from heimdall.sim.fitting import (
    LinkFit,
    Variogram,
    empirical_variogram,
    fit_exponential_variogram,
    fit_links,
    fit_plain_log_distance,
    krige_residuals,
)
from heimdall.sim.scenario import ScenarioConfig, path_loss_db
from heimdall.sim.terrain import StaticMap
from heimdall.training.censored_physics import censored_path_loss_exponent

__all__ = ["Links", "links_of", "ScenarioFit", "fit_scenario_to_samples", "predict_links_db", "validate_scenario"]

_REFERENCE_DISTANCE_M = 100.0


@dataclass(frozen=True)
class Links:
    """Present links of samples with known transmitters, one row each."""

    sample_index: np.ndarray  # [M] sample row
    rx_index: np.ndarray  # [M] station index
    distance_m: np.ndarray  # [M]
    rss_db: np.ndarray  # [M], NaN where not heard
    heard: np.ndarray  # [M]
    tx_position_m: np.ndarray  # [M, 2]
    rx_position_m: np.ndarray  # [M, 3]


def links_of(samples: SampleArrays, tx_height_m: float) -> Links:
    """Every present link of a known station and a known transmitter position."""
    tx = samples.tx_position_m.astype(np.float64)
    keep = samples.present & (samples.rx_id >= 0) & np.all(np.isfinite(tx), axis=1)[:, None]
    keep &= np.all(np.isfinite(samples.rx_position_m), axis=2)
    rows, slots = np.nonzero(keep)
    rx = samples.rx_position_m[rows, slots].astype(np.float64)
    delta = np.column_stack([tx[rows] - rx[:, :2], tx_height_m - rx[:, 2]])
    return Links(
        sample_index=rows,
        rx_index=samples.rx_id[rows, slots].astype(np.int64),
        distance_m=np.maximum(np.linalg.norm(delta, axis=1), 1.0),
        rss_db=samples.rss_dbm[rows, slots].astype(np.float64),
        heard=samples.heard[rows, slots],
        tx_position_m=tx[rows],
        rx_position_m=rx,
    )


@dataclass(frozen=True)
class ScenarioFit:
    """The fitted scenario and the report of its fit (JSON-ready `report`)."""

    scenario: ScenarioConfig
    fit: LinkFit
    variogram: Variogram
    links: Links
    report: dict[str, Any]
    #: The residuals kriged per station (None unless asked for); the scenario's
    #: `static_field_file` is to name where it is saved.
    static_map: StaticMap | None = None


def _fading_variance_db2(config: ScenarioConfig) -> float:
    fade = propagation.fading_gain_db(np.random.default_rng(0), config.fading_k_factor_db, 100_000, config.fading_looks)
    return float(np.var(fade))


def _margin_m(network: ReceiverNetwork, reference: ReferencePoint, tx_m: np.ndarray) -> float:
    """How far (m) transmitters went beyond the receivers' bounding box, plus a tenth of it."""
    east_min, east_max, north_min, north_max = network.bounds_enu_m(reference)
    beyond = max(east_min - tx_m[:, 0].min(), tx_m[:, 0].max() - east_max, north_min - tx_m[:, 1].min(), tx_m[:, 1].max() - north_max, 0.0)
    extent = max(east_max - east_min, north_max - north_min)
    return float(beyond + 0.1 * extent)


def fit_scenario_to_samples(
    train: SampleArrays,
    network: ReceiverNetwork,
    reference: ReferencePoint,
    tx_power_dbm: float = 30.0,
    rss_scale: str = "relative",
    base: ScenarioConfig | None = None,
    static_field: bool = False,
) -> ScenarioFit:
    """Fit a scenario to the training samples of a measured network.

    `tx_power_dbm` is the transmitter's nominal power: with uncalibrated receivers the
    absolute level is not identifiable, so it only fixes how the receivers' offsets are
    written; the RSS the scenario simulates in each receiver's scale does not depend on it.

    With `static_field`, each station's residuals are also kriged (simple kriging with the
    fitted variogram) onto a grid over the simulated area: the measured static shadowing
    (`ScenarioFit.static_map`), so the simulator reproduces the real network's shadowing
    where it was measured; the random terrain field then carries only the variance the
    kriging leaves unexplained (its mean over the transmitters' bounding box).
    """
    base = base or ScenarioConfig()
    links = links_of(train, base.tx_height_m)
    heard = links.heard
    if heard.sum() < 10:
        raise DataError(f"the training split has {int(heard.sum())} heard links with known transmitters; a fit needs at least 10")
    num_rx = len(network.receivers)
    arguments = (links.distance_m[heard], links.rss_db[heard], links.rx_index[heard], links.sample_index[heard], num_rx,
                 _REFERENCE_DISTANCE_M)
    fit = fit_links(*arguments)
    heard_only_exponent = fit.path_loss_exponent
    if not heard.all():
        # Receivers that listened and heard nothing: least squares on the heard links sees only
        # the far transmissions that arrived strong and flattens the law the simulator would
        # then reproduce; the censored estimate counts the silences (equal when there are none).
        fit = fit_links(*arguments, exponent=censored_path_loss_exponent(train, num_rx))
    tx_heard = links.tx_position_m[heard]
    extent_m = float(np.max(np.ptp(tx_heard, axis=0)))
    variogram = empirical_variogram(tx_heard, fit.residual_db, links.rx_index[heard], max_lag_m=max(extent_m / 2.0, 1.0))
    nugget, sill, length_m = fit_exponential_variogram(variogram)
    # Each transmission's level is fitted from its own links, absorbing 1/k of their
    # residual variance (k links heard): scaled back so the simulated spread matches.
    heard_per_sample = np.bincount(links.sample_index[heard])
    k = float(np.mean(heard_per_sample[heard_per_sample > 0]))
    inflate = k / (k - 1.0) if k > 1.5 else 1.0
    fading_db2 = _fading_variance_db2(base)
    shadowing_db = float(np.sqrt(max(nugget * inflate - fading_db2, 0.0)))
    level_spread_db = float(np.std(fit.sample_level_db))
    half_width_db = float(np.sqrt(3.0) * level_spread_db)
    fspl_d0 = float(propagation.free_space_path_loss_db(_REFERENCE_DISTANCE_M, network.frequency_hz))
    gains = {r.receiver_id: r.antenna_gain_dbi for r in network.receivers}
    ids = list(network.ids)
    offsets: dict[str, float] = {}
    for index, receiver_id in enumerate(ids):
        o = fit.rx_offset_db[index]
        offsets[receiver_id] = round(float(fit.intercept_db + (0.0 if np.isnan(o) else o) - (tx_power_dbm - fspl_d0 + gains[receiver_id])), 3)
    # Who hears what: presence and detection per receiver, from the training links.
    per_rx_present = np.bincount(links.rx_index, minlength=num_rx)
    per_rx_heard = np.bincount(links.rx_index[heard], minlength=num_rx)
    n_train = len(train)
    offline = {ids[i]: round(min(1.0 - float(per_rx_present[i] / n_train), 0.999), 4) for i in range(num_rx)}
    thresholds: dict[str, float] = {}
    for i in range(num_rx):
        if per_rx_present[i] > per_rx_heard[i] and per_rx_heard[i] > 0:
            thresholds[ids[i]] = round(float(np.min(links.rss_db[heard & (links.rx_index == i)])), 3)
    heard_counts = train.heard.sum(axis=1)
    margin_m = _margin_m(network, reference, train.tx_position_m.astype(np.float64))
    terrain_db2 = sill * inflate
    static_map = None
    if static_field:
        static_map, terrain_db2 = _static_map(fit, links, heard, network, reference, margin_m, (nugget, sill, length_m), inflate)
    scenario = base.model_copy(
        update={
            "path_loss_model": "log-distance",
            "path_loss_exponent": round(fit.path_loss_exponent, 4),
            "path_loss_exponent_max": None,
            "reference_distance_m": _REFERENCE_DISTANCE_M,
            "tx_power_min_dbm": round(tx_power_dbm - half_width_db, 3),
            "tx_power_max_dbm": round(tx_power_dbm + half_width_db, 3),
            "shadowing_sigma_db": round(shadowing_db, 3),
            "shadowing_sigma_max_db": None,
            "terrain_sigma_db": round(float(np.sqrt(terrain_db2)), 3),
            "terrain_correlation_m": round(max(length_m, 1.0), 1),
            "calibration_sigma_db": 0.0,
            "area_margin_m": round(margin_m, 1),
            "min_receivers": int(max(1, heard_counts[heard_counts > 0].min())),
            "rss_scale": rss_scale,
            "rx_offset_db": offsets,
            "rx_detection_threshold_db": thresholds,
            "rx_offline_probability": offline,
        }
    )
    scenario = ScenarioConfig(**scenario.model_dump())  # validated
    report = _fit_report(fit, variogram, (nugget, sill, length_m), links, heard, ids, per_rx_present, per_rx_heard, n_train)
    report["scenario"] = scenario.model_dump()
    report["transmit_level_spread_db"] = round(level_spread_db, 3)
    report["path_loss_exponent_heard_only"] = round(heard_only_exponent, 4)
    if static_map is not None:
        report["static_field"] = {"grid_step_m": round(static_map.step_m, 1), "grid_shape": list(static_map.values_db.shape),
                                  "unexplained_sigma_db": round(float(np.sqrt(terrain_db2)), 3)}
    return ScenarioFit(scenario, fit, variogram, links, report, static_map)


def _static_map(
    fit: LinkFit, links: Links, heard: np.ndarray, network: ReceiverNetwork, reference: ReferencePoint,
    margin_m: float, model: tuple[float, float, float], inflate: float,
) -> tuple[StaticMap, float]:
    """The kriged per-station residual map over the simulated area, and the static
    variance (dB^2) it leaves unexplained inside the transmitters' bounding box."""
    nugget, sill, length_m = model
    east_min, east_max, north_min, north_max = network.bounds_enu_m(reference, margin_m)
    step_m = max(length_m / 4.0, max(east_max - east_min, north_max - north_min) / 150.0, 1.0)
    east = np.arange(east_min, east_max + step_m, step_m)
    north = np.arange(north_min, north_max + step_m, step_m)
    grid_e, grid_n = np.meshgrid(east, north)
    points = np.column_stack([grid_e.ravel(), grid_n.ravel()])
    mean, variance = krige_residuals(
        links.tx_position_m[heard], fit.residual_db, links.rx_index[heard], len(network.receivers), points,
        nugget * inflate, sill * inflate, length_m,
    )
    tx = links.tx_position_m[heard]
    inside = (points[:, 0] >= tx[:, 0].min()) & (points[:, 0] <= tx[:, 0].max()) & (points[:, 1] >= tx[:, 1].min()) & (points[:, 1] <= tx[:, 1].max())
    has_data = np.bincount(links.rx_index[heard], minlength=len(network.receivers)) > 0
    left_db2 = float(variance[np.ix_(has_data, inside)].mean()) if inside.any() and has_data.any() else sill * inflate
    shape = (len(network.receivers), north.size, east.size)
    return StaticMap(mean.reshape(shape), float(east[0]), float(north[0]), float(step_m)), left_db2


def _rmse(values: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(values**2))) if values.size else None


def _fit_report(
    fit: LinkFit,
    variogram: Variogram,
    model: tuple[float, float, float],
    links: Links,
    heard: np.ndarray,
    ids: list[str],
    present: np.ndarray,
    heard_count: np.ndarray,
    n_train: int,
) -> dict[str, Any]:
    rx = links.rx_index[heard]
    receivers = []
    for i, receiver_id in enumerate(ids):
        residual = fit.residual_db[rx == i]
        receivers.append({
            "receiver_id": receiver_id,
            "links": int(residual.size),
            "offset_db": None if np.isnan(fit.rx_offset_db[i]) else round(float(fit.rx_offset_db[i]), 3),
            "residual_rmse_db": None if residual.size == 0 else round(_rmse(residual) or 0.0, 3),
            "present_fraction": round(float(present[i] / max(n_train, 1)), 4),
            "heard_fraction": None if present[i] == 0 else round(float(heard_count[i] / present[i]), 4),
        })
    distance = links.distance_m[heard]
    edges = np.geomspace(max(distance.min(), 1.0), distance.max() * 1.0001, 11)
    by_distance = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (distance >= lo) & (distance < hi)
        if inside.any():
            by_distance.append({"distance_min_m": round(float(lo), 1), "distance_max_m": round(float(hi), 1), "links": int(inside.sum()),
                                "mean_db": round(float(fit.residual_db[inside].mean()), 3), "rmse_db": round(_rmse(fit.residual_db[inside]) or 0.0, 3)})
    nugget, sill, length_m = model
    return {
        "links": int(heard.sum()),
        "samples": n_train,
        "path_loss_exponent": round(fit.path_loss_exponent, 4),
        "intercept_db_at_100m": round(fit.intercept_db, 3),
        "residual_rmse_db": round(_rmse(fit.residual_db) or 0.0, 3),
        "receivers": receivers,
        "residual_by_distance": by_distance,
        "variogram": {
            "lag_m": [round(float(v), 1) for v in variogram.lag_m],
            "gamma_db2": [round(float(v), 3) for v in variogram.gamma_db2],
            "pairs": [int(v) for v in variogram.pairs],
            "nugget_db2": round(nugget, 3),
            "sill_db2": round(sill, 3),
            "correlation_length_m": round(length_m, 1),
        },
    }


def predict_links_db(
    links: Links, scenario: ScenarioConfig, network: ReceiverNetwork, reference: ReferencePoint | None = None
) -> np.ndarray:
    """The scenario's median RSS (dB, each receiver's reported scale) of every link, for a
    transmitter at the middle of its power range; random shadowing and fading average out."""
    reference = network.reference_point() if reference is None else reference
    geometry = network_geometry(network, reference, scenario)
    loss = path_loss_db(links.distance_m, geometry, scenario)
    if geometry.dem is not None:
        loss = loss + geometry.dem.pair_features(links.tx_position_m, links.rx_position_m, scenario.tx_height_m).diffraction_loss_db
    if geometry.static_map is not None:
        loss = loss - geometry.static_map.pair_db(links.tx_position_m, links.rx_index)
    power = 0.5 * (scenario.tx_power_min_dbm + scenario.tx_power_max_dbm)
    knobs = scenario.per_receiver(network.ids)
    return power + geometry.rx_gain_dbi[links.rx_index] - loss + knobs.offset_db[links.rx_index]


def validate_scenario(
    train: SampleArrays, held_out: SampleArrays, scenario: ScenarioConfig, network: ReceiverNetwork, reference: ReferencePoint
) -> dict[str, Any]:
    """Per-link RSS error (dB) of `scenario` on held-out links, beside plain log-distance.

    Plain log-distance is fitted on `train`'s heard links (one exponent and intercept, no
    receiver offsets). Heard/not-heard agreement is over present links: the scenario says
    heard where its median RSS reaches the receiver's detection threshold (or its SNR rule).
    """
    held = links_of(held_out, scenario.tx_height_m)
    if not held.heard.any():
        raise DataError("no held-out heard links with known transmitters to validate against")
    fitted = links_of(train, scenario.tx_height_m)
    exponent, intercept = fit_plain_log_distance(fitted.distance_m[fitted.heard], fitted.rss_db[fitted.heard], _REFERENCE_DISTANCE_M)
    predicted = predict_links_db(held, scenario, network, reference)
    plain = intercept - 10.0 * exponent * np.log10(np.maximum(held.distance_m, _REFERENCE_DISTANCE_M) / _REFERENCE_DISTANCE_M)
    h = held.heard
    error = predicted[h] - held.rss_db[h]
    plain_error = plain[h] - held.rss_db[h]
    knobs = scenario.per_receiver(network.ids)
    threshold = knobs.threshold_db[held.rx_index]
    noise_dbm = propagation.noise_floor_dbm(network.bandwidth_hz, np.array([r.noise_figure_db for r in network.receivers]))
    snr_rule = (predicted - knobs.offset_db[held.rx_index]) - noise_dbm[held.rx_index] >= scenario.min_snr_db
    predicted_heard = np.where(np.isfinite(threshold), predicted >= np.nan_to_num(threshold), snr_rule)
    per_receiver = []
    for i, receiver_id in enumerate(network.ids):
        rows = held.rx_index[h] == i
        if rows.any():
            per_receiver.append({"receiver_id": receiver_id, "links": int(rows.sum()),
                                 "rmse_db": round(_rmse(error[rows]) or 0.0, 3), "bias_db": round(float(error[rows].mean()), 3),
                                 "plain_rmse_db": round(_rmse(plain_error[rows]) or 0.0, 3)})
    return {
        "held_out_samples": len(held_out),
        "links": int(h.sum()),
        "scenario": {"rmse_db": round(_rmse(error) or 0.0, 3), "bias_db": round(float(error.mean()), 3),
                     "heard_agreement": round(float(np.mean(predicted_heard == held.heard)), 4)},
        "plain_log_distance": {"rmse_db": round(_rmse(plain_error) or 0.0, 3), "bias_db": round(float(plain_error.mean()), 3),
                               "path_loss_exponent": round(exponent, 4), "intercept_db_at_100m": round(intercept, 3),
                               "heard_agreement": round(float(np.mean(held.heard)), 4)},
        "receivers": per_receiver,
    }
