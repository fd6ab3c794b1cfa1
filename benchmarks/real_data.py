"""Repeated K-fold cross-validation of Heimdall and classical methods on measured data.

The development protocol of real data (docs/REAL_DATA.md, "How to measure"). For each mode
(random folds; spatially disjoint grid folds; time-ordered folds), each seed and each fold:

- `model`: Heimdall exactly as a user trains it, through the CLI in a fresh temporary
  HEIMDALL_HOME: the fold's training rows as a long CSV -> `heimdall import-measurements`
  (default flags) -> `heimdall train --dataset fold --json` (no flags) -> `heimdall export`
  -> `heimdall localize --measurements TEST.csv --json` on the test rows without truth;
- `model_direct`: the default model for measured data without the CLI round trip (fast):
  `fit_radio_map` on all of the fold's training rows (what `export` deploys after its refit;
  the CLI path chooses hyperparameters on the import's train+val share first), predicted by
  the torch module with the runtime's re-estimation of drifted receiver offsets;
  where its fit kept smoothing along tracks (`models.tracks`), the test rows are smoothed as
  one batch, as `localize` does with a file of timestamped transmissions;
- `model_single`: `model_direct`'s answers one by one, never smoothed along tracks (the same
  fit, no second one): the paired comparison for the smoothing;
- `knn`: kNN fingerprinting, k chosen on a random 15% of the training rows, then refitted
  on all of them;
- `ml_offsets`: log-distance maximum likelihood with per-receiver offsets, fitted on the
  training rows;
- `centroid`: the RSS-weighted centroid (nothing to fit).

With `--test-drift-db D`, every receiver's readings in a fold's test rows are shifted by an
offset drawn once per (seed, fold) and receiver from N(0, D^2) (dB): the calibration drift of
a later season, seen by every method alike (the training rows are left as measured). Which
receivers heard is left as it was. Each seed draws its own drift, time folds included.

With `--session-drift-db D`, the campaign becomes several measurement sessions: the time
folds' blocks, each moved by its index in days, every receiver drifting by its own offset
from N(0, D^2) dB in each session, training and test rows alike (drawn once per seed): a
campaign measured over several days, tested within them (random, grid folds) or on a day
held out (time folds). `--session-layout interleaved` draws each transmission's day at
random instead, so every day retraces the places of the others (and the time folds hold
out one day each).

Errors are great-circle metres between the prediction and the truth, scored here, outside
the product. Reported per fold and as mean and standard deviation over folds x seeds:
median and p90 error, 1- and 2-sigma coverage of the model's ellipses and the coverage of
its 95% ellipse, training wall time, and the paired difference "model median - best
classical median" (best: the classical method with the lowest mean median in that mode).

    PYTHONPATH=src .venv/bin/python benchmarks/real_data.py FILE [--format long|powder-json]
        [--folds 5] [--seeds 0,1,2] [--modes random,grid,time]
        [--methods model,knn,ml_offsets,centroid] [--fold-limit N] [--only-folds 2,3] [--test-drift-db D]
        [--session-drift-db D] [--session-layout blocks|interleaved] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heimdall.data.importers import ImportedMeasurements, read_measurements_lenient
from heimdall.data.layout import SampleArrays
from heimdall.data.measured import measured_samples, network_from_measurements
from heimdall.data.powder import read_powder_json
from heimdall.errors import HeimdallError, InputError
from heimdall.evaluation.baselines import weighted_centroid
from heimdall.evaluation.crossval import MODES, make_folds, score
from heimdall.evaluation.knn import choose_k, fit_knn
from heimdall.evaluation.ml_offsets import fit_ml_offsets
from heimdall.geo import ReferencePoint, local_to_ground

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_data_report.py beside this script

from real_data_report import markdown, summarise  # noqa: E402

CLASSICAL = ("knn", "ml_offsets", "centroid")
METHODS = ("model", "model_direct", "model_single", *CLASSICAL)
MODELS = ("model", "model_direct", "model_single")
#: Share of a fold's training rows on which kNN's k is chosen.
KNN_VALIDATION_SHARE = 0.15

log = logging.getLogger("real_data")


# --- the campaign ------------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    """An imported measurement file as samples (station indices over the whole file)."""

    imported: ImportedMeasurements
    samples: SampleArrays
    names: tuple[str, ...]
    timestamps: np.ndarray  # [N] datetime64[s], NaT when unknown
    reference: ReferencePoint
    num_stations: int
    station_ids: tuple[str, ...] = ()  # receiver id of each station index

    @property
    def has_time(self) -> bool:
        return not np.isnat(self.timestamps).any()


def load_campaign(path: Path, file_format: str, receivers: Path | None = None) -> Campaign:
    """Read a long CSV/Parquet or POWDER JSON file with the importers of the product (a wide
    fingerprint table with `receivers`, their positions, as `import-measurements --receivers`)."""
    if receivers is not None and file_format != "long":
        raise InputError("--receivers reads a wide CSV/Parquet table, not a POWDER JSON file")
    if file_format == "powder-json":
        imported = read_powder_json(path)
    elif file_format == "long":
        imported = read_measurements_lenient(path, receivers)
    else:
        raise InputError(f"unknown format {file_format!r}; expected long or powder-json")
    # The carrier only matters to simulation; the classical methods index stations by id.
    network = network_from_measurements(imported.table, "campaign", imported.frequency_hz or 1e9)
    reference = network.reference_point()
    measured = measured_samples(imported.table, imported.timestamps, network, reference)
    return Campaign(imported, measured.samples, measured.sample_names, measured.timestamps, reference, len(network.ids),
                    tuple(network.ids))


def drifted(campaign: Campaign, test_index: np.ndarray, drift_db: float, rng: np.random.Generator) -> Campaign:
    """`campaign` with the readings of the samples `test_index` shifted per receiver by offsets
    drawn from N(0, drift_db^2) dB, in the samples and in the table the CLI files are written from."""
    offset_db = rng.normal(0.0, drift_db, campaign.num_stations)
    shift = np.zeros((len(campaign.samples), campaign.num_stations))
    shift[test_index] = offset_db
    return _shifted(campaign, shift, np.zeros(len(campaign.samples), dtype=np.int64))


def in_sessions(
    campaign: Campaign, n_folds: int, drift_db: float, rng: np.random.Generator, interleaved: bool = False
) -> Campaign:
    """`campaign` as `n_folds` measurement sessions a day apart: the time folds' blocks (or,
    `interleaved`, a day drawn at random for each transmission), each moved by its index in
    days, every receiver's readings in block b shifted by an offset drawn once per (block,
    receiver) from N(0, drift_db^2) dB, training and test rows alike (a campaign measured
    over several days whose receivers drift between them)."""
    if interleaved:
        block = rng.integers(0, n_folds, len(campaign.samples))
    else:
        block = make_folds("time", n_folds, 0, campaign.samples.tx_position_m, campaign.timestamps)
    offset_db = rng.normal(0.0, drift_db, (n_folds, campaign.num_stations))
    return _shifted(campaign, offset_db[block], block)


def _shifted(campaign: Campaign, shift_db: np.ndarray, days: np.ndarray) -> Campaign:
    """Readings of sample i and station s shifted by `shift_db[i, s]` dB, and its time moved by
    `days[i]` days, in the samples and in the table the CLI files are written from."""
    samples = campaign.samples
    known = samples.heard & (samples.rx_id >= 0) & (samples.rx_id < campaign.num_stations)
    rows, cols = np.nonzero(known)
    rss = samples.rss_dbm.copy()
    rss[rows, cols] += shift_db[rows, samples.rx_id[rows, cols]]
    table = campaign.imported.table
    station_of = {name: i for i, name in enumerate(campaign.station_ids)}
    station = np.array([station_of.get(str(r), -1) for r in table.receiver_id])
    sample_of = {name: i for i, name in enumerate(campaign.names)}
    row_sample = np.array([sample_of.get(str(s), -1) for s in table.sample_id])
    ok = (station >= 0) & (row_sample >= 0)
    table_rss = table.rss_dbm.copy()
    table_rss[ok] += shift_db[row_sample[ok], station[ok]]  # NaN (heard nothing) stays NaN
    step = np.timedelta64(86400, "s")
    row_times = campaign.imported.timestamps.copy()
    row_times[row_sample >= 0] += days[row_sample[row_sample >= 0]] * step
    imported = replace(campaign.imported, table=replace(table, rss_dbm=table_rss), timestamps=row_times)
    times = None if samples.timestamp_s is None else samples.timestamp_s + days * 86400.0
    return replace(campaign, imported=imported, samples=replace(samples, rss_dbm=rss, timestamp_s=times),
                   timestamps=campaign.timestamps + days * step)


def classical_fold(
    campaign: Campaign, train_index: np.ndarray, test_index: np.ndarray, methods: tuple[str, ...], seed: int
) -> dict[str, dict[str, Any]]:
    """Fit the classical `methods` on the training samples; predictions (lat, lon) and fit time (s,
    choosing k included; predicting excluded)."""
    train, test = campaign.samples.select(train_index), campaign.samples.select(test_index)
    results: dict[str, dict[str, Any]] = {}
    for method in methods:
        start = time.perf_counter()
        extra: dict[str, Any] = {}
        if method == "centroid":
            train_s = 0.0  # nothing to fit
            estimate_m = weighted_centroid(test.rx_position_m, test.rss_dbm, test.heard)
        elif method == "knn":
            rng = np.random.default_rng(seed)
            is_val = np.zeros(len(train), dtype=bool)
            is_val[rng.permutation(len(train))[: max(1, int(round(KNN_VALIDATION_SHARE * len(train))))]] = True
            k = choose_k(fit_knn(train.select(~is_val), campaign.num_stations), train.select(is_val))
            knn = fit_knn(train, campaign.num_stations)
            train_s = time.perf_counter() - start
            estimate_m = knn.predict(test, k)
            extra["k"] = k
        elif method == "ml_offsets":
            model = fit_ml_offsets(train, campaign.num_stations)
            train_s = time.perf_counter() - start
            estimate_m = model.predict(test)
            extra["path_loss_exponent"] = round(model.path_loss_exponent, 3)
        else:
            raise InputError(f"unknown classical method {method!r}")
        lat, lon = local_to_ground(estimate_m[:, 0], estimate_m[:, 1], campaign.reference)
        results[method] = {"lat": np.asarray(lat), "lon": np.asarray(lon), "train_s": train_s, **extra}
    return results


# --- the model, through the CLI ------------------------------------------------------------


def write_long_csv(campaign: Campaign, sample_names: set[str], path: Path, with_truth: bool) -> int:
    """The rows of `sample_names` in the long format (timestamps when known); rows written."""
    table, imported = campaign.imported.table, campaign.imported
    rows = np.isin(table.sample_id, list(sample_names))
    frame = pd.DataFrame({
        "sample_id": table.sample_id[rows],
        "receiver_id": table.receiver_id[rows],
        "rx_lat": table.rx_lat_deg[rows],
        "rx_lon": table.rx_lon_deg[rows],
        "rx_alt_m": table.rx_alt_m[rows],
        "rss_dbm": table.rss_dbm[rows],
    })
    times = imported.timestamps[rows]
    if not np.isnat(times).all():
        frame.insert(1, "timestamp", pd.Series(times).dt.strftime("%Y-%m-%dT%H:%M:%S").fillna(""))
    if np.isfinite(table.snr_db[rows]).any():
        frame["snr_db"] = table.snr_db[rows]
    if imported.frequency_hz:
        frame["frequency_hz"] = imported.frequency_hz
    if with_truth:
        frame["tx_lat"] = table.tx_lat_deg[rows]
        frame["tx_lon"] = table.tx_lon_deg[rows]
    frame.to_csv(path, index=False, na_rep="", float_format="%.9g")
    return len(frame)


def _heimdall(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run the `heimdall` CLI beside this interpreter; its --json output."""
    executable = Path(sys.executable).with_name("heimdall")
    command = [str(executable) if executable.exists() else "heimdall", *args]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def model_fold(campaign: Campaign, train_index: np.ndarray, test_index: np.ndarray) -> dict[str, Any]:
    """Import, train (defaults), export and localize through the CLI in a fresh home."""
    train_names = {campaign.names[i] for i in train_index}
    test_names = [campaign.names[i] for i in test_index]
    with tempfile.TemporaryDirectory(prefix="heimdall-real-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMDALL_")}
        env["HEIMDALL_HOME"] = str(work / "home")
        write_long_csv(campaign, train_names, work / "train.csv", with_truth=True)
        write_long_csv(campaign, set(test_names), work / "test.csv", with_truth=False)
        _heimdall(["import-measurements", str(work / "train.csv"), "--name", "fold", "--json"], env, work)
        start = time.perf_counter()
        trained = _heimdall(["train", "--dataset", "fold", "--json"], env, work)
        train_s = time.perf_counter() - start
        exported = _heimdall(["export", "--checkpoint", str(trained["best_checkpoint"]), "--json"], env, work)
        located = _heimdall(
            ["localize", "--model", str(exported["bundle"]), "--measurements", str(work / "test.csv"), "--json"], env, work
        )
    by_id = {str(p["sample_id"]): p for p in located["predictions"]}
    records = [by_id.get(name, {}) for name in test_names]

    def column(key: str) -> np.ndarray:
        return np.array([r.get(key, np.nan) for r in records], dtype=np.float64)

    return {
        "lat": column("lat"), "lon": column("lon"), "train_s": train_s, "epochs_run": trained.get("epochs_run"),
        "ellipse": {**{k: column(k) for k in ("sigma_major_m", "sigma_minor_m", "orientation_deg")},
                    "ellipse95_sigmas": column("ellipse95_major_m") / column("sigma_major_m")},
    }


def model_direct_fold(campaign: Campaign, train_index: np.ndarray, test_index: np.ndarray) -> dict[str, Any]:
    """The radio map fitted in-process on the training rows; two passes, the widening with
    time and the smoothing along tracks as `Localizer.predict` runs them (the answers one by
    one under "single")."""
    import torch

    from heimdall.evaluation.calibration import seconds_to_nearest, time_widening_factor
    from heimdall.models.drift import corrected_rss
    from heimdall.models.tracks import TrackModel, smooth_tracks
    from heimdall.data.sessions import session_index, shift_readings
    from heimdall.training.radio_map_fit import fit_radio_map

    train, test = campaign.samples.select(train_index), campaign.samples.select(test_index)
    start = time.perf_counter()
    fit = fit_radio_map(train, campaign.num_stations, seed=0)
    net, hyper = fit.net, fit.hyperparameters
    train_s = time.perf_counter() - start

    def forward(rss: np.ndarray) -> tuple[np.ndarray, ...]:
        parts = []
        with torch.no_grad():
            for i in range(0, len(test), 16):
                sl = slice(i, i + 16)
                parts.append(net(
                    torch.from_numpy(test.rx_position_m[sl].astype(np.float32)), torch.from_numpy(test.rx_id[sl]),
                    torch.from_numpy(rss[sl].astype(np.float32)), torch.from_numpy(test.heard[sl]),
                    torch.from_numpy(test.present[sl]),
                ))
        return tuple(torch.cat([p[k] for p in parts]).double().numpy() for k in range(4))

    if hyper.session_offsets_db and test.timestamp_s is not None:
        session = session_index(test.timestamp_s, np.asarray(hyper.session_starts_s), train.timestamp_s)
        test = shift_readings(test, session, np.asarray(hyper.session_offsets_db))
    rss = np.where(test.heard, test.rss_dbm, 0.0)
    _, _, residual, _ = forward(rss)
    position, covariance, _, log_score = forward(corrected_rss(test.rx_id, test.heard, rss, residual,
                                                               campaign.num_stations))
    single_widening = None
    if test.timestamp_s is not None and train.timestamp_s is not None:
        gap_s = seconds_to_nearest(test.timestamp_s, train.timestamp_s)
        single_widening = time_widening_factor(gap_s, hyper.time_widening, hyper.time_scale_s)
        covariance = covariance * single_widening[:, None, None]
    single = _prediction(campaign, position, covariance, train_s, hyper.ellipse95_sigmas)
    track = TrackModel.from_dict(hyper.track)
    if track is not None and test.timestamp_s is not None:
        widening = None
        if track.time_widening > 0 and train.timestamp_s is not None:
            gap_s = seconds_to_nearest(test.timestamp_s, train.timestamp_s)
            widening = time_widening_factor(gap_s, track.time_widening, track.time_scale_s)
        position, covariance, _ = smooth_tracks(position, covariance, test.timestamp_s, track, widening, log_score,
                                                single_widening)
    direct = _prediction(campaign, position, covariance, train_s, hyper.ellipse95_sigmas)
    direct["single"] = single
    return direct


def _prediction(
    campaign: Campaign, position_m: np.ndarray, covariance_m2: np.ndarray, train_s: float, region_sigmas: float
) -> dict[str, Any]:
    from heimdall.evaluation.metrics import covariance_to_ellipse

    lat, lon = local_to_ground(position_m[:, 0], position_m[:, 1], campaign.reference)
    major, minor, orientation = covariance_to_ellipse(covariance_m2)
    return {"lat": np.asarray(lat), "lon": np.asarray(lon), "train_s": train_s,
            "ellipse": {"sigma_major_m": major, "sigma_minor_m": minor, "orientation_deg": orientation,
                        "ellipse95_sigmas": np.full(len(major), region_sigmas)}}


# --- the protocol ---------------------------------------------------------------------------


def run(
    campaign: Campaign, modes: tuple[str, ...], n_folds: int, seeds: tuple[int, ...], methods: tuple[str, ...],
    fold_limit: int | None = None, test_drift_db: float = 0.0, session_drift_db: float = 0.0,
    interleaved: bool = False, only_folds: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Every (mode, seed, fold): per-method scores; then the summary per mode and method.

    `test_drift_db` > 0 shifts each fold's test readings by per-receiver offsets (`drifted`);
    `session_drift_db` > 0 makes the time blocks sessions with their own offsets, drawn per
    seed (`in_sessions`; `interleaved`: days drawn at random, a day held out per time fold).
    `only_folds`: run those folds alone (a long campaign's folds split between runs; the folds
    are the same).
    """
    truth_lat, truth_lon = campaign.samples.tx_lat_deg, campaign.samples.tx_lon_deg
    folds: list[dict[str, Any]] = []
    trained: dict[tuple[Any, ...], dict[str, Any]] = {}
    for mode in modes:
        if mode == "time" and not campaign.has_time:
            log.warning("no timestamps: time folds skipped")
            continue
        for seed in seeds:
            seed_campaign = campaign
            if session_drift_db > 0:
                seed_campaign = in_sessions(campaign, n_folds, session_drift_db, np.random.default_rng([seed, 11]),
                                            interleaved)
            fold_of = make_folds(mode, n_folds, seed, campaign.samples.tx_position_m, campaign.timestamps)
            if interleaved and mode == "time" and session_drift_db > 0:
                day_s = seed_campaign.samples.timestamp_s - campaign.samples.timestamp_s
                fold_of = np.round(day_s / 86400.0).astype(np.int64)
            for fold in range(n_folds if fold_limit is None else min(fold_limit, n_folds)):
                if only_folds is not None and fold not in only_folds:
                    continue
                test_index, train_index = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
                # Time folds do not change with the seed: the model is trained once per fold,
                # unless each seed draws its own drift of the test rows.
                drawn = test_drift_db > 0 or session_drift_db > 0
                key = (mode, fold) if mode == "time" and not drawn else (mode, seed, fold)
                fold_campaign = seed_campaign
                if test_drift_db > 0:
                    drift_rng = np.random.default_rng([seed, fold, 7])
                    fold_campaign = drifted(seed_campaign, test_index, test_drift_db, drift_rng)
                classical = tuple(m for m in methods if m not in MODELS)
                predictions = classical_fold(fold_campaign, train_index, test_index, classical, seed)
                if "model" in methods:
                    if key not in trained:
                        trained[key] = model_fold(fold_campaign, train_index, test_index)
                    predictions["model"] = trained[key]
                if "model_direct" in methods or "model_single" in methods:
                    direct = model_direct_fold(fold_campaign, train_index, test_index)
                    if "model_direct" in methods:
                        predictions["model_direct"] = direct
                    if "model_single" in methods:
                        predictions["model_single"] = direct["single"]
                row: dict[str, Any] = {"mode": mode, "seed": seed, "fold": fold, "n_train": len(train_index),
                                       "n_test": len(test_index), "test_drift_db": test_drift_db,
                                       "session_drift_db": session_drift_db, "methods": {}}
                for method, p in predictions.items():
                    scores = score(truth_lat[test_index], truth_lon[test_index], p["lat"], p["lon"], p.get("ellipse"))
                    scores["train_s"] = p["train_s"]
                    scores.update({k: v for k, v in p.items() if k in ("k", "path_loss_exponent", "epochs_run")})
                    row["methods"][method] = scores
                folds.append(row)
                log.info("%s seed %d fold %d: %s", mode, seed, fold,
                         ", ".join(f"{m} {s['median_m']:.0f} m" for m, s in row["methods"].items()))
    return {"folds": folds, "summary": summarise(folds)}


def _csv(text: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if allowed is not None and (bad := [v for v in values if v not in allowed]):
        raise InputError(f"unknown value(s) {', '.join(bad)}; expected some of {', '.join(allowed)}")
    if not values:
        raise InputError("empty list")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="measurement file: long CSV/Parquet or POWDER JSON")
    parser.add_argument("--format", dest="file_format", default="long", choices=("long", "powder-json"))
    parser.add_argument("--receivers", type=Path, default=None,
                        help="receivers' positions: the file is then a wide table, one dBm column per receiver")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--fold-limit", type=int, default=None, help="run only the first N folds of each seed")
    parser.add_argument("--only-folds", default=None, help="run only these folds of each seed (comma-separated, from 0)")
    parser.add_argument("--test-drift-db", type=float, default=0.0,
                        help="shift each receiver's test readings by N(0, D^2) dB per fold (a season's drift)")
    parser.add_argument("--session-drift-db", type=float, default=0.0,
                        help="make the time blocks sessions a day apart, each receiver drifting N(0, D^2) dB per session")
    parser.add_argument("--session-layout", default="blocks", choices=("blocks", "interleaved"),
                        help="sessions as the time blocks, or a day drawn at random per transmission")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write the full result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        seeds = tuple(int(s) for s in _csv(args.seeds))
        for flag, value in (("--test-drift-db", args.test_drift_db), ("--session-drift-db", args.session_drift_db)):
            if not np.isfinite(value) or value < 0:
                raise InputError(f"{flag} must be a finite number >= 0, got {value}")
        only_folds = None if args.only_folds is None else tuple(int(f) for f in _csv(args.only_folds))
        if only_folds is not None and not all(0 <= f < args.folds for f in only_folds):
            raise InputError(f"--only-folds must name folds from 0 to {args.folds - 1}, got {args.only_folds}")
        campaign = load_campaign(args.file, args.file_format, args.receivers)
        result = run(campaign, _csv(args.modes, MODES), args.folds, seeds, _csv(args.methods, METHODS), args.fold_limit,
                     args.test_drift_db, args.session_drift_db, args.session_layout == "interleaved", only_folds)
    except (HeimdallError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["config"] = {"file": str(args.file), "format": args.file_format, "folds": args.folds, "seeds": list(seeds),
                        "receivers": None if args.receivers is None else str(args.receivers),
                        "samples": len(campaign.samples), "test_drift_db": args.test_drift_db,
                        "session_drift_db": args.session_drift_db, "session_layout": args.session_layout}
    print(markdown(result))
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
