"""Trainer factory: callbacks, logger, precision, devices, strategy, resume."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint

from heimdall.errors import InputError

__all__ = ["build_trainer", "check_hardware", "is_global_zero", "Accelerator", "Precision", "Strategy", "PRECISIONS", "STRATEGIES"]

Accelerator = Literal["cpu", "gpu", "auto"]
Precision = Literal["32-true", "bf16-mixed", "16-mixed"]
Strategy = Literal["auto", "ddp", "ddp_spawn"]
PRECISIONS: tuple[str, ...] = ("32-true", "bf16-mixed", "16-mixed")
STRATEGIES: tuple[str, ...] = ("auto", "ddp", "ddp_spawn")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_hardware(accelerator: Accelerator, precision: Precision, devices: int) -> None:
    """InputError when the flags ask for hardware this machine does not have."""
    has_gpu = _cuda_available()
    if accelerator == "gpu" and not has_gpu:
        raise InputError("--accelerator gpu: no CUDA device is visible on this machine")
    on_gpu = accelerator == "gpu" or (accelerator == "auto" and has_gpu)
    if precision == "16-mixed" and not on_gpu:
        # float16 autocast on CPU is unsupported by most kernels and gains nothing there.
        raise InputError("--precision 16-mixed needs a GPU; use bf16-mixed or 32-true on CPU")
    if on_gpu and devices > _gpu_count():
        raise InputError(f"--devices {devices}: only {_gpu_count()} GPU(s) visible")


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def is_global_zero() -> bool:
    """Whether this process is rank 0 of a (possibly distributed) run, from the launcher's environment.

    Lightning's DDP launcher re-runs the command with LOCAL_RANK / NODE_RANK set; torchrun
    sets RANK; SLURM sets SLURM_PROCID. A plain process has none of them and is rank 0.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    if "SLURM_PROCID" in os.environ and "LOCAL_RANK" not in os.environ:
        return int(os.environ["SLURM_PROCID"]) == 0
    return int(os.environ.get("NODE_RANK", "0")) == 0 and int(os.environ.get("LOCAL_RANK", "0")) == 0


def build_trainer(
    checkpoint_dir: Path,
    max_epochs: int,
    accelerator: Accelerator = "cpu",
    devices: int | str = 1,
    logger: Any = None,
    extra_callbacks: list[Callback] | None = None,
    early_stopping_patience: int = 12,
    progress_bar: bool = False,
    deterministic: bool = True,
    precision: Precision = "32-true",
    num_nodes: int = 1,
    strategy: Strategy = "auto",
) -> L.Trainer:
    """A Trainer with top-k + last checkpoints on val_loss, early stopping and LR logging.

    Under DDP only rank 0 writes checkpoints (Lightning broadcasts rank 0's `checkpoint_dir`).
    """
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename="epoch{epoch:03d}-val_loss{val_loss:.4f}",
            auto_insert_metric_name=False,
            monitor="val_loss",
            mode="min",
            save_top_k=2,
            save_last=True,
        ),
        EarlyStopping(monitor="val_loss", mode="min", patience=early_stopping_patience),
        *(extra_callbacks or []),
    ]
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    # Lightning's "tips" (e.g. about num_workers on a 2-core machine) are not errors.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        deterministic=deterministic,
        default_root_dir=checkpoint_dir,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
    )
