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
from heimdall.progress import ProgressFn

__all__ = ["TrainRequest", "TrainResult", "train"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainRequest:
    """Everything `heimdall train` accepts (CLI names, SI units)."""

    dataset: str | None = None
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    validation_split: float | None = None
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int = 1
    num_nodes: int = 1
    #: Lightning strategy; "auto" is DDP when devices x nodes > 1 (gloo on CPU, NCCL on GPU).
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    #: 32-true, or mixed precision: bf16-mixed (CPU or GPU), 16-mixed (GPU only).
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    num_workers: int = 0
    #: torch intra-op threads while training (None: torch's default, one per core).
    num_threads: int | None = None
    checkpoint: Path | None = None
    resume_training: bool = False
    init_from: str | None = None
    seed: int = 0
    hidden_dim: int = 128
    num_layers: int = 2
    #: Dropout probability inside the set-attention blocks (0 = none).
    dropout: float = 0.0
    #: ConvNeXt size of a spectrogram branch (datasets of kind "iq"); None = RSS features only.
    spectrogram_encoder: str | None = None
    early_stopping_patience: int = 12
    progress_bar: bool = False
    #: Stream the training split shard by shard (None: when it exceeds data.datamodule.STREAM_THRESHOLD).
    stream: bool | None = None
    #: "net" (LocalizationNet), "radio-map" (RadioMapNet) or "auto": the radio map for
    #: measured datasets (it wins there, docs/REAL_DATA.md), the network otherwise.
    estimator: Literal["auto", "net", "radio-map"] = "auto"
    #: Fields the caller set on purpose (the CLI's flags given on the command line); None:
    #: those that differ from their defaults. A resumed run refuses a given field that
    #: contradicts its checkpoint and restores every other (`pipelines.resume`).
    given: frozenset[str] | None = None

    def validate(self) -> None:
        """One clear error per bad flag."""
        if self.epochs < 1:
            raise InputError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not (0.0 < self.learning_rate < 1.0):
            raise InputError(f"--learning-rate must be in (0, 1), got {self.learning_rate}")
        if self.validation_split is not None and not 0.0 < self.validation_split < 1.0:
            raise InputError(f"--validation-split must be in (0, 1), got {self.validation_split}")
        if self.devices < 1 or self.num_nodes < 1:
            raise InputError(f"--devices and --num-nodes must be at least 1, got {self.devices} and {self.num_nodes}")
        if self.num_workers < 0:
            raise InputError(f"--num-workers must be at least 0, got {self.num_workers}")
        if self.num_threads is not None and self.num_threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.num_threads}")
        if self.accelerator not in ("cpu", "gpu", "auto"):
            raise InputError(f"--accelerator must be cpu, gpu or auto, got {self.accelerator!r}")
        if self.precision not in ("32-true", "bf16-mixed", "16-mixed"):
            raise InputError(f"--precision must be 32-true, bf16-mixed or 16-mixed, got {self.precision!r}")
        if self.strategy not in ("auto", "ddp", "ddp_spawn"):
            raise InputError(f"--strategy must be auto, ddp or ddp_spawn, got {self.strategy!r}")
        if self.estimator not in ("auto", "net", "radio-map"):
            raise InputError(f"--estimator must be auto, net or radio-map, got {self.estimator!r}")
        if self.estimator == "radio-map" and (self.init_from or self.spectrogram_encoder or self.resume_training):
            raise InputError("--estimator radio-map is fitted in one step from measurements: it takes no "
                             "--init-from, --spectrogram-encoder or --resume-training")
        if self.resume_training and self.checkpoint is None:
            raise InputError("--resume-training needs --checkpoint PATH")
        if self.dataset is None and not self.resume_training:
            raise InputError("--dataset is required (unless resuming from a checkpoint)")


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


def resolve_estimator(request: TrainRequest, kind: str) -> Literal["net", "radio-map"]:
    """The estimator `request` trains on a dataset of `kind`."""
    if request.estimator != "auto":
        return request.estimator
    plain = request.init_from is None and request.spectrogram_encoder is None and not request.resume_training
    return "radio-map" if kind == "measured" and plain else "net"


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
) -> TrainResult:
    """Train (or resume training) a model; returns checkpoint paths and the MLflow run.

    `job_id` names a job row created beforehand (e.g. queued by the API); `poll` returns
    "pause" or "cancel" when the job should stop (pause at the next epoch boundary, after
    its checkpoint; cancel after the current batch). `progress` receives ("train",
    batches done, batches in all epochs, note). `extra_callbacks` are Lightning callbacks
    added to the trainer (e.g. hyperparameter-search pruning). Under DDP every process
    runs this function; only rank 0 writes the job row, the MLflow run and the checkpoints.
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
        if resolve_estimator(request, reader.manifest.kind) == "radio-map":
            from heimdall.pipelines.radio_map_training import train_radio_map

            path, run_id, job_id = train_radio_map(ctx, request, reader, job_id=job_id, progress=progress)
            return TrainResult(checkpoint=str(path), best_checkpoint=str(path), epochs_run=1, mlflow_run_id=run_id,
                               job_id=job_id)
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
            params = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(request).items() if k != "given"}
            job_id = job_id or jobs.create_job(ctx.db, "train", request.dataset, params, total_epochs=request.epochs)
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
        with safe_globals():
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
    if leader:
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
