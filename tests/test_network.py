"""Tests for heimdall.network: receivers, validation, the default network, files."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heimdall.errors import ConfigError, HeimdallError, InputError, NotFoundError
from heimdall.geo import haversine_m
from heimdall.network import Receiver, ReceiverNetwork, default_network

EXPECTED_STATIONS = {
    "aquila-di-giaveno": (45.030, 7.270, 600.0),
    "montanaro": (45.234, 7.857, 300.0),
    "torino": (45.044, 7.672, 250.0),
    "coazze": (45.048, 7.238, 700.0),
    "passo-del-giovi": (44.561, 8.956, 480.0),
    "genova": (44.395, 8.956, 100.0),
    "milano-baggio": (45.478, 9.123, 120.0),
}


def _rx(receiver_id: str, lat: float, lon: float, alt: float = 0.0) -> Receiver:
    return Receiver(
        receiver_id=receiver_id, name=receiver_id.title(), lat_deg=lat, lon_deg=lon, alt_m=alt
    )


def _small_network() -> ReceiverNetwork:
    return ReceiverNetwork(
        name="test",
        receivers=(_rx("a", 45.0, 7.0, 10.0), _rx("b", 45.1, 7.2), _rx("c", 44.9, 7.3)),
        frequency_hz=433e6,
        bandwidth_hz=25e3,
    )


def test_default_network_has_the_italian_websdrs() -> None:
    network = default_network()
    assert network.name == "italy-websdr"
    assert network.frequency_hz == 145e6
    assert len(network) == 7
    assert set(network.ids) == set(EXPECTED_STATIONS)
    for receiver in network.receivers:
        position = (receiver.lat_deg, receiver.lon_deg, receiver.alt_m)
        assert position == EXPECTED_STATIONS[receiver.receiver_id]


def test_index_of_and_unknown_id() -> None:
    network = default_network()
    assert network.receivers[network.index_of("genova")].receiver_id == "genova"
    with pytest.raises(NotFoundError, match="'nowhere'"):
        network.index_of("nowhere")


def test_reference_point_and_enu_positions() -> None:
    network = default_network()
    ref = network.reference_point()
    assert ref.lat_deg == pytest.approx(np.mean([v[0] for v in EXPECTED_STATIONS.values()]))
    assert ref.lon_deg == pytest.approx(np.mean([v[1] for v in EXPECTED_STATIONS.values()]))
    assert ref.alt_m == 0.0
    enu = network.positions_enu_m(ref)
    assert enu.shape == (7, 3)
    # Horizontal ENU separations agree with great-circle distances to 0.5 %.
    i, j = network.index_of("torino"), network.index_of("milano-baggio")
    a, b = network.receivers[i], network.receivers[j]
    assert np.linalg.norm(enu[i, :2] - enu[j, :2]) == pytest.approx(
        haversine_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg), rel=0.005
    )
    east_min, east_max, north_min, north_max = network.bounds_enu_m(ref, margin_m=1000.0)
    assert east_min == pytest.approx(enu[:, 0].min() - 1000.0)
    assert north_max == pytest.approx(enu[:, 1].max() + 1000.0)
    # The network spans ~150 km east-west (7.24 to 9.12 degrees east at 45 N).
    assert 140_000 < east_max - east_min - 2000.0 < 160_000


def test_reference_point_across_antimeridian() -> None:
    network = ReceiverNetwork("fiji", (_rx("w", -17.0, 179.5), _rx("e", -17.0, -179.5)))
    assert abs(network.reference_point().lon_deg) == pytest.approx(180.0)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    for network in (default_network(), _small_network()):
        path = network.save(tmp_path / f"network{suffix}")
        assert ReceiverNetwork.load(path) == network


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    _small_network().save(path)
    default_network().save(path)  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["net.yaml"]
    assert ReceiverNetwork.load(path) == default_network()


def test_load_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="missing.yaml"):
        ReceiverNetwork.load(tmp_path / "missing.yaml")


def test_load_malformed_yaml_is_config_error_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nreceivers: [\n  - {receiver_id: a\n")
    with pytest.raises(ConfigError, match="bad.yaml") as info:
        ReceiverNetwork.load(path)
    assert "\n" not in str(info.value)


def test_load_malformed_json_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x", "receivers": [}')
    with pytest.raises(ConfigError, match="bad.json.*invalid JSON"):
        ReceiverNetwork.load(path)


def test_unknown_suffix_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="suffix"):
        _small_network().save(tmp_path / "net.toml")
    (tmp_path / "net.txt").write_text("name: x")
    with pytest.raises(ConfigError, match="suffix"):
        ReceiverNetwork.load(tmp_path / "net.txt")


def test_load_invalid_content_names_file_and_problem(tmp_path: Path) -> None:
    data = _small_network().to_dict()
    data["receivers"][1]["lat_deg"] = 95.0
    path = tmp_path / "net.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"net.json.*'b'.*latitude 95.0 out of range"):
        ReceiverNetwork.load(path)


def test_from_dict_missing_lat_is_clear_error_not_key_error() -> None:
    data = _small_network().to_dict()
    del data["receivers"][0]["lat_deg"]
    with pytest.raises(InputError, match="missing required key 'lat_deg'"):
        ReceiverNetwork.from_dict(data)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d["receivers"][0].update(lat_deg="north"), "lat_deg must be a number"),
        (lambda d: d["receivers"][0].update(alt_m=None), "alt_m must be a number"),
        (lambda d: d["receivers"][0].update(lattitude=45.0), "unknown key"),
        (lambda d: d.update(receivers="a,b"), "receivers must be a list"),
        (lambda d: d["receivers"].__setitem__(0, 42), "must be a mapping"),
        (lambda d: d.pop("name"), "missing required key 'name'"),
        (lambda d: d.update(frequency_hz=-1.0), "frequency_hz -1.0 must be > 0"),
    ],
)
def test_from_dict_rejects_malformed_data_with_heimdall_errors(
    mutate: Callable[[dict[str, Any]], object], pattern: str
) -> None:
    data = _small_network().to_dict()
    mutate(data)
    with pytest.raises(HeimdallError, match=pattern):
        ReceiverNetwork.from_dict(data)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(InputError, match="mapping"):
        ReceiverNetwork.from_dict(["not", "a", "network"])


def test_duplicate_ids_rejected() -> None:
    with pytest.raises(InputError, match="duplicate receiver id 'a'"):
        ReceiverNetwork("n", (_rx("a", 45.0, 7.0), _rx("a", 45.5, 7.5)))


def test_duplicate_position_rejected() -> None:
    with pytest.raises(InputError, match="duplicate position"):
        ReceiverNetwork("n", (_rx("a", 45.0, 7.0), _rx("b", 45.0, 7.0000001)))
    # 2 m apart is a legitimate (if odd) pair of stations.
    ReceiverNetwork("n", (_rx("a", 45.0, 7.0), _rx("b", 45.0, 7.0, alt=2.0)))


def test_empty_receivers_rejected() -> None:
    with pytest.raises(InputError, match="no receivers"):
        ReceiverNetwork("n", ())


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("lat_deg", 95.0, r"receiver 'x': latitude 95.0 out of range \[-90, 90\]"),
        ("lon_deg", -181.0, "longitude -181.0 out of range"),
        ("alt_m", float("nan"), "alt_m must be finite"),
        ("receiver_id", "", "receiver id must be a non-empty string"),
        ("noise_figure_db", -1.0, "noise_figure_db -1.0 must be >= 0"),
    ],
)
def test_receiver_validation(field: str, value: object, pattern: str) -> None:
    kwargs = {"receiver_id": "x", "name": "X", "lat_deg": 45.0, "lon_deg": 7.0}
    kwargs[field] = value
    with pytest.raises(InputError, match=pattern):
        Receiver(**kwargs)


def test_receiver_is_frozen_and_coerces_ints() -> None:
    receiver = Receiver("x", "X", 45, 7)
    assert isinstance(receiver.lat_deg, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        receiver.lat_deg = 46.0  # type: ignore[misc]
