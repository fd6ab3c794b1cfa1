"""The export job: checkpoint -> calibrated, evaluated ONNX bundle, published and registered."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heimdall.data.shards import DatasetReader
from heimdall.errors import ConflictError, InputError
from heimdall.export.localizer import Localizer
from heimdall.jobs import repository as jobs
from heimdall.pausepoints import pause_point
from heimdall.pipelines.context import Context
from heimdall.pipelines.models import bundle_config, evaluate_localizer, radio_map_memory, training_settings
from heimdall.pipelines.publishing import clean_stale_work, publish_lock, repair_models

__all__ = ["ExportResult", "export"]


@dataclass(frozen=True)
class ExportResult:
    bundle: str
    onnx: str
    max_abs_diff: float
    registered: str
    version: int
    evaluation: dict[str, Any]
    semantic_version: str = ""
    #: The int8 parity report (None without --quantize).
    quantization: dict[str, Any] | None = None


def _int8_variant(
    draft_dir: Path, config: dict[str, Any], reader: DatasetReader, split: str, evaluation: dict[str, Any]
) -> dict[str, Any]:
    """Quantise the staged graph and measure it against the float one on `split`.

    Returns the bundle's `variants["int8"]` entry, its parity report under "parity".
    """
    from heimdall.export.publish import parity_inputs
    from heimdall.export.quantize import output_difference, parity_report, quantize_int8

    float_path = draft_dir / "model.onnx"
    int8_path = quantize_int8(float_path)
    difference = output_difference(float_path, int8_path, parity_inputs(reader.load(split)))
    variant = {"file": int8_path.name, "quantization": "dynamic, int8 weights (MatMul, Gemm)"}
    staged = Localizer(draft_dir, variant="int8", config=dict(config, variants={"int8": variant}))
    int8_evaluation = evaluate_localizer(staged, reader, split).summary
    return dict(variant, parity=parity_report(evaluation, int8_evaluation, difference, float_path, int8_path))


def _refit_on_all_labels(
    ctx: Context, draft: Any, meta: dict[str, Any], reader: DatasetReader, parity: Any
) -> tuple[Any, dict[str, Any]]:
    """Refit a radio map on every labelled sample (test split included) with the chosen
    settings: (the staged bundle, the hyperparameters to store, session offsets re-estimated).

    The test split has done its job once the held-out evaluation is measured; a map that
    also knows those places localises better. The bundle keeps the held-out figures and
    says what the deployed graph was fitted on.
    """
    from heimdall.export.publish import stage_bundle
    from heimdall.pipelines.radio_map_training import labelled_samples
    from heimdall.training.radio_map_build import RadioMapHyperparameters, refit_radio_map, with_score_grid
    from heimdall.training.session_offsets import fit_session_offsets

    hyper = RadioMapHyperparameters(**meta["hyperparameters"])
    samples = labelled_samples(reader, ("train", "val", "test"))
    num_stations = len(reader.manifest.station_ids)
    if hyper.session_offsets_db:
        # Each session's offsets again, from every labelled sample (a later test split may be a new day).
        samples, hyper = fit_session_offsets(samples, num_stations, hyper)
    net = refit_radio_map(samples, num_stations, hyper)
    hyper = with_score_grid(hyper, net)
    refit = stage_bundle(net, parity, ctx.staging_dir)
    shutil.rmtree(draft.directory, ignore_errors=True)
    return refit, hyper.to_dict()


def _stage_export(
    ctx: Context, net: Any, meta: dict[str, Any], reader: DatasetReader, name: str, number: int, quantize: str | None
) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """Calibrate, stage, evaluate (and quantise) a bundle: (draft, config, evaluation, metrics, int8 report).

    The draft directory holds the graphs only; config and metrics stay in memory until
    `finish_bundle` writes every file of the bundle once.
    """
    import torch

    from heimdall.data.datamodule import to_batch
    from heimdall.evaluation.calibration import ellipse95_sigmas, fit_covariance_scale
    from heimdall.evaluation.metrics import mahalanobis_sq
    from heimdall.export.publish import stage_bundle

    radio_map = meta.get("model_kind") == "radio_map"
    if radio_map:
        # Calibrated by its own cross-fitting, the 95% ellipse too; the validation split is inside its fit.
        scale = float(net.covariance_scale)
        region_sigmas = None
    else:
        # Variance calibration on the validation split (never the test split).
        batch = to_batch(reader.load("val"))
        with torch.no_grad():
            position, covariance = net(*(batch[k] for k in net.input_names))
        delta = (batch["tx_position_m"] - position).double().numpy()
        scale = fit_covariance_scale(delta, covariance.double().numpy())
        net.covariance_scale.fill_(scale)
        # The 95% ellipse is sized on the same validation errors, under the scaled covariance.
        region_sigmas = ellipse95_sigmas(mahalanobis_sq(delta, covariance.double().numpy() * scale))
    test_split = "test" if reader.manifest.split_counts.get("test", 0) else "val"
    test_samples = reader.load(test_split)
    draft = stage_bundle(net, test_samples, ctx.staging_dir)
    try:
        config = bundle_config(meta, reader, name=name, version=number)
        config.update(covariance_scale=scale, training=training_settings(ctx, meta))
        if region_sigmas is not None:
            config.update(ellipse95_sigmas=region_sigmas)
        if radio_map:
            config.update(radio_map_memory(meta, reader))
        localizer = Localizer(draft.directory, reference=f"{name}/v{number}", config=config)
        evaluation = evaluate_localizer(localizer, reader, test_split).summary
        if radio_map and test_split == "test":
            draft, refit_hyper = _refit_on_all_labels(ctx, draft, meta, reader, test_samples)
            config.update(
                hyperparameters=refit_hyper,
                fitted_on=["train", "val", "test"],
                evaluated_as="fitted on train and val; the test figures are held-out, measured before the refit",
                **radio_map_memory(meta, reader, ("train", "val", "test")),
            )
        metrics = {"evaluation": evaluation, "onnx_max_abs_diff": draft.max_abs_diff, "covariance_scale": scale,
                   "ellipse95_sigmas": localizer.ellipse95_sigmas}
        quantization = None
        if quantize is not None:
            int8 = _int8_variant(draft.directory, config, reader, test_split, evaluation)
            config["variants"] = {"int8": int8}
            quantization = metrics["quantization"] = int8["parity"]
    except BaseException:
        shutil.rmtree(draft.directory, ignore_errors=True)
        raise
    return draft, config, evaluation, metrics, quantization


def export(ctx: Context, checkpoint: Path, version: str | None = None, quantize: str | None = None) -> ExportResult:
    """Checkpoint -> calibrated ONNX bundle, evaluated on the test split, published, registered.

    `version`: the semantic version `v{major}.{minor}.{patch}` (default: the highest so far
    with its minor number bumped); the registry's integer version is always the next one.
    `quantize="int8"` adds the quantised graph to the bundle with its parity report.
    """
    from heimdall.export.publish import finish_bundle
    from heimdall.export.versions import SEMVER_TAG, choose_semver
    from heimdall.training.checkpoints import load_checkpoint

    if quantize not in (None, "int8"):
        raise InputError(f"unknown quantisation {quantize!r}; expected int8")
    name = ctx.settings.registered_model_name
    tracker = ctx.tracker
    choose_semver(tracker.version_tags(name, SEMVER_TAG).values(), version)  # a bad version fails first
    net, meta = load_checkpoint(Path(checkpoint))
    meta["checkpoint_path"] = str(Path(checkpoint).resolve())
    # Calibration, staging, evaluation and quantisation share the splits: each is read once.
    reader = DatasetReader(ctx.store, meta["dataset"], keep_loaded=True)
    clean_stale_work(ctx)
    # One export of a model at a time publishes (store, registry, table, in that order);
    # what a killed one left half-done is repaired first (pipelines.publishing).
    with publish_lock(ctx, name):
        repair_models(ctx, name)
        semantic_version = choose_semver(tracker.version_tags(name, SEMVER_TAG).values(), version)
        number = tracker.next_version(name)
        if ctx.store.exists(f"models/{name}/v{number}/config.yaml"):
            raise ConflictError(f"model {name} v{number} already exists in the artifact store")
        draft, config, evaluation, metrics, quantization = _stage_export(ctx, net, meta, reader, name, number, quantize)
        config.update(semantic_version=semantic_version)
        try:
            pause_point("export:staged")
        except BaseException:
            shutil.rmtree(draft.directory, ignore_errors=True)  # interrupted: nothing was published
            raise
        prefix = finish_bundle(draft, ctx.store, name, number, config, metrics)
        pause_point("export:published")
        bundle_dir = ctx.store.local_dir(prefix)
        run_id = meta.get("mlflow_run_id")
        # One artifact path per version: two exports of one run must not overwrite each other.
        source = tracker.log_artifacts(run_id, bundle_dir, f"bundle/v{number}") if run_id else bundle_dir.as_uri()
        registry_version = tracker.register(name, source, run_id, tags={SEMVER_TAG: semantic_version})
        pause_point("export:registered")
        if run_id:
            tracker.log_metrics(run_id, {k: v for k, v in evaluation.items() if k != "baselines"}, prefix="test_")
        jobs.record_model(
            ctx.db,
            name=name,
            version=number,
            bundle_uri=ctx.store.uri(prefix),
            onnx_uri=ctx.store.uri(f"{prefix}/model.onnx"),
            dataset_name=meta["dataset"],
            job_id=meta.get("job_id"),
            mlflow_run_id=run_id,
            parent_model=meta.get("init_from"),
            metrics={k: v for k, v in evaluation.items() if not isinstance(v, dict)},
        )
    return ExportResult(
        bundle=str(bundle_dir),
        onnx=str(bundle_dir / "model.onnx"),
        max_abs_diff=draft.max_abs_diff,
        registered=f"models:/{name}/{registry_version}",
        version=number,
        evaluation=evaluation,
        semantic_version=semantic_version,
        quantization=quantization,
    )
