"""Callbacks that report training progress outside Lightning (database, job state)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from lightning.pytorch.callbacks import Callback

__all__ = ["EpochReporter", "EPOCH_METRICS"]

EPOCH_METRICS = (
    "train_loss",
    "val_loss",
    "val_median_error_m",
    "val_p68_error_m",
    "val_p95_error_m",
    "val_coverage_1sigma",
    "val_coverage_2sigma",
)


class EpochReporter(Callback):
    """Calls `report(epoch, metrics)` once per finished epoch with the logged metrics."""

    def __init__(self, report: Callable[[int, dict[str, float]], None]) -> None:
        self.report = report

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in EPOCH_METRICS}
        optimizers = trainer.optimizers
        if optimizers:
            metrics["learning_rate"] = float(optimizers[0].param_groups[0]["lr"])
        self.report(trainer.current_epoch, metrics)
