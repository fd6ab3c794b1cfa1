"""Trainer factory: callbacks, logger, precision, devices, resume."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint

__all__ = ["build_trainer", "Accelerator"]

Accelerator = Literal["cpu", "gpu", "auto"]


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
) -> L.Trainer:
    """A Trainer with top-k + last checkpoints on val_loss, early stopping and LR logging."""
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
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        deterministic=deterministic,
        default_root_dir=checkpoint_dir,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
    )
