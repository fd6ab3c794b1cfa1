"""Property tests: bad input anywhere ends in one HeimdallError with a message, never a
crash and never a partial file.

Each target is fed generated input (NaN/Inf, empty, wrong types, unknown receivers,
duplicate ids, truncated data, random documents) and must either succeed with valid output
or raise a `HeimdallError` subclass whose message is not empty.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heimdall.data.importers import read_measurements_lenient
from heimdall.data.measurement_files import read_measurements
from heimdall.data.sigmf import read_recording
from heimdall.errors import HeimdallError
from heimdall.network import ReceiverNetwork, default_network
from heimdall.pipelines import Context, import_measurements

LIMITS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

RECEIVERS = [r.receiver_id for r in default_network().receivers]
odd_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from(["", "nan", "inf", "-inf", "NaN", "1e400", "abc", "  ", "1,5", "0x10", "None"]),
)
plausible = st.one_of(st.floats(-200, 200), odd_numbers)


def _fails_cleanly(call: Callable[[], Any]) -> Any:
    """`call()`'s result, or None when it raised a HeimdallError with a message."""
    try:
        return call()
    except HeimdallError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        assert "\n" not in str(exc).strip() or len(str(exc)) < 2000
        return None


# --- measurement import ---------------------------------------------------------------------

columns = st.lists(
    st.sampled_from(["sample_id", "receiver_id", "rx_lat", "rx_lon", "rx_alt_m", "rss_dbm", "snr_db",
                     "frequency_hz", "tx_lat", "tx_lon", "timestamp", "extra"]),
    min_size=0, max_size=12, unique=True,
)


@st.composite
def measurement_files(draw: st.DrawFn) -> str:
    header = draw(st.one_of(st.just(["sample_id", "receiver_id", "rx_lat", "rx_lon", "rss_dbm", "tx_lat", "tx_lon"]), columns))
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        row = []
        for column in header:
            if column == "sample_id":
                row.append(draw(st.one_of(st.integers(0, 3), st.text(max_size=4), st.just(""))))  # duplicates likely
            elif column == "receiver_id":
                row.append(draw(st.one_of(st.sampled_from([*RECEIVERS, "unknown-rx", ""]), st.text(max_size=6))))
            elif column == "timestamp":
                row.append(draw(st.sampled_from(["2024-01-01T00:00:00Z", "yesterday", "", "2024-13-45"])))
            else:
                row.append(draw(plausible))
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def test_measurement_import_fails_cleanly(ctx: Context, tmp_path: Path) -> None:
    published: list[str] = []

    @LIMITS
    @given(text=measurement_files())
    def check(text: str) -> None:
        path = tmp_path / "m.csv"
        path.write_text(text)
        table = _fails_cleanly(lambda: read_measurements(path, require_truth=True))
        if table is not None:
            assert len(table.sample_id) > 0
        imported = _fails_cleanly(lambda: read_measurements_lenient(path))
        if imported is not None:
            assert imported.report.rows_read >= 1
        name = f"m-{uuid.uuid4().hex[:8]}"
        if _fails_cleanly(lambda: import_measurements(ctx, path, name)) is not None:
            published.append(name)
        # A refused import leaves neither a dataset nor staging files behind.
        assert sorted(ctx.store.list("datasets")) == sorted(f"datasets/{n}" for n in published) or all(
            key.split("/")[1] in published for key in ctx.store.list("datasets")
        )
        assert not list(ctx.staging_dir.glob("*")) if ctx.staging_dir.exists() else True

    check()


# --- SigMF ----------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8))


@st.composite
def sigmf_documents(draw: st.DrawFn) -> tuple[Any, bytes]:
    global_ = {
        "core:datatype": draw(st.one_of(st.sampled_from(["cf32_le", "cf32_be", "ci16_le", "ci16_be", "ri8", "cf64_le"]), json_scalars)),
        "core:sample_rate": draw(st.one_of(st.floats(-1e9, 1e9), json_scalars)),
        "core:version": "1.0.0",
        "heimdall:receiver_id": draw(st.one_of(st.sampled_from(RECEIVERS), json_scalars)),
        "core:geolocation": draw(st.one_of(
            st.fixed_dictionaries({"type": st.just("Point"), "coordinates": st.lists(plausible, max_size=4)}),
            json_scalars,
        )),
    }
    if draw(st.booleans()):
        global_["core:num_channels"] = draw(json_scalars)
    dropped = draw(st.lists(st.sampled_from(sorted(global_)), max_size=2, unique=True))
    for key in dropped:
        global_.pop(key)
    captures = draw(st.one_of(
        st.lists(st.fixed_dictionaries({"core:sample_start": st.just(0), "core:frequency": st.one_of(st.floats(), json_scalars)}), max_size=2),
        json_scalars,
    ))
    document = draw(st.one_of(
        st.just({"global": global_, "captures": captures, "annotations": []}),
        json_scalars,
        st.lists(json_scalars, max_size=3),
    ))
    values = draw(st.lists(st.one_of(st.floats(width=32), st.just(math.nan), st.just(math.inf)), max_size=64))
    data = np.asarray(values, dtype="<f4").tobytes()
    data = data[: draw(st.integers(0, len(data)))]  # truncated mid-sample sometimes
    return document, data


def test_sigmf_import_fails_cleanly(tmp_path: Path) -> None:
    @LIMITS
    @given(case=sigmf_documents(), raw=st.booleans())
    def check(case: tuple[Any, bytes], raw: bool) -> None:
        document, data = case
        meta = tmp_path / "r.sigmf-meta"
        meta.write_text("{not json" if raw else json.dumps(document, allow_nan=True))
        (tmp_path / "r.sigmf-data").write_bytes(data)
        recording = _fails_cleanly(lambda: read_recording(meta))
        if recording is not None:
            assert recording.iq.dtype == np.complex64 and recording.iq.size >= 1
            assert np.isfinite(recording.iq).all()
            assert recording.sample_rate_hz > 0 and math.isfinite(recording.frequency_hz)

    check()


# --- receiver network files -----------------------------------------------------------------

receiver_dicts = st.fixed_dictionaries(
    {"receiver_id": st.one_of(st.sampled_from(["a", "b", "a"]), json_scalars)},
    optional={"lat_deg": plausible, "lon_deg": plausible, "alt_m": plausible, "name": json_scalars,
              "antenna_gain_dbi": plausible, "noise_figure_db": plausible},
)
network_documents = st.one_of(
    json_scalars,
    st.fixed_dictionaries({"receivers": st.one_of(st.lists(receiver_dicts, max_size=5), json_scalars)},
                          optional={"frequency_hz": plausible, "bandwidth_hz": plausible, "name": json_scalars}),
    st.dictionaries(st.text(max_size=6), json_scalars, max_size=4),
)


def test_network_files_fail_cleanly(tmp_path: Path) -> None:
    @LIMITS
    @given(document=network_documents, suffix=st.sampled_from([".yaml", ".json", ".yml", ".txt"]))
    def check(document: Any, suffix: str) -> None:
        path = tmp_path / f"net{suffix}"
        if suffix == ".json":
            path.write_text(json.dumps(document, allow_nan=True))
        else:
            path.write_text(yaml.safe_dump(document))
        network = _fails_cleanly(lambda: ReceiverNetwork.load(path))
        if network is not None:
            ids = [r.receiver_id for r in network.receivers]
            assert ids and len(set(ids)) == len(ids)
            assert all(math.isfinite(r.lat_deg) and -90 <= r.lat_deg <= 90 for r in network.receivers)
            assert math.isfinite(network.frequency_hz) and network.frequency_hz > 0

    check()
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage: [")
    assert _fails_cleanly(lambda: ReceiverNetwork.load(tmp_path / "bin.yaml")) is None


# --- IQ arrays into features ----------------------------------------------------------------

def _iq_cases() -> list[tuple[str, Any]]:
    good = (np.random.default_rng(0).standard_normal((2, 17_920)) * (1 + 1j)).astype(np.complex64)
    nan = good.copy()
    nan[0, 10] = np.nan
    inf = good.copy()
    inf[1, 5] = np.inf
    return [
        ("nan", nan),
        ("inf", inf),
        ("empty", np.zeros((2, 0), dtype=np.complex64)),
        ("scalar", np.complex64(1.0)),
        ("int16", np.zeros((2, 4096), dtype=np.int16)),
        ("float32", np.zeros((2, 4096), dtype=np.float32)),
        ("strings", np.array([["a"] * 10])),
        ("objects", np.array([[None] * 10], dtype=object)),
        ("list", [[1 + 1j] * 10]),
        # 2**40 samples, never allocated (a broadcast view): refused before any work.
        ("enormous", np.broadcast_to(np.complex64(1.0), (1024, 2**30))),
    ]


@pytest.mark.parametrize("case", _iq_cases(), ids=lambda c: c[0])
def test_iq_features_refuse_bad_arrays(case: tuple[str, Any]) -> None:
    from heimdall.features import iq_features, measure_iq

    _label, iq = case
    for call in (lambda: iq_features(iq, 48_000.0), lambda: measure_iq(iq, 48_000.0)):
        with pytest.raises(HeimdallError) as raised:
            call()
        assert str(raised.value).strip()


def test_iq_features_accept_valid_arrays() -> None:
    from heimdall.features import iq_features

    iq = (np.random.default_rng(1).standard_normal((3, 17_920)) * (1 + 1j)).astype(np.complex64)
    mel_db, measured = iq_features(iq, 48_000.0)
    assert mel_db.shape[:1] == (3,) and np.isfinite(mel_db).all()
    assert np.isfinite(measured.channel_power_dbm).all()
