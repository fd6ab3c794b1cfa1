"""The training job: dataset -> LightningModule -> checkpoints, MLflow run and job rows."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from heimdall.jobs import repository as jobs
from heimdall.data.layout import SampleArrays
from heimdall.data.shards import DatasetReader
from heimdall.errors import InputError, Interrupted, NotFoundError
from heimdall.names import to_slug
from heimdall.pipelines.context import Context
from heimdall.pipelines.resume import finished_epochs, restore_request, settings_of
from heimdall.processes import ctrl_c_kept
from heimdall.progress import ProgressFn
from heimdall.requests import TrainRequest

__all__ = ["TrainRequest", "TrainResult", "train"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainResult:
    checkpoint: str
    best_checkpoint: str
    epochs_run: int
    mlflow_run_id: str | None
    job_id: str | None
    status: str = "completed"
    #: False in the extra processes of a DDP run (they write no rows, runs or checkpoints).
    is_global_zero: bool = True
    #: "net" (trained in epochs) or "radio_map" (fitted in one step).
    model_kind: str = "net"
    #: A radio map's fit: what its cross-fitting measured (`cv_*`: out-of-fold median error
    #: in m and 1-/2-sigma/95% coverage per scheme), `fit_seconds`, `train_samples` and
    #: `ellipse95_sigmas`. Empty for a network.
    fit_summary: dict[str, float] = dataclasses.field(default_factory=dict)


def resolve_estimator(
    request: TrainRequest, kind: str, scenario: dict[str, Any] | None = None
) -> Literal["net", "radio-map"]:
    """The estimator `request` trains on a dataset of `kind` simulated under `scenario`.

    "auto" picks the radio map for measured datasets and for feature datasets simulated from
    a scenario fitted to measurements (one with a kriged static field, as `scenario fit` and
    `network from-measurements` write): on the April data it beat the network in both
    cases (docs/REAL_DATA.md). Otherwise, and whenever the request needs a network
    (`init_from`, a spectrogram encoder, resuming), the network.
    """
    if request.estimator != "auto":
        return request.estimator
    plain = request.init_from is None and request.spectrogram_encoder is None and not request.resume_training
    twin = kind == "features" and bool((scenario or {}).get("static_field_file"))
    return "radio-map" if (kind == "measured" or twin) and plain else "net"


def _initial_network(ctx: Context, request: TrainRequest, reader: DatasetReader, train: SampleArrays) -> Any:
    from heimdall.data.datamodule import fit_normalization
    from heimdall.models.localization_net import LocalizationNet, ModelConfig
    from heimdall.training.checkpoints import load_checkpoint

    if request.init_from:
        source = Path(request.init_from)
        if not source.is_file():
            raise NotFoundError(f"--init-from {request.init_from}: a training checkpoint file is needed")
        net, meta = load_checkpoint(source)
        net.train()  # load_checkpoint hands back a network ready for inference
        if net.config.num_stations != len(reader.manifest.station_ids):
            log.warning("station count differs from the pre-trained model; new stations use the generic embedding")
        return net
    if request.spectrogram_encoder is not None and reader.manifest.kind != "iq":
        raise InputError(f"--spectrogram-encoder needs a dataset of kind iq; {reader.name!r} is {reader.manifest.kind}")
    config = ModelConfig(
        num_stations=len(reader.manifest.station_ids),
        hidden_dim=request.hidden_dim,
        num_layers=request.num_layers,
        dropout=request.dropout,
        spectrogram_encoder=request.spectrogram_encoder,
    )
    net = LocalizationNet(config)
    net.set_normalization(fit_normalization(train))
    return net


def train(
    ctx: Context,
    request: TrainRequest,
    job_id: str | None = None,
    poll: Callable[[], str | None] | None = None,
    progress: ProgressFn | None = None,
    extra_callbacks: Sequence[Any] = (),
    finish: bool = True,
) -> TrainResult:
    """Train (or resume training) a model; returns checkpoint paths and the MLflow run.

    `job_id` names a job row created beforehand (e.g. queued by the API); `poll` returns
    "pause" or "cancel" when the job should stop (pause at the next epoch boundary, after
    its checkpoint; cancel after the current batch). `progress` receives ("train",
    batches done, batches in all epochs, note). `extra_callbacks` are Lightning callbacks
    added to the trainer (e.g. hyperparameter-search pruning). Under DDP every process
    runs this function; only rank 0 writes the job row, the MLflow run and the checkpoints.
    `finish` False leaves a completed run's job running, for the stages that follow
    (a queued job's export); a paused, cancelled or failed run ends its job all the same.
    """
    import lightning as L
    import torch
    from lightning.pytorch.accelerators import CUDAAccelerator

    from heimdall.data.datamodule import HeimdallDataModule
    from heimdall.training.callbacks import EpochReporter, JobControl
    from heimdall.training.checkpoints import read_checkpoint, safe_globals
    from heimdall.training.module import LocalizationLightningModule
    from heimdall.training.progress_callback import BatchProgress
    from heimdall.training.trainer import build_trainer, check_hardware, is_global_zero

    request.validate()
    if not request.resume_training:
        check_hardware(request.accelerator, request.precision, request.devices)
        request = dataclasses.replace(request, dataset=to_slug(str(request.dataset), "dataset"))
        reader = DatasetReader(ctx.store, request.dataset)
        if resolve_estimator(request, reader.manifest.kind, reader.manifest.scenario) == "radio-map":
            from heimdall.pipelines.radio_map_training import train_radio_map

            path, run_id, job_id, fitted = train_radio_map(
                ctx, request, reader, job_id=job_id, progress=progress, finish=finish
            )
            return TrainResult(checkpoint=str(path), best_checkpoint=str(path), epochs_run=1, mlflow_run_id=run_id,
                               job_id=job_id, model_kind="radio_map", fit_summary=fitted)
    leader = is_global_zero()
    resume_meta: dict[str, Any] = {}
    resumed_from: dict[str, Any] = {}
    if request.resume_training:
        if read_checkpoint(Path(request.checkpoint))["heimdall"].get("model_kind") == "radio_map":
            raise InputError(f"{request.checkpoint} is a radio map, fitted in one step: there is nothing to resume")
        request, resume_meta, resumed_from = _restore(ctx, request)
    request = dataclasses.replace(request, dataset=to_slug(str(request.dataset), "dataset"))
    check_hardware(request.accelerator, request.precision, request.devices)
    reader = DatasetReader(ctx.store, request.dataset)
    L.seed_everything(request.seed, workers=True, verbose=False)
    datamodule = HeimdallDataModule(
        reader,
        batch_size=request.batch_size,
        num_workers=request.num_workers,
        seed=request.seed,
        validation_split=request.validation_split,
        stream=request.stream,
    )
    datamodule.setup("fit")
    # When streaming, the training samples here are the normalisation sample only.
    train_split, val_split = datamodule.train_samples, datamodule.val_samples
    if request.resume_training:
        from heimdall.models.localization_net import LocalizationNet, ModelConfig

        net = LocalizationNet(ModelConfig(**resume_meta["model_config"]))
        job_id = job_id or resume_meta["job_id"]
        checkpoint_dir = Path(request.checkpoint).resolve().parent
    else:
        net = _initial_network(ctx, request, reader, train_split)
        if leader:
            job_id = job_id or jobs.create_job(
                ctx.db, "train", request.dataset, {"spec": request.to_json()}, total_epochs=request.epochs
            )
        # Other DDP ranks receive rank 0's directory from ModelCheckpoint (a broadcast).
        checkpoint_dir = ctx.settings.checkpoints_dir / (job_id or "rank-nonzero")
    tracker = ctx.tracker
    # The logger creates its MLflow run lazily, and only on rank 0 (Lightning's rank_zero_experiment).
    logger = tracker.lightning_logger(resume_meta.get("mlflow_run_id"), run_name=f"train-{request.dataset}")
    run_id = logger.run_id if leader else None
    if leader:
        tracker.log_params(run_id, _run_params(request, net, len(train_split), len(val_split)))
        if resumed_from:
            # MLflow parameters are written once; a resumed run that trains further says so.
            tracker.set_tags(run_id, resumed_from)
        jobs.start_job(ctx.db, job_id, mlflow_run_id=run_id, checkpoint_dir=str(checkpoint_dir), total_epochs=request.epochs)
    module = LocalizationLightningModule(
        net,
        learning_rate=request.learning_rate,
        weight_decay=request.weight_decay,
        warmup_epochs=request.warmup_epochs,
        max_epochs=request.epochs,
    )
    module.checkpoint_metadata = {
        "dataset": request.dataset,
        "job_id": job_id,
        "mlflow_run_id": run_id,
        "init_from": request.init_from,
        "train_settings": settings_of(request),
    }
    epochs_done: list[int] = []

    def report(epoch: int, metrics: dict[str, float]) -> None:
        epochs_done.append(epoch)
        jobs.record_epoch(ctx.db, job_id, epoch, metrics)

    callbacks: list[Any] = [EpochReporter(report)]
    control = JobControl(poll) if poll is not None else None  # type: ignore[arg-type]
    if control is not None:
        callbacks.append(control)
    if progress is not None:
        callbacks.append(BatchProgress(progress))
    callbacks.extend(extra_callbacks)
    trainer = build_trainer(
        checkpoint_dir,
        max_epochs=request.epochs,
        accelerator=request.accelerator,
        devices=request.devices,
        num_nodes=request.num_nodes,
        strategy=request.strategy,
        precision=request.precision,
        logger=logger,
        extra_callbacks=callbacks,
        early_stopping_patience=request.early_stopping_patience,
        progress_bar=request.progress_bar,
    )
    datamodule.pin_memory = isinstance(trainer.accelerator, CUDAAccelerator)
    torch.set_float32_matmul_precision("high")
    threads = torch.get_num_threads()
    if request.num_threads is not None:
        torch.set_num_threads(request.num_threads)
    try:
        # Lightning loads the resumed checkpoint itself: weights only, as `load_checkpoint` does.
        with safe_globals(), ctrl_c_kept():
            trainer.fit(
                module, datamodule=datamodule, weights_only=True,
                ckpt_path=str(request.checkpoint) if request.resume_training else None,
            )
    except BaseException as exc:
        # Lightning turns Ctrl-C into SystemExit(1) after its own clean-up.
        interrupted = isinstance(exc, KeyboardInterrupt) or (
            isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt)
        )
        if leader:
            jobs.finish_job(ctx.db, job_id, "failed", error="interrupted" if interrupted else str(exc)[:2000])
        if interrupted:
            last = checkpoint_dir / "last.ckpt"
            resume = f"heimdall train --checkpoint {last} --resume-training" if last.is_file() else None
            raise Interrupted(resume) from None
        raise
    finally:
        torch.set_num_threads(threads)  # a worker process trains many jobs
    status = {"pause": "paused", "cancel": "cancelled"}.get(control.stopped_by if control else None, "completed")
    if leader and (finish or status != "completed"):
        jobs.finish_job(ctx.db, job_id, status)  # type: ignore[arg-type]
    callback = trainer.checkpoint_callback
    return TrainResult(
        checkpoint=str(callback.last_model_path),
        best_checkpoint=str(callback.best_model_path or callback.last_model_path),
        epochs_run=len(epochs_done) if leader else trainer.current_epoch,
        mlflow_run_id=run_id,
        job_id=job_id,
        status=status,
        is_global_zero=leader,
    )


def _restore(ctx: Context, request: TrainRequest) -> tuple[TrainRequest, dict[str, Any], dict[str, Any]]:
    """A resumed run's request (settings from its checkpoint), the checkpoint's metadata,
    and the MLflow tags recording a longer run than first planned (empty if none)."""
    from heimdall.training.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(Path(request.checkpoint))  # type: ignore[arg-type]
    meta = checkpoint["heimdall"]
    done = finished_epochs(checkpoint)
    planned = int((meta.get("train_settings") or {}).get("epochs", checkpoint.get("hyper_parameters", {}).get("max_epochs", 0)))
    restored = restore_request(ctx, request, meta, dict(checkpoint.get("hyper_parameters") or {}), done)
    tags = {"resumed_epochs": f"{planned} -> {restored.epochs} (resumed after epoch {done})"} if restored.epochs != planned else {}
    return restored, meta, tags


def _run_params(request: TrainRequest, net: Any, train_samples: int, val_samples: int) -> dict[str, Any]:
    """The MLflow parameters of a training run."""
    return {
        "dataset": request.dataset,
        "epochs": request.epochs,
        "batch_size": request.batch_size,
        "learning_rate": request.learning_rate,
        "weight_decay": request.weight_decay,
        "validation_split": request.validation_split,
        "train_samples": train_samples,
        "val_samples": val_samples,
        "init_from": request.init_from,
        "precision": request.precision,
        "devices": request.devices,
        "num_nodes": request.num_nodes,
        "num_threads": request.num_threads,
        **{f"model_{k}": v for k, v in net.config.to_dict().items()},
    }
