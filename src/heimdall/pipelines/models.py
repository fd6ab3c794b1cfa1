"""Model jobs: export a checkpoint, evaluate and run a model."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.data.align import align_samples
from heimdall.data.measurement_files import read_measurements
from heimdall.data.shards import DatasetReader
from heimdall.errors import InputError, NotFoundError
from heimdall.evaluation.evaluate import Evaluation, PhysicsModel, evaluate_predictions
from heimdall.export.geojson import prediction_records, predictions_geojson
from heimdall.export.localizer import Localizer
from heimdall.models.localization_net import BASE_INPUTS
from heimdall.models.radio_map import RADIO_MAP_OUTPUTS
from heimdall.pipelines.context import Context
from heimdall.requests import EvaluateRequest, TrainRequest, check_bounds

log = logging.getLogger(__name__)

__all__ = [
    "resolve_model", "evaluate", "evaluate_localizer", "bundle_config", "training_settings", "radio_map_memory",
    "localize", "compare",
]


def resolve_model(ctx: Context, model: str, variant: str = "float") -> tuple[Localizer, Path | None]:
    """A bundle directory, registry reference or checkpoint -> Localizer (+ temp dir to remove).

    A checkpoint is exported to a temporary bundle first: predictions always come from the
    ONNX graph users deploy, never from the training code. `variant` "int8" loads a
    bundle's quantised graph (checkpoints have none).
    """
    if model.startswith("models:/"):
        return Localizer.from_registry(model, ctx.settings, variant=variant), None
    path = Path(model)
    if path.is_dir():
        return Localizer.from_bundle(path, variant=variant), None
    if path.is_file() and path.suffix == ".ckpt":
        if variant != "float":
            raise InputError(f"a checkpoint has no {variant} variant; export it with --quantize {variant} first")
        from heimdall.export.publish import stage_bundle
        from heimdall.training.checkpoints import load_checkpoint

        net, meta = load_checkpoint(path)
        reader = DatasetReader(ctx.store, meta["dataset"])
        draft = stage_bundle(net, reader.load("val"), ctx.staging_dir)
        config = bundle_config(meta, reader, name=path.stem, version=0)
        if meta.get("model_kind") == "radio_map":
            # As `export` stores them: without, the answers would not widen with the time since training.
            config.update(radio_map_memory(meta, reader))
        return Localizer(draft.directory, reference=str(path), config=config), draft.directory
    raise NotFoundError(f"model {model!r} is neither a bundle directory, a checkpoint nor models:/ reference")


def bundle_config(meta: dict[str, Any], reader: DatasetReader, name: str, version: int) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "dataset": meta["dataset"],
        "dataset_kind": reader.manifest.kind,
        "network": reader.network.to_dict(),
        "reference_point": reader.manifest.reference_point,
        "station_ids": reader.manifest.station_ids,
        "scenario": reader.manifest.scenario,
        "effective_sigma_db": reader.manifest.effective_sigma_db,
        "model": meta["model_config"],
        "inputs": list(BASE_INPUTS) + (["spectrogram"] if meta["model_config"].get("spectrogram_encoder") else []),
        "features": {"inputs": "rx_position_m, rx_id, rss_dbm, heard, present (metres, dBm)"},
        "mlflow_run_id": meta.get("mlflow_run_id"),
        "job_id": meta.get("job_id"),
        "checkpoint": meta.get("checkpoint_path"),
        # A radio map scores every grid point: run it in small batches (memory ~ batch x grid x receivers).
        **({"max_batch": 16, "fitted_on": meta.get("fitted_on"), "hyperparameters": meta.get("hyperparameters"),
            "cross_validation": meta.get("cross_validation"),
            "outputs": list(RADIO_MAP_OUTPUTS)}
           if meta.get("model_kind") == "radio_map" else {}),
    }


def radio_map_memory(meta: dict[str, Any], reader: DatasetReader,
                     splits: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What a radio map's bundle keeps of the transmissions it was fitted on (`splits`, by
    default the checkpoint's `fitted_on`): `one_receiver_places`, per receiver and level the
    places it heard there (`export.one_receiver`), which widen one-receiver answers; and
    `training_times_s`, their distinct timestamps (whole seconds, sorted), which the runtime's
    widening with time (of answers one by one or smoothed along tracks) measures queries from
    (`Localizer`), absent where the map does not widen with time."""
    from heimdall.export.one_receiver import OneReceiverPlaces
    from heimdall.pipelines.radio_map_training import labelled_samples

    splits = tuple(meta.get("fitted_on") or ("train", "val")) if splits is None else splits
    samples = labelled_samples(reader, splits)
    memory: dict[str, Any] = {
        "one_receiver_places": OneReceiverPlaces.from_samples(samples, len(reader.manifest.station_ids)).to_config()
    }
    hyper = meta.get("hyperparameters") or {}
    track_widening = float((hyper.get("track") or {}).get("time_widening", 0.0))
    if float(hyper.get("time_widening", 0.0)) <= 0 and not hyper.get("session_offsets_db") and track_widening <= 0:
        return memory
    times = samples.timestamp_s
    known = np.unique(np.round(times[np.isfinite(times)])) if times is not None else np.zeros(0)
    if known.size:
        memory["training_times_s"] = [int(t) for t in known]
    return memory


def training_settings(ctx: Context, meta: dict[str, Any]) -> dict[str, Any]:
    """The training job's hyperparameters and epochs run, for the model card (a radio map: its seed)."""
    from heimdall.jobs.repository import get_job, job_metrics

    settings: dict[str, Any] = {"init_from": meta.get("init_from")}
    job_id = meta.get("job_id")
    if meta.get("model_kind") == "radio_map":
        # Fitted in one step: the network's epochs, batch size and learning rate never applied.
        return {**settings, "seed": meta.get("seed")}
    if not job_id:
        return settings
    try:
        job = get_job(ctx.db, job_id)
    except NotFoundError:
        return settings
    settings.update(TrainRequest.from_job_params(job.params).card_settings())
    settings["epochs_run"] = len(job_metrics(ctx.db, job_id))
    return settings


def _physics(reader: DatasetReader) -> tuple[PhysicsModel, float]:
    scenario = reader.manifest.scenario or {}
    physics = PhysicsModel(
        path_loss_exponent=float(scenario.get("path_loss_exponent", 3.0)),
        sigma_db=float(reader.manifest.effective_sigma_db or scenario.get("shadowing_sigma_db", 6.0)),
        reference_distance_m=float(scenario.get("reference_distance_m", 100.0)),
    )
    return physics, float(scenario.get("area_margin_m", 20_000.0))


def evaluate_localizer(localizer: Localizer, reader: DatasetReader, split: str) -> Evaluation:
    """Score `localizer` on a dataset split (samples moved into the model's frame)."""
    samples = align_samples(
        reader.load(split),
        reader.manifest.reference,
        localizer.reference_point,
        reader.manifest.station_ids,
        localizer.station_ids,
    )
    # The model's own answers: the runtime's out-of-area widening is for users, not scores.
    predictions = localizer.predict(samples, check_area=False)
    physics, margin = _physics(reader)
    extra: dict[str, np.ndarray] = {}
    training_m = None
    if reader.manifest.kind == "measured":
        physics, extra, training_m = _measured_baselines(reader, localizer, samples)
    elif reader.manifest.scenario is not None:
        extra["oracle_ml"] = _oracle_estimates(reader, split, localizer.reference_point)
    evaluation = evaluate_predictions(
        samples,
        localizer.reference_point,
        predictions.position_m,
        predictions.covariance_m2,
        physics,
        margin,
        synthetic=reader.manifest.kind != "measured",
        extra_baselines=extra,
        training_position_m=training_m,
        ellipse95_sigmas=localizer.ellipse95_sigmas,
    )
    evaluation.summary.update(model=localizer.name, dataset=reader.name, split=split)
    fitted_on = localizer.config.get("fitted_on") or []
    if localizer.config.get("dataset") == reader.name and (split in fitted_on or (split == "all" and fitted_on)):
        # A radio map is refit on every labelled sample once exported: its held-out figures
        # are in the bundle's metrics.json, measured before the refit.
        evaluation.summary["in_sample"] = True
        log.warning("%s was fitted on %s/%s: these errors are in-sample; the bundle's metrics.json has "
                    "the held-out ones", localizer.name, reader.name, split)
    return evaluation


def _oracle_estimates(reader: DatasetReader, split: str, reference: Any) -> np.ndarray:
    """The oracle's estimates of a synthetic split, in the frame about `reference`."""
    from heimdall.data.synthetic import network_geometry
    from heimdall.evaluation.oracle import oracle_ml
    from heimdall.geo import ground_to_local, local_to_ground
    from heimdall.sim.scenario import ScenarioConfig

    # An IQ dataset's scenario also carries its waveform settings ("iq"): not propagation.
    scenario = {k: v for k, v in (reader.manifest.scenario or {}).items() if k in ScenarioConfig.model_fields}
    config = ScenarioConfig(**scenario)
    geometry = network_geometry(reader.network, reader.manifest.reference, config)
    estimate = oracle_ml(reader.load(split), geometry, config)
    lat, lon = local_to_ground(estimate[:, 0], estimate[:, 1], reader.manifest.reference)
    east, north = ground_to_local(lat, lon, reference)
    return np.column_stack([east, north])


def _measured_baselines(
    reader: DatasetReader, localizer: Localizer, samples: Any
) -> tuple[PhysicsModel, dict[str, np.ndarray], np.ndarray]:
    """Real data: path-loss exponent fitted on the training split; kNN with k chosen on val;
    log-distance ML with per-receiver offsets fitted on the training split; and the labelled
    transmitters of the train and val splits (what the model learnt from, [T,2] m)."""
    from heimdall.evaluation.evaluate import fit_path_loss_exponent
    from heimdall.evaluation.knn import choose_k, fit_knn
    from heimdall.evaluation.ml_offsets import fit_ml_offsets

    def aligned(split: str) -> Any:
        return align_samples(
            reader.load(split), reader.manifest.reference, localizer.reference_point,
            reader.manifest.station_ids, localizer.station_ids,
        )

    train, val = aligned("train"), aligned("val")
    physics = PhysicsModel(path_loss_exponent=fit_path_loss_exponent(train), sigma_db=6.0)
    knn = fit_knn(train, num_stations=len(localizer.station_ids))
    ml_offsets = fit_ml_offsets(train, num_stations=len(localizer.station_ids))
    training_m = np.concatenate([train.tx_position_m, val.tx_position_m]).astype(np.float64)
    return physics, {"knn": knn.predict(samples, choose_k(knn, val)), "ml_offsets": ml_offsets.predict(samples)}, training_m


def _check_split(split: str) -> None:
    # The split values are EvaluateRequest's (one list for the CLI, the API and jobs).
    check_bounds(EvaluateRequest(model="", dataset="", split=split))  # type: ignore[arg-type]


def _evaluation(ctx: Context, model: str, reader: DatasetReader, split: str, variant: str) -> Evaluation:
    localizer, temporary = resolve_model(ctx, model, variant)
    try:
        return evaluate_localizer(localizer, reader, split)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def evaluate(
    ctx: Context, model: str, dataset: str, split: str = "test", report_dir: Path | None = None, variant: str = "float"
) -> dict[str, Any]:
    """Evaluate a model on a dataset split; with `report_dir`, write the full report there."""
    _check_split(split)
    reader = DatasetReader(ctx.store, dataset)
    localizer, temporary = resolve_model(ctx, model, variant)
    try:
        evaluation = evaluate_localizer(localizer, reader, split)
        if report_dir is not None:
            write_evaluation_report(ctx, Path(report_dir), evaluation, localizer, reader, split)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return evaluation.summary


def write_evaluation_report(
    ctx: Context, directory: Path, evaluation: Evaluation, localizer: Localizer, reader: DatasetReader, split: str
) -> Path:
    """Figures, GeoJSON and report.md for an evaluation (training curves from the job's rows)."""
    from heimdall.evaluation.report import ReportContext, write_report
    from heimdall.jobs.repository import job_metrics

    network = reader.network
    history: list[dict[str, float]] = []
    job_id = localizer.config.get("job_id")
    if job_id:
        history = [
            {"epoch": m.epoch, "train_loss": m.train_loss, "val_loss": m.val_loss, "val_median_error_m": m.val_median_error_m}
            for m in job_metrics(ctx.db, job_id)
        ]
    context = ReportContext(
        reference=localizer.reference_point,
        receiver_lat_deg=np.array([r.lat_deg for r in network.receivers]),
        receiver_lon_deg=np.array([r.lon_deg for r in network.receivers]),
        receiver_ids=list(network.ids),
        sample_ids=[str(i) for i in reader.load(split).sample_id],
        training_history=history,
        title=f"{localizer.name} on {reader.name} ({split})",
    )
    return write_report(directory, evaluation, context)


#: Summary fields `compare` reports for each model.
COMPARED_FIELDS = ("n", "median_error_m", "p90_error_m", "rmse_m", "coverage_1sigma", "coverage_2sigma")


def compare(
    ctx: Context,
    model_a: str,
    model_b: str,
    dataset: str,
    split: str = "test",
    variant_a: str = "float",
    variant_b: str = "float",
) -> dict[str, Any]:
    """Score two models on the same samples of a dataset split, alone and paired.

    `paired.median_error_difference_m` is the median over samples of (error of A - error of
    B), metres: negative when A is usually closer. `paired.share_a_better` is the fraction
    of samples (both placed) where A's error is strictly smaller.
    """
    _check_split(split)
    reader = DatasetReader(ctx.store, dataset)
    a = _evaluation(ctx, model_a, reader, split, variant_a)
    b = _evaluation(ctx, model_b, reader, split, variant_b)
    errors_a, errors_b = a.errors_m["model"], b.errors_m["model"]
    both = np.isfinite(errors_a) & np.isfinite(errors_b)
    if not both.any():
        raise InputError(f"no sample of {dataset}/{split} was placed by both models")
    difference_m = errors_a[both] - errors_b[both]
    return {
        "dataset": dataset,
        "split": split,
        "a": {"model": a.summary["model"], **{k: a.summary[k] for k in COMPARED_FIELDS}},
        "b": {"model": b.summary["model"], **{k: b.summary[k] for k in COMPARED_FIELDS}},
        "paired": {
            "n": int(both.sum()),
            "median_error_difference_m": float(np.median(difference_m)),
            "share_a_better": float(np.mean(difference_m < 0)),
            "share_b_better": float(np.mean(difference_m > 0)),
        },
    }


def localize(
    ctx: Context, model: str, measurements: Path | None = None, geojson: bool = False, recordings: Path | None = None,
    drift_correction: bool = True, receivers: Path | None = None, tracks: bool = True,
) -> dict[str, Any]:
    """Positions and ellipses for every sample of a measurement file or of SigMF recordings.

    `drift_correction=False` skips a radio map's second pass and `tracks=False` its smoothing
    along tracks (`Localizer.predict`);
    `receivers` (their positions) makes `measurements` a wide table (`data.wide_format`)."""
    if (measurements is None) == (recordings is None):
        raise InputError("give either --measurements FILE or --recordings DIR")
    if receivers is not None and measurements is None:
        raise InputError("--receivers goes with --measurements (a wide table), not with --recordings")
    table = read_measurements(Path(measurements), receivers=receivers) if measurements is not None else None
    sets = None
    if recordings is not None:
        from heimdall.data.recordings import recording_sets

        sets = recording_sets(Path(recordings))
    localizer, temporary = resolve_model(ctx, model)
    try:
        if table is not None:
            sample_ids, predictions = localizer.localize_table(table, drift_correction=drift_correction, tracks=tracks)
        else:
            from heimdall.data.recordings import samples_from_recordings

            samples, sample_ids = samples_from_recordings(sets, localizer.reference_point, localizer.station_ids)
            predictions = localizer.predict(samples, drift_correction=drift_correction, tracks=tracks)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    if geojson:
        return predictions_geojson(sample_ids, predictions, localizer.reference_point, localizer.name)
    return {"model": localizer.name, "predictions": prediction_records(sample_ids, predictions)}
