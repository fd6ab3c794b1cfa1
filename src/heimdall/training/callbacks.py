"""Callbacks that report training progress outside Lightning (database, job state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

__all__ = ["EpochReporter", "EPOCH_METRICS", "JobControl", "StopRequest"]

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


StopRequest = Literal["pause", "cancel"]


class JobControl(Callback):
    """Honours pause and cancel requests polled from `poll()` (e.g. the job row).

    Cancel stops after the current batch; pause stops at the next epoch boundary, after the
    epoch's checkpoint is written, so `--resume-training` continues from it.
    """

    def __init__(self, poll: Callable[[], StopRequest | None], every_n_batches: int = 10) -> None:
        self.poll = poll
        self.every_n_batches = max(1, every_n_batches)
        self.stopped_by: StopRequest | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: object, batch_idx: int) -> None:
        if batch_idx % self.every_n_batches == 0 and self.poll() == "cancel":
            self.stopped_by = "cancel"
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        request = self.poll()
        if request is not None and self.stopped_by is None:
            self.stopped_by = request
            trainer.should_stop = True
