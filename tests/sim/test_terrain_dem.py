"""Terrain over a DEM: knife-edge physics, SRTM/GeoTIFF reading, the compiled kernel.

The DEMs are synthetic SRTM tiles written by the `tile_dir` fixture (`write_hgt`): a flat
plain, or the plain with a straight north-south ridge between transmitter and receiver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heimdall.data.synthetic import network_geometry
from heimdall.errors import ConfigError, NotFoundError
from heimdall.geo import ReferencePoint, ground_to_local
from heimdall.network import Receiver, ReceiverNetwork
from heimdall.sim import propagation
from heimdall.sim.dem import DemTerrain, ElevationGrid, load_elevation_grid, read_hgt, write_hgt
from heimdall.sim.diffraction import deygout_loss, fresnel_v, knife_edge_loss_db
from heimdall.sim.scenario import ScenarioConfig, simulate_block

PLAIN_M = 1300.0
RIDGE_LON = -111.85
RIDGE_HEIGHT_M = 60.0
FREQUENCY_HZ = 462.7e6


def _tile(ridge: bool) -> np.ndarray:
    lon = np.linspace(-112.0, -111.0, 1201)
    elevation = np.full((1201, 1201), PLAIN_M)
    if ridge:
        # A sharp ridge: one 3" column (~70 m) RIDGE_HEIGHT_M above the plain, no flanks.
        elevation[:, np.argmin(np.abs(lon - RIDGE_LON))] += RIDGE_HEIGHT_M
    return elevation


@pytest.fixture
def tile_dir(tmp_path: Path):
    def make(ridge: bool) -> Path:
        directory = tmp_path / ("ridge" if ridge else "flat")
        directory.mkdir(exist_ok=True)
        write_hgt(directory, 40, -112, _tile(ridge))
        return directory

    return make


def _network() -> ReceiverNetwork:
    # Two receivers east of the ridge, one far west of it (transmitters go west).
    return ReceiverNetwork(
        name="ridge-test", frequency_hz=FREQUENCY_HZ,
        receivers=(
            Receiver(receiver_id="east", name="east", lat_deg=40.75, lon_deg=-111.82),
            Receiver(receiver_id="north", name="north", lat_deg=40.76, lon_deg=-111.82),
            Receiver(receiver_id="west", name="west", lat_deg=40.75, lon_deg=-111.88),
        ),
    )


def test_knife_edge_loss_follows_itu_r_p526() -> None:
    assert knife_edge_loss_db(0.0) == pytest.approx(6.9 + 20 * np.log10(np.sqrt(1.01) - 0.1))  # ~6 dB at grazing
    assert knife_edge_loss_db(-0.78) == 0.0 and knife_edge_loss_db(-5.0) == 0.0
    assert knife_edge_loss_db(1.0) == pytest.approx(13.9, abs=0.05)
    # Large v: J(v) ~ 13 + 20 log10 v.
    assert knife_edge_loss_db(20.0) == pytest.approx(13.0 + 20 * np.log10(20.0), abs=0.2)
    assert np.all(np.diff(knife_edge_loss_db(np.linspace(-0.7, 10, 50))) > 0)


def test_deygout_on_a_single_ridge_profile_is_j_of_v() -> None:
    points, distance, wavelength = 41, 4000.0, propagation.wavelength_m(FREQUENCY_HZ)
    profile = np.full(points, 100.0)
    profile[10] = 140.0  # 1 km from the transmitter, 40 m above the plain
    links = deygout_loss(profile[None], np.array([distance]), 2.0, 10.0, float(wavelength))
    los_height = 102.0 + 0.25 * (110.0 - 102.0)
    v = fresnel_v(140.0 - los_height, 1000.0, 3000.0, float(wavelength))
    assert links.diffraction_loss_db[0] == pytest.approx(float(knife_edge_loss_db(v)), abs=1e-9)
    assert not links.line_of_sight[0] and links.obstructions[0] == 1


def test_flat_and_evenly_sloped_ground_adds_no_diffraction() -> None:
    t = np.linspace(0, 1, 33)
    for profile in (np.full(33, 500.0), 500.0 + 300.0 * t):
        links = deygout_loss(profile[None], np.array([5000.0]), 1.5, 10.0, 0.65)
        assert links.diffraction_loss_db[0] == 0.0 and links.line_of_sight[0] and links.obstructions[0] == 0


def test_two_ridges_count_as_two_obstructions_and_add_up() -> None:
    profile = np.full(41, 0.0)
    profile[10], profile[30] = 50.0, 50.0
    both = deygout_loss(profile[None], np.array([4000.0]), 2.0, 2.0, 0.65)
    one = profile.copy()
    one[30] = 0.0
    single = deygout_loss(one[None], np.array([4000.0]), 2.0, 2.0, 0.65)
    assert both.obstructions[0] == 2 and single.obstructions[0] == 1
    assert both.diffraction_loss_db[0] > single.diffraction_loss_db[0] + 6.0


def test_hgt_rows_run_north_to_south_and_voids_are_filled(tmp_path: Path) -> None:
    lat = np.linspace(41.0, 40.0, 1201)[:, None]
    elevation = np.broadcast_to(1000.0 + 10_000.0 * (lat - 40.0), (1201, 1201)).copy()
    elevation[600, 600] = -32768
    path = write_hgt(tmp_path, 40, -112, elevation)
    assert path.name == "N40W112.hgt" and path.stat().st_size == 1201 * 1201 * 2
    raster = read_hgt(path)
    assert raster.elevation_m[600, 600] == pytest.approx(6000.0, abs=1.0)  # the median fills the void
    grid = load_elevation_grid(tmp_path, ReferencePoint(40.5, -111.5, 0.0), (-2000.0, 2000.0, -2000.0, 2000.0))
    north, south = grid.at(np.array([0.0]), np.array([1800.0])), grid.at(np.array([0.0]), np.array([-1800.0]))
    assert north[0] - south[0] == pytest.approx(10_000.0 * 3600.0 / 111_000.0, rel=0.01)  # 10 km per degree north


def test_geotiff_gives_the_same_grid_as_hgt(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio", reason="GeoTIFF needs the 'terrain' extra (in the test extra)")
    from rasterio.transform import from_origin

    lat = np.linspace(41.0, 40.0, 1201)[:, None]
    lon = np.linspace(-112.0, -111.0, 1201)[None, :]
    elevation = (1000.0 + 300.0 * np.sin(lat * 20) * np.cos(lon * 30)).astype(np.float32)
    (tmp_path / "hgt").mkdir()
    (tmp_path / "tif").mkdir()
    write_hgt(tmp_path / "hgt", 40, -112, elevation)
    step = 1.0 / 1200
    with rasterio.open(
        tmp_path / "tif" / "dem.tif", "w", driver="GTiff", height=1201, width=1201, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(-112.0 - step / 2, 41.0 + step / 2, step, step),
    ) as out:
        out.write(np.round(elevation), 1)
    reference, bounds = ReferencePoint(40.5, -111.5, 0.0), (-3000.0, 3000.0, -3000.0, 3000.0)
    a = load_elevation_grid(tmp_path / "hgt", reference, bounds)
    b = load_elevation_grid(tmp_path / "tif", reference, bounds)
    np.testing.assert_allclose(a.elevation_m, b.elevation_m, atol=0.01)


def test_missing_tile_and_directory_are_named(tmp_path: Path, tile_dir) -> None:
    directory = tile_dir(False)
    with pytest.raises(ConfigError, match="N45E007.hgt"):
        load_elevation_grid(directory, ReferencePoint(45.5, 7.5, 0.0), (-1000.0, 1000.0, -1000.0, 1000.0))
    with pytest.raises(NotFoundError, match="nowhere"):
        load_elevation_grid(tmp_path / "nowhere", ReferencePoint(40.5, -111.5, 0.0), (-1.0, 1.0, -1.0, 1.0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no .hgt"):
        load_elevation_grid(tmp_path / "empty", ReferencePoint(40.5, -111.5, 0.0), (-1.0, 1.0, -1.0, 1.0))


def _quiet(dem_dir: Path | None, model: str) -> ScenarioConfig:
    return ScenarioConfig(
        dem_dir=None if dem_dir is None else str(dem_dir), path_loss_model=model, area_margin_m=3000.0,
        shadowing_sigma_db=0.0, terrain_sigma_db=0.0, fading_k_factor_db=float("inf"), calibration_sigma_db=0.0,
        receiver_offline_probability=0.0, min_receivers=1, min_snr_db=-1000.0, terrain_profile_points=96,
    )


@pytest.mark.parametrize("model", ["free-space", "two-ray"])
def test_flat_dem_gives_the_free_space_or_two_ray_result(tile_dir, model: str) -> None:
    network = _network()
    with_dem = network_geometry(network, network.reference_point(), _quiet(tile_dir(False), model))
    without = network_geometry(network, network.reference_point(), _quiet(None, model))
    a = simulate_block(np.random.default_rng(7), 300, with_dem, _quiet(tile_dir(False), model))
    b = simulate_block(np.random.default_rng(7), 300, without, _quiet(None, model))
    np.testing.assert_array_equal(a.rss_dbm, b.rss_dbm)
    assert a.line_of_sight.all() and not a.obstructions.any() and not a.diffraction_loss_db.any()
    assert b.line_of_sight is None


def test_a_ridge_between_transmitter_and_receiver_adds_j_of_v(tile_dir) -> None:
    network = _network()
    reference = network.reference_point()
    ridge_config, flat_config = _quiet(tile_dir(True), "free-space"), _quiet(tile_dir(False), "free-space")
    ridge = simulate_block(np.random.default_rng(8), 400, network_geometry(network, reference, ridge_config), ridge_config)
    flat = simulate_block(np.random.default_rng(8), 400, network_geometry(network, reference, flat_config), flat_config)
    extra_loss = flat.rss_dbm - ridge.rss_dbm
    np.testing.assert_allclose(extra_loss, ridge.diffraction_loss_db, atol=1e-4)
    # Transmitters well west of the ridge, heard by the east receiver: the ridge is crossed.
    ridge_east, _ = ground_to_local(40.75, RIDGE_LON, reference)
    rx_east = network.positions_enu_m(reference)[0]
    west = ridge.tx_position_m[:, 0] < ridge_east - 500.0
    crossing = west & (np.abs(ridge.tx_position_m[:, 1] - rx_east[1]) < 300.0)
    assert crossing.sum() >= 5
    assert np.all(~ridge.line_of_sight[crossing, 0])
    # Expected: J(v) of the knife edge where the path crosses the ridge, at the height the
    # profile sampled there (the DEM's 3" cells and the local grid blur a one-cell ridge).
    tx = ridge.tx_position_m[crossing].astype(np.float64)
    geometry = network_geometry(network, reference, ridge_config)
    profile = geometry.dem.profiles_m(tx, rx_east[None])[:, 0]
    peak = np.argmax(profile, axis=1)
    t = peak / (profile.shape[1] - 1)
    distance = np.linalg.norm(tx - rx_east[:2], axis=1)
    los_m = PLAIN_M + ridge_config.tx_height_m + t * (ridge_config.rx_height_m - ridge_config.tx_height_m)
    h = profile[np.arange(len(tx)), peak] - los_m
    assert np.all(h > 0.25 * RIDGE_HEIGHT_M)  # the ridge is there, blurred but not flattened away
    ridge_east_of_peak = tx[:, 0] + t * (rx_east[0] - tx[:, 0])
    np.testing.assert_allclose(ridge_east_of_peak, ridge_east, atol=150.0)
    expected = knife_edge_loss_db(fresnel_v(h, t * distance, (1 - t) * distance, float(propagation.wavelength_m(FREQUENCY_HZ))))
    got = ridge.diffraction_loss_db[crossing, 0]
    # Mostly exactly J(v); where the blurred ridge leaves a second sample on its shoulder,
    # Deygout adds that small secondary edge on top (never less than J(v)).
    assert np.mean(np.abs(got - expected) < 0.05) >= 0.8
    assert np.all(got >= expected - 0.05) and np.all(got <= expected + 2.0)
    assert np.mean(ridge.diffraction_loss_db[crossing, 0]) > 10.0
    # Both ends on the same side of the ridge: nothing in the way.
    east_side = ridge.tx_position_m[:, 0] > ridge_east + 500.0
    assert np.all(ridge.diffraction_loss_db[east_side, 0] == 0.0)


def test_compiled_kernel_matches_the_numpy_reference() -> None:
    rng = np.random.default_rng(3)
    grid = ElevationGrid((500.0 + 60.0 * rng.random((60, 60))).astype(np.float32), -3000.0, -3000.0, 100.0)
    dem = DemTerrain.build(grid, FREQUENCY_HZ, 10.0, 40)
    tx = rng.uniform(-2900, 2900, (64, 2))
    rx = np.column_stack([rng.uniform(-2900, 2900, (5, 2)), np.zeros(5)])
    fast = dem.link_features(tx, rx, 1.5)
    distance = np.linalg.norm(tx[:, None] - rx[None, :, :2], axis=-1)
    slow = deygout_loss(dem.profiles_m(tx, rx), distance, 1.5, 10.0, dem.wavelength_m)
    np.testing.assert_allclose(fast.diffraction_loss_db, slow.diffraction_loss_db, atol=1e-3)
    np.testing.assert_array_equal(fast.line_of_sight, slow.line_of_sight)
    np.testing.assert_array_equal(fast.obstructions, slow.obstructions)
    assert fast.diffraction_loss_db.max() > 10.0 and (~fast.line_of_sight).any()
    pairs = dem.pair_features(tx[:5], rx, 1.5)
    np.testing.assert_allclose(pairs.diffraction_loss_db, slow.diffraction_loss_db[np.arange(5), np.arange(5)], atol=1e-9)


def test_scenario_prediction_includes_the_dem(tile_dir) -> None:
    from heimdall.data.synthetic import to_samples
    from heimdall.evaluation.digital_twin import links_of, predict_links_db

    network = _network()
    reference = network.reference_point()
    config = _quiet(tile_dir(True), "free-space")
    geometry = network_geometry(network, reference, config)
    block = simulate_block(np.random.default_rng(9), 200, geometry, config)
    samples = to_samples(0, block, geometry, reference, lambda ids, _tx: np.zeros(len(ids), np.int8))
    links = links_of(samples, config.tx_height_m)
    predicted = predict_links_db(links, config, network, reference)
    # Noise-free: the prediction is the simulated RSS but for the transmit power's draw.
    power_offset = block.tx_power_dbm[links.sample_index] - 0.5 * (config.tx_power_min_dbm + config.tx_power_max_dbm)
    np.testing.assert_allclose(predicted, links.rss_db - power_offset, atol=1e-3)
    assert block.diffraction_loss_db.max() > 10.0
