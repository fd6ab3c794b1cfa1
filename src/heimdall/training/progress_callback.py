"""A Lightning callback that reports batches done over the whole run to a `ProgressFn`."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from heimdall.progress import ProgressFn

__all__ = ["BatchProgress"]


class BatchProgress(Callback):
    """Calls `progress("train", batches_done, batches_total, note)` on rank 0.

    Counts the batches this run trains: a resumed run starts at 0 of the epochs it has
    left, not at the restored epoch. The total assumes every epoch runs; early stopping
    finishes the bar at the batches actually run.
    """

    def __init__(self, progress: ProgressFn, every_n_batches: int = 5) -> None:
        self.progress = progress
        self.every_n_batches = max(1, every_n_batches)
        self.note = ""
        self.first_epoch = 0
        self.batches_run = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.first_epoch = trainer.current_epoch
        self.batches_run = 0

    def _counts(self, trainer: L.Trainer, batch_idx: int) -> tuple[int, int]:
        per_epoch = trainer.num_training_batches
        per_epoch = int(per_epoch) if per_epoch != float("inf") else batch_idx + 1
        epochs_left = max(int(trainer.max_epochs or 1) - self.first_epoch, 1)
        return self.batches_run, epochs_left * per_epoch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: object, batch_idx: int) -> None:
        self.batches_run += 1
        if trainer.is_global_zero and batch_idx % self.every_n_batches == 0:
            done, total = self._counts(trainer, batch_idx)
            self.progress("train", done, total, self.note or f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        median_m = trainer.callback_metrics.get("val_median_error_m")
        shown = f", val median {float(median_m) / 1000:.1f} km" if median_m is not None else ""
        self.note = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}{shown}"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.progress("train", self.batches_run, self.batches_run, self.note or "done")
