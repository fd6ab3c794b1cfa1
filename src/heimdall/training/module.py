"""LocalizationLightningModule: the training loop around a plain `LocalizationNet`."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch

from heimdall.models.localization_net import LocalizationNet
from heimdall.models.loss import GaussianNLLLoss

__all__ = ["LocalizationLightningModule", "coverage_fraction"]


def coverage_fraction(delta_m: torch.Tensor, covariance_m2: torch.Tensor, k_sigma: float) -> float:
    """Share of errors inside the k-sigma ellipse of their predicted covariance."""
    d2 = torch.einsum("bi,bij,bj->b", delta_m, torch.linalg.inv(covariance_m2), delta_m)
    return float((d2 <= k_sigma**2).double().mean())


class LocalizationLightningModule(L.LightningModule):
    """Given a network, trains it with the Gaussian NLL, AdamW and a warm-up + cosine schedule."""

    def __init__(
        self,
        model: LocalizationNet,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 2,
        max_epochs: int = 40,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"], logger=False)
        self.model = model
        self.loss_fn = GaussianNLLLoss()
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        #: Training samples this process saw in the current epoch (a Python int: no device sync).
        self._samples_seen = 0
        #: Extra state carried inside checkpoints (model config, dataset, MLflow run id).
        self.checkpoint_metadata: dict[str, Any] = {}

    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss (normalised units), predicted mean and Cholesky factor (normalised)."""
        mean, scale_tril = self.model.forward_normalized(*(batch[k] for k in self.model.input_names))
        target = self.model.normalize_target(batch["tx_position_m"])
        return self.loss_fn(mean, scale_tril, target), mean, scale_tril

    def on_train_epoch_start(self) -> None:
        self._samples_seen = 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _, _ = self.model_step(batch)
        batch_size = batch["rss_dbm"].shape[0]
        self._samples_seen += batch_size
        # Accumulated on the device, reduced once at epoch end (no per-step .item()).
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size, sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        # Per-process and all-process sample counts: under DDP each rank sees its share only.
        seen = float(self._samples_seen)
        self.log("train_samples_per_rank", seen, rank_zero_only=True)
        self.log("train_samples_seen", seen, reduce_fx="sum", sync_dist=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, mean, scale_tril = self.model_step(batch)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=batch["rss_dbm"].shape[0], sync_dist=True)
        # The same forward pass as the loss, in metres: one network run per batch.
        position_m, covariance_m2 = self.model.denormalize(mean, scale_tril)
        self._val_outputs.append(
            (position_m.detach().double(), covariance_m2.detach().double(), batch["tx_position_m"].double())
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        position, covariance, truth = (torch.cat(t) for t in zip(*self._val_outputs, strict=True))
        self._val_outputs.clear()
        if self.trainer.world_size > 1:
            # Every rank validated its shard; the percentiles need all of them.
            position, covariance, truth = (self.all_gather(t).flatten(0, 1) for t in (position, covariance, truth))
        delta = truth - position
        errors = torch.linalg.norm(delta, dim=1).cpu().numpy()
        self.log_dict(
            {
                "val_median_error_m": float(np.median(errors)),
                "val_p68_error_m": float(np.percentile(errors, 68)),
                "val_p95_error_m": float(np.percentile(errors, 95)),
                "val_coverage_1sigma": coverage_fraction(delta, covariance, 1.0),
                "val_coverage_2sigma": coverage_fraction(delta, covariance, 2.0),
            },
            prog_bar=False,
        )

    def configure_optimizers(self) -> dict[str, Any]:
        # The fused kernel updates all parameters in one pass: ~3 ms instead of ~14 ms per step
        # for the default model on this CPU (docs/PERFORMANCE.md); the same maths as AdamW's loop.
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay, fused=True
        )
        warmup = max(int(self.hparams.warmup_epochs), 0)
        total = max(int(self.hparams.max_epochs), 1)

        def factor(epoch: int) -> float:
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            progress = (epoch - warmup) / max(total - warmup, 1)
            return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["heimdall"] = dict(self.checkpoint_metadata, model_config=self.model.config.to_dict())
