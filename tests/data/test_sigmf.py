"""SigMF recordings: round trips, plain-JSON metadata, and every bad input named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heimdall.data.sigmf import Recording, read_recording, read_recording_set, write_recording
from heimdall.errors import InputError

FS_HZ = 48_000.0
F_HZ = 145_500_000.0


def make_recording(
    receiver_id: str = "rx-a", num_samples: int = 256, seed: int = 0, **overrides: object
) -> Recording:
    rng = np.random.default_rng(seed)
    iq = (rng.normal(size=num_samples) + 1j * rng.normal(size=num_samples)) * 0.1
    fields: dict[str, object] = {
        "receiver_id": receiver_id,
        "rx_lat_deg": 45.07,
        "rx_lon_deg": 7.69,
        "rx_alt_m": 240.0,
        "sample_rate_hz": FS_HZ,
        "frequency_hz": F_HZ,
        "datetime": "2024-05-01T12:00:00.000Z",
        "iq": iq.astype(np.complex64),
        "tx_lat_deg": 45.2,
        "tx_lon_deg": 7.5,
        "sample_id": "tx-0001",
    }
    fields.update(overrides)
    return Recording(**fields)  # type: ignore[arg-type]


def test_cf32_round_trip_is_exact(tmp_path: Path) -> None:
    original = make_recording()
    meta_path = write_recording(tmp_path, "rx-a", original)
    assert meta_path == tmp_path / "rx-a.sigmf-meta"
    assert (tmp_path / "rx-a.sigmf-data").stat().st_size == 256 * 8
    back = read_recording(meta_path)
    assert np.array_equal(back.iq, original.iq) and back.iq.dtype == np.complex64
    for name in (
        "receiver_id", "rx_lat_deg", "rx_lon_deg", "rx_alt_m", "sample_rate_hz",
        "frequency_hz", "datetime", "tx_lat_deg", "tx_lon_deg", "sample_id",
    ):  # fmt: skip
        assert getattr(back, name) == getattr(original, name), name
    assert back.duration_s == pytest.approx(256 / FS_HZ)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_unknown_truth_round_trips_as_none(tmp_path: Path) -> None:
    rec = make_recording(tx_lat_deg=None, tx_lon_deg=None, sample_id=None, datetime=None)
    back = read_recording(write_recording(tmp_path, "x", rec))
    assert (back.tx_lat_deg, back.tx_lon_deg, back.sample_id, back.datetime) == (None,) * 4


def test_metadata_is_plain_standard_json(tmp_path: Path) -> None:
    meta = json.loads(write_recording(tmp_path, "rx-a", make_recording()).read_text())
    g = meta["global"]
    assert g["core:datatype"] == "cf32_le"
    assert g["core:sample_rate"] == FS_HZ
    assert g["core:version"] == "1.0.0"
    assert g["core:geolocation"] == {"type": "Point", "coordinates": [7.69, 45.07, 240.0]}
    assert g["heimdall:receiver_id"] == "rx-a"
    assert {"name": "heimdall", "version": "1.0.0", "optional": True} in g["core:extensions"]
    capture = {"core:sample_start": 0, "core:frequency": F_HZ}
    assert meta["captures"] == [dict(capture, **{"core:datetime": "2024-05-01T12:00:00.000Z"})]
    assert meta["annotations"] == []
    # The data file is interleaved little-endian float32 I, Q.
    raw = np.fromfile(tmp_path / "rx-a.sigmf-data", dtype="<f4")
    assert raw[0] == make_recording().iq[0].real and raw[1] == make_recording().iq[0].imag


def _write_ci16(tmp_path: Path, stem: str, ints: np.ndarray, datatype: str) -> Path:
    """A ci16 recording written by hand, as another tool would."""
    meta_path = write_recording(tmp_path, stem, make_recording())
    meta = json.loads(meta_path.read_text())
    meta["global"]["core:datatype"] = datatype
    meta_path.write_text(json.dumps(meta))
    order = "<" if datatype.endswith("_le") else ">"
    ints.astype(f"{order}i2").tofile(tmp_path / f"{stem}.sigmf-data")
    return meta_path


@pytest.mark.parametrize("datatype", ["ci16_le", "ci16_be"])
def test_ci16_is_scaled_to_unit_full_scale(tmp_path: Path, datatype: str) -> None:
    ints = np.array([16384, -32768, 32767, 0, -16384, 8192], dtype=np.int16)  # I, Q pairs
    back = read_recording(_write_ci16(tmp_path, "c", ints, datatype))
    expected = np.array([0.5 - 1.0j, 32767 / 32768 + 0.0j, -0.5 + 0.25j], dtype=np.complex64)
    assert np.array_equal(back.iq, expected)


def test_cf32_big_endian(tmp_path: Path) -> None:
    rec = make_recording()
    meta_path = write_recording(tmp_path, "b", rec)
    meta = json.loads(meta_path.read_text())
    meta["global"]["core:datatype"] = "cf32_be"
    meta_path.write_text(json.dumps(meta))
    rec.iq.view(np.float32).astype(">f4").tofile(tmp_path / "b.sigmf-data")
    assert np.array_equal(read_recording(meta_path).iq, rec.iq)


def _edit(meta_path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    return meta_path


META_EDITS = {
    "missing datatype": (lambda m: m["global"].pop("core:datatype"), "core:datatype"),
    "unsupported datatype": (
        lambda m: m["global"].update({"core:datatype": "cu8"}),
        "unsupported datatype 'cu8'",
    ),
    "missing sample rate": (lambda m: m["global"].pop("core:sample_rate"), "core:sample_rate"),
    "bad sample rate": (lambda m: m["global"].update({"core:sample_rate": "fast"}), "finite"),
    "no captures": (lambda m: m.update({"captures": []}), "no captures"),
    "missing frequency": (lambda m: m["captures"][0].pop("core:frequency"), "core:frequency"),
    "missing receiver id": (lambda m: m["global"].pop("heimdall:receiver_id"), "receiver id"),
    "missing position": (lambda m: m["global"].pop("core:geolocation"), "core:geolocation"),
    "bad position": (
        lambda m: m["global"].update({"core:geolocation": {"type": "Point", "coordinates": [1]}}),
        "GeoJSON Point",
    ),
    "two channels": (lambda m: m["global"].update({"core:num_channels": 2}), "channels"),
}


@pytest.mark.parametrize("case", list(META_EDITS))
def test_bad_metadata_is_named(tmp_path: Path, case: str) -> None:
    edit, message = META_EDITS[case]
    meta_path = _edit(write_recording(tmp_path, "bad-rec", make_recording()), edit)
    with pytest.raises(InputError, match="bad-rec.sigmf-meta") as info:
        read_recording(meta_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothing\.sigmf-meta: metadata file not found"):
        read_recording(tmp_path / "nothing.sigmf-meta")
    (tmp_path / "broken.sigmf-meta").write_text("{not json")
    with pytest.raises(InputError, match=r"broken\.sigmf-meta: invalid JSON"):
        read_recording(tmp_path / "broken.sigmf-meta")
    (tmp_path / "list.sigmf-meta").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"list\.sigmf-meta: no 'global'"):
        read_recording(tmp_path / "list.sigmf-meta")


def test_bad_data_files_are_named(tmp_path: Path) -> None:
    meta_path = write_recording(tmp_path, "d", make_recording(num_samples=64))
    data_path = tmp_path / "d.sigmf-data"
    with pytest.raises(InputError, match=r"d\.sigmf-data: 64 samples, at least 100 needed"):
        read_recording(meta_path, min_samples=100)
    assert len(read_recording(meta_path, min_samples=64).iq) == 64
    with open(data_path, "ab") as handle:
        handle.write(b"\x00\x00\x00")
    with pytest.raises(InputError, match=r"d\.sigmf-data: 515 bytes is not a whole number"):
        read_recording(meta_path)
    samples = np.zeros(128, dtype="<f4")
    samples[5] = np.nan
    samples.tofile(data_path)
    with pytest.raises(InputError, match=r"d\.sigmf-data: holds non-finite"):
        read_recording(meta_path)
    data_path.unlink()
    with pytest.raises(InputError, match=r"d\.sigmf-meta: data file d\.sigmf-data not found"):
        read_recording(meta_path)


def test_recording_validates_its_fields() -> None:
    with pytest.raises(InputError, match="latitude"):
        make_recording(rx_lat_deg=91.0)
    with pytest.raises(InputError, match="1-D complex"):
        make_recording(iq=np.zeros(4, dtype=np.float32))
    with pytest.raises(InputError, match="both tx_lat_deg and tx_lon_deg"):
        make_recording(tx_lon_deg=None)
    with pytest.raises(InputError, match="plain file name"):
        write_recording(Path("."), "../escape", make_recording())


def test_recording_set_reads_every_receiver(tmp_path: Path) -> None:
    for i, rid in enumerate(("rx-c", "rx-a", "rx-b")):
        write_recording(tmp_path, rid, make_recording(rid, seed=i))
    recordings = read_recording_set(tmp_path, min_samples=16)
    assert [r.receiver_id for r in recordings] == ["rx-a", "rx-b", "rx-c"]
    with pytest.raises(InputError, match="at least 1000 needed"):
        read_recording_set(tmp_path, min_samples=1000)


def test_recording_set_rejects_empty_and_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no \\*.sigmf-meta recordings"):
        read_recording_set(tmp_path)
    with pytest.raises(InputError, match="recordings directory not found"):
        read_recording_set(tmp_path / "absent")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sample_rate_hz": 2 * FS_HZ}, "sample_rate_hz differs"),
        ({"frequency_hz": F_HZ + 12_500.0}, "frequency_hz differs"),
        ({"sample_id": "tx-0002"}, "sample_id differs"),
        ({"tx_lat_deg": 44.0}, "tx_lat_deg differs"),
    ],
)
def test_recording_set_mismatch_names_both_files(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    write_recording(tmp_path, "first", make_recording("rx-a"))
    write_recording(tmp_path, "second", make_recording("rx-b", **overrides))
    with pytest.raises(InputError, match=message) as info:
        read_recording_set(tmp_path)
    assert "first.sigmf-meta" in str(info.value) and "second.sigmf-meta" in str(info.value)


def test_recording_set_rejects_duplicate_receivers(tmp_path: Path) -> None:
    write_recording(tmp_path, "one", make_recording("rx-a"))
    write_recording(tmp_path, "two", make_recording("rx-a", seed=1))
    with pytest.raises(InputError, match=r"two\.sigmf-meta and one\.sigmf-meta.*'rx-a'"):
        read_recording_set(tmp_path)


def test_enormous_files_are_refused_unread(tmp_path: Path) -> None:
    from heimdall.data.sigmf import MAX_META_BYTES
    from heimdall.features import MAX_IQ_SAMPLES

    meta_path = write_recording(tmp_path, "big", make_recording())
    # A sparse file: 8 bytes per cf32 sample, one sample past the limit, no disk used.
    with open(tmp_path / "big.sigmf-data", "r+b") as handle:
        handle.truncate(8 * (MAX_IQ_SAMPLES + 1))
    with pytest.raises(InputError, match=rf"big\.sigmf-data: {MAX_IQ_SAMPLES + 1} samples, more than"):
        read_recording(meta_path)
    with open(meta_path, "r+b") as handle:
        handle.truncate(MAX_META_BYTES + 1)
    with pytest.raises(InputError, match=r"big\.sigmf-meta: \d+ bytes of metadata"):
        read_recording(meta_path)
