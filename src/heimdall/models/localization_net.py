"""LocalizationNet: a set model over receivers -> position and 2x2 covariance in metres.

Inputs are in physical units (metres, dBm) exactly as the sample layout gives them;
normalisation statistics are buffers fitted on the training split, so the exported graph
needs no outside preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from heimdall.models.convnext import SpectrogramEncoder, SpectrogramEncoderConfig
from heimdall.models.layers import MaskedAttentionPool, MaskedSelfAttentionBlock

__all__ = ["ModelConfig", "LocalizationNet", "NormalizationStats", "BASE_INPUTS"]

#: Inputs of every model; a model with a spectrogram branch also takes `spectrogram`.
BASE_INPUTS = ("rx_position_m", "rx_id", "rss_dbm", "heard", "present")

# Bounds on the log-diagonal of the normalised Cholesky factor: sigma between
# exp(-9) and exp(3) position scales; keeps the NLL finite early in training.
_LOG_SIGMA_MIN = -9.0
_LOG_SIGMA_MAX = 3.0


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of `LocalizationNet` (stored in checkpoints and bundles)."""

    num_stations: int
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4
    station_embedding_dim: int = 16
    dropout: float = 0.0
    #: ConvNeXt size of the per-receiver spectrogram branch; None = RSS features only.
    spectrogram_encoder: str | None = None
    spectrogram_channels: int = 1
    spectrogram_dim: int = 32

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class NormalizationStats:
    """Training-split statistics, in metres and dB."""

    position_center_m: tuple[float, float]
    position_scale_m: float
    up_center_m: float
    up_scale_m: float
    rss_center_dbm: float
    rss_scale_db: float
    spectrogram_center_db: float = 0.0
    spectrogram_scale_db: float = 1.0


class LocalizationNet(nn.Module):
    """Per-receiver encoder + station embedding -> masked self-attention -> pooled heads."""

    num_features = 6

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        # Index num_stations is the generic embedding for stations the model never saw.
        self.station_embedding = nn.Embedding(config.num_stations + 1, config.station_embedding_dim)
        self.spectrogram_encoder: SpectrogramEncoder | None = None
        extra = 0
        if config.spectrogram_encoder is not None:
            # One ConvNeXt shared by all receivers; its embedding joins the scalar features.
            self.spectrogram_encoder = SpectrogramEncoder(
                SpectrogramEncoderConfig(
                    size=config.spectrogram_encoder,  # type: ignore[arg-type]
                    in_channels=config.spectrogram_channels,
                    out_dim=config.spectrogram_dim,
                )
            )
            extra = config.spectrogram_dim
        self.encoder = nn.Sequential(
            nn.Linear(self.num_features + config.station_embedding_dim + extra, d),
            nn.GELU(),
            nn.Linear(d, d),
        )
        self.blocks = nn.ModuleList(
            MaskedSelfAttentionBlock(d, config.num_heads, config.dropout) for _ in range(config.num_layers)
        )
        self.pool = MaskedAttentionPool(d)
        self.head = nn.Sequential(nn.LayerNorm(self.pool.out_dim), nn.Linear(self.pool.out_dim, d), nn.GELU())
        self.mean_head = nn.Linear(d, 2)
        self.tril_head = nn.Linear(d, 3)
        self.register_buffer("position_center_m", torch.zeros(2))
        self.register_buffer("position_scale_m", torch.ones(()))
        self.register_buffer("up_center_m", torch.zeros(()))
        self.register_buffer("up_scale_m", torch.ones(()))
        self.register_buffer("rss_center_dbm", torch.full((), -100.0))
        self.register_buffer("rss_scale_db", torch.full((), 10.0))
        self.register_buffer("spectrogram_center_db", torch.zeros(()))
        self.register_buffer("spectrogram_scale_db", torch.ones(()))
        # Post-hoc variance calibration factor, fitted on the validation split.
        self.register_buffer("covariance_scale", torch.ones(()))

    def set_normalization(self, stats: NormalizationStats) -> None:
        """Load training-split statistics into the buffers."""
        self.position_center_m.copy_(torch.tensor(stats.position_center_m))
        self.position_scale_m.fill_(stats.position_scale_m)
        self.up_center_m.fill_(stats.up_center_m)
        self.up_scale_m.fill_(stats.up_scale_m)
        self.rss_center_dbm.fill_(stats.rss_center_dbm)
        self.rss_scale_db.fill_(stats.rss_scale_db)
        self.spectrogram_center_db.fill_(stats.spectrogram_center_db)
        self.spectrogram_scale_db.fill_(stats.spectrogram_scale_db)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the inputs `forward` takes, in order (also the ONNX graph's)."""
        return BASE_INPUTS + (("spectrogram",) if self.spectrogram_encoder is not None else ())

    def _features(
        self, rx_position_m: torch.Tensor, rss_dbm: torch.Tensor, heard: torch.Tensor
    ) -> torch.Tensor:
        en = (rx_position_m[..., :2] - self.position_center_m) / self.position_scale_m
        up = (rx_position_m[..., 2:3] - self.up_center_m) / self.up_scale_m
        rss = torch.where(heard, rss_dbm, self.rss_center_dbm)
        rss_norm = (rss - self.rss_center_dbm) / self.rss_scale_db
        # Power relative to the strongest station: invariant to the unknown transmit power.
        strongest = torch.where(heard, rss, torch.full_like(rss, -1.0e4)).amax(dim=1, keepdim=True)
        relative = torch.where(heard, rss - strongest, torch.zeros_like(rss)) / self.rss_scale_db
        flag = heard.to(rx_position_m.dtype)
        return torch.cat([en, up, rss_norm[..., None], relative[..., None], flag[..., None]], dim=-1)

    def forward_normalized(
        self,
        rx_position_m: torch.Tensor,
        rx_id: torch.Tensor,
        rss_dbm: torch.Tensor,
        heard: torch.Tensor,
        present: torch.Tensor,
        spectrogram: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [B,2] and Cholesky factor [B,2,2], both in position-scale units.

        `spectrogram` [B, R, C, mels, frames] (dB) is required by a model with a
        spectrogram branch and ignored otherwise.
        """
        known = (rx_id >= 0) & (rx_id < self.config.num_stations)
        station = torch.where(known, rx_id, torch.full_like(rx_id, self.config.num_stations))
        parts = [self._features(rx_position_m, rss_dbm, heard), self.station_embedding(station)]
        if self.spectrogram_encoder is not None:
            if spectrogram is None:
                raise ValueError("this model has a spectrogram branch: pass `spectrogram`")
            b, r = rss_dbm.shape
            images = (spectrogram.float() - self.spectrogram_center_db) / self.spectrogram_scale_db
            embedded = self.spectrogram_encoder(images.reshape(b * r, *images.shape[2:]))
            parts.append(embedded.reshape(b, r, -1) * present[..., None].to(embedded.dtype))
        x = torch.cat(parts, dim=-1)
        x = self.encoder(x)
        for block in self.blocks:
            x = block(x, present)
        h = self.head(self.pool(x, present))
        mean = self.mean_head(h)
        raw = self.tril_head(h)
        log_diag = raw[:, :2].clamp(_LOG_SIGMA_MIN, _LOG_SIGMA_MAX)
        diag = torch.exp(log_diag)
        zero = torch.zeros_like(raw[:, 0])
        scale_tril = torch.stack(
            [torch.stack([diag[:, 0], zero], dim=-1), torch.stack([raw[:, 2], diag[:, 1]], dim=-1)], dim=1
        )
        return mean, scale_tril

    def forward(
        self,
        rx_position_m: torch.Tensor,
        rx_id: torch.Tensor,
        rss_dbm: torch.Tensor,
        heard: torch.Tensor,
        present: torch.Tensor,
        spectrogram: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Position east/north [B,2] in metres and its covariance [B,2,2] in m^2."""
        return self.denormalize(*self.forward_normalized(rx_position_m, rx_id, rss_dbm, heard, present, spectrogram))

    def denormalize(self, mean: torch.Tensor, scale_tril: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward_normalized`'s mean and Cholesky factor -> position [B,2] in m, covariance [B,2,2] in m^2."""
        position_m = self.position_center_m + mean * self.position_scale_m
        covariance = scale_tril @ scale_tril.transpose(-1, -2)
        covariance_m2 = covariance * (self.position_scale_m**2 * self.covariance_scale)
        return position_m, covariance_m2

    def normalize_target(self, tx_position_m: torch.Tensor) -> torch.Tensor:
        """Target east/north metres -> the units of `forward_normalized`."""
        return (tx_position_m - self.position_center_m) / self.position_scale_m
