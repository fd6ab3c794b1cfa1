"""The training job for measured datasets: fit a `RadioMapNet`, write its checkpoint, log the run.

A radio map is fitted in closed form with its hyperparameters chosen by cross-fitting, so
this job has no epochs: one "epoch" row records what the cross-fitting measured. The
checkpoint has the layout `training.checkpoints.load_checkpoint` reads (a `state_dict` of
`model.*` tensors and the `heimdall` metadata), so export, evaluate and localize take it
like any other.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.jobs import repository as jobs
from heimdall.data.layout import SampleArrays
from heimdall.data.shards import DatasetReader
from heimdall.errors import DataError
from heimdall.pipelines.context import Context
from heimdall.progress import ProgressFn

__all__ = ["train_radio_map", "write_radio_map_checkpoint", "CHECKPOINT_NAME"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "radio_map.ckpt"
#: Transmissions a radio map is fitted on at most. Measured campaigns are smaller; a large
#: simulation adds little beyond this, and fitting time and memory grow with it.
MAX_RADIO_MAP_SAMPLES = 20_000


def write_radio_map_checkpoint(path: Path, net: Any, meta: dict[str, Any]) -> Path:
    """Save `net` with its metadata, atomically (temporary name, then rename)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": {f"model.{k}": v.detach().cpu() for k, v in net.state_dict().items()},
        "heimdall": dict(meta, model_config=net.config.to_dict()),
        "epoch": 1,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def labelled_samples(reader: DatasetReader, splits: tuple[str, ...]) -> SampleArrays:
    """The samples of `splits` whose transmitter position is known, at most
    `MAX_RADIO_MAP_SAMPLES` of them (a seeded random subset of a larger simulation)."""
    parts = [reader.load(s) for s in splits if reader.manifest.split_counts.get(s, 0)]
    if not parts:
        raise DataError(f"dataset {reader.name!r} has no samples in {', '.join(splits)}")
    samples = SampleArrays.concatenate(parts)
    samples = samples.select(np.all(np.isfinite(samples.tx_position_m), axis=1))
    if len(samples) > MAX_RADIO_MAP_SAMPLES:
        log.info("radio map: fitting on %d of %d labelled samples", MAX_RADIO_MAP_SAMPLES, len(samples))
        keep = np.sort(np.random.default_rng(0).permutation(len(samples))[:MAX_RADIO_MAP_SAMPLES])
        samples = samples.select(keep)
    return samples


def train_radio_map(
    ctx: Context,
    request: Any,
    reader: DatasetReader,
    job_id: str | None = None,
    progress: ProgressFn | None = None,
    finish: bool = True,
) -> tuple[Path, str, str, dict[str, float]]:
    """Fit a radio map on the train and validation splits (the test split stays unseen).

    `request` is the `TrainRequest` (its dataset and seed are used). Returns the
    checkpoint path, the MLflow run id, the job id and the fit's summary (the
    cross-fitting's `cv_*` figures, `fit_seconds`, `train_samples`, `ellipse95_sigmas`).
    `finish` False leaves the job running once fitted (for the stages that follow, as
    `train`'s).
    """
    from heimdall.training.radio_map_fit import fit_radio_map

    job_id = job_id or jobs.create_job(ctx.db, "train", request.dataset, {"spec": request.to_json()}, total_epochs=1)
    checkpoint_dir = ctx.settings.checkpoints_dir / job_id
    tracker = ctx.tracker
    run_id = tracker.start_run(run_name=f"train-{request.dataset}", tags={"heimdall.model_kind": "radio_map"})
    jobs.start_job(ctx.db, job_id, mlflow_run_id=run_id, checkpoint_dir=str(checkpoint_dir), total_epochs=1)
    try:
        samples = labelled_samples(reader, ("train", "val"))
        tracker.log_params(run_id, {"dataset": request.dataset, "model_kind": "radio_map", "seed": request.seed,
                                    "train_samples": len(samples)})

        def step(done: int, total: int) -> None:
            if progress is not None:
                progress("train", done, total, "cross-fitting the radio map")

        started = time.perf_counter()
        fit = fit_radio_map(samples, len(reader.manifest.station_ids), seed=request.seed, progress=step)
        seconds = time.perf_counter() - started
        metrics = dict(fit.cross_validation, fit_seconds=seconds)
        params = fit.hyperparameters.to_dict()
        # The session table can be long (days x receivers): MLflow gets its size, the checkpoint the table.
        params["session_offsets_db"] = len(params.pop("session_offsets_db"))
        params["session_starts_s"] = len(params.pop("session_starts_s"))
        tracker.log_params(run_id, {f"radio_map_{k}": v for k, v in params.items()})
        tracker.log_metrics(run_id, metrics)
        medians = [v for k, v in fit.cross_validation.items() if k.endswith("_median_error_m")]
        validation = np.mean(medians) if medians else float("nan")
        jobs.record_epoch(ctx.db, job_id, 1, {"val_median_error_m": float(validation)})
        meta = {
            "dataset": request.dataset,
            "job_id": job_id,
            "mlflow_run_id": run_id,
            "init_from": None,
            "model_kind": "radio_map",
            "fitted_on": ["train", "val"],
            "hyperparameters": fit.hyperparameters.to_dict(),
            "cross_validation": fit.cross_validation,
            "seed": request.seed,
        }
        path = write_radio_map_checkpoint(checkpoint_dir / CHECKPOINT_NAME, fit.net, meta)
    except BaseException as exc:
        jobs.finish_job(ctx.db, job_id, "failed", error=str(exc)[:2000])
        tracker.set_terminated(run_id)
        raise
    if finish:
        jobs.finish_job(ctx.db, job_id, "completed")
    tracker.set_terminated(run_id)
    log.info("radio map fitted in %.1f s: %s", seconds, fit.hyperparameters)
    summary = dict(metrics, train_samples=len(samples), ellipse95_sigmas=fit.hyperparameters.ellipse95_sigmas)
    return path, run_id, job_id, summary
