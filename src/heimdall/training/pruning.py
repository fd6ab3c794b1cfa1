"""Hyperparameter-search pruning: report each epoch's validation loss to an Optuna trial."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

__all__ = ["TrialPruning"]


class TrialPruning(Callback):
    """Reports `monitor` (default `val_loss`, the Gaussian NLL) to `trial` after every epoch.

    When the trial's pruner says the run is worse than its peers at the same epoch, training
    stops at the end of that epoch (its checkpoints and MLflow run stay valid) and
    `raise_if_pruned()` raises `optuna.TrialPruned` for the objective to propagate. Stopping
    through `trainer.should_stop` rather than raising inside Lightning keeps the training job
    a clean, finished run instead of a failed one.

    `on_start(run_id)` is called once when fitting starts, with the MLflow run id of the
    trainer's logger (None without one), so the caller can link the run to the trial at once
    (a killed trial then still has its run nested under the study).
    """

    def __init__(
        self,
        trial: Any,
        monitor: str = "val_loss",
        on_start: Callable[[str | None], None] | None = None,
    ) -> None:
        self.trial = trial
        self.monitor = monitor
        self.on_start = on_start
        self.pruned_at_epoch: int | None = None
        self.best_value = math.inf
        self.history: dict[int, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.on_start is not None and trainer.is_global_zero:
            self.on_start(getattr(trainer.logger, "run_id", None))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        epoch = int(trainer.current_epoch)
        # A diverged run (NaN loss) is the worst possible value, not a missing one.
        value = value if math.isfinite(value) else math.inf
        self.history[epoch] = value
        self.best_value = min(self.best_value, value)
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned_at_epoch = epoch
            trainer.should_stop = True

    def raise_if_pruned(self) -> None:
        """Raise `optuna.TrialPruned` when the pruner stopped this trial."""
        import optuna

        if self.pruned_at_epoch is not None:
            raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at_epoch} ({self.monitor} {self.history[self.pruned_at_epoch]:.4f})")
