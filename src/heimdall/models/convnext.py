"""ConvNeXt-style spectrogram encoder: one receiver's spectrogram -> one embedding.

Written here after Liu et al., "A ConvNet for the 2020s" (CVPR 2022), because neither
torchvision nor timm is a dependency. Module and parameter names follow the reference
implementation (facebookresearch/ConvNeXt: `downsample_layers`, `stages`, `dwconv`,
`pwconv1`, `pwconv2`, `gamma`, `norm`, `head`), so a state dict saved from it loads with
`SpectrogramEncoder.load_pretrained` when the stem's input channels match.

The encoder is a per-receiver branch of the set model (docs/TRAINING.md, section 3): on its own
it cannot know where a transmitter is.

Spatial sizes for the layout's [C, 128 mel bins, 32 frames] input: the stride-4 stem gives
32 x 8, and the three stride-2 downsamplings 16 x 4, 8 x 2 and 4 x 1; global average
pooling then leaves one vector of `dims[-1]` features. Height and width must each be at
least 32 (a multiple of 32 avoids silently dropped edge rows/columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

from heimdall.errors import InputError

__all__ = [
    "CONVNEXT_SIZES",
    "MIN_INPUT_SIZE",
    "ConvNeXtBlock",
    "DropPath",
    "EncoderSize",
    "LayerNorm2d",
    "SpectrogramEncoder",
    "SpectrogramEncoderConfig",
    "count_parameters",
]

EncoderSize = Literal["nano", "tiny", "small", "base", "large"]

# (depths, dims) per size. tiny..large are ConvNeXt's (the seeds' range; tiny ~28 M and
# large ~196 M backbone parameters). nano is this project's CPU size (~0.43 M parameters),
# the default: 7 receivers per sample at hundreds of samples/s is a CPU budget.
CONVNEXT_SIZES: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = {
    "nano": ((2, 2, 2, 2), (16, 32, 64, 128)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
}

# Total stride of the backbone (stem 4 x three downsamplings of 2): smallest H and W.
MIN_INPUT_SIZE = 32

_HEAD_PREFIXES = ("norm.", "head.")
_ANCHOR_KEY = "downsample_layers.0.0.weight"


@dataclass(frozen=True)
class SpectrogramEncoderConfig:
    """Hyperparameters of `SpectrogramEncoder`.

    size: ConvNeXt size ("tiny" is the seeds' smallest; "nano" is the CPU default).
    in_channels: spectrogram channels (1 = mel dB; 2 = mel dB and MFCC stacked).
    out_dim: embedding size handed to the set model.
    drop_path_rate: stochastic-depth probability of the deepest block (linear from 0).
    layer_scale_init: initial value of each block's per-channel residual scale.
    """

    size: EncoderSize = "nano"
    in_channels: int = 1
    out_dim: int = 64
    drop_path_rate: float = 0.0
    layer_scale_init: float = 1e-6

    def __post_init__(self) -> None:
        if self.size not in get_args(EncoderSize):
            raise InputError(f"encoder size {self.size!r} is not one of {get_args(EncoderSize)}")
        if self.in_channels < 1 or self.out_dim < 1:
            raise InputError(
                f"in_channels ({self.in_channels}) and out_dim ({self.out_dim}) must be >= 1"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise InputError(f"encoder drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.layer_scale_init < 0.0:
            raise InputError(f"encoder layer_scale_init must be >= 0, got {self.layer_scale_init}")

    @property
    def depths(self) -> tuple[int, int, int, int]:
        """Blocks per stage."""
        return CONVNEXT_SIZES[self.size][0]

    @property
    def dims(self) -> tuple[int, int, int, int]:
        """Channels per stage."""
        return CONVNEXT_SIZES[self.size][1]


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples with probability `drop_prob`.

    In training, kept samples are scaled by 1 / (1 - drop_prob) so the expectation is
    unchanged; in eval it is the identity. Uses torch's global RNG (seeded by the trainer).
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise InputError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep = torch.rand(shape, dtype=x.dtype, device=x.device) < keep_prob
        return x * keep.to(x.dtype) / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of [B, C, H, W] (ConvNeXt's "channels_first" norm)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> LayerNorm -> Linear 4x -> GELU -> Linear -> layer scale -> DropPath,
    added to the input. [B, dim, H, W] -> [B, dim, H, W].

    With `layer_scale_init` small (1e-6) a fresh block is close to the identity.
    """

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (
            nn.Parameter(torch.full((dim,), float(layer_scale_init)))
            if layer_scale_init > 0
            else None
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.dwconv(x).permute(0, 2, 3, 1)  # channels last: the Linears act per pixel
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        if self.gamma is not None:
            x = self.gamma * x
        return residual + self.drop_path(x.permute(0, 3, 1, 2))


class SpectrogramEncoder(nn.Module):
    """ConvNeXt backbone + head (LayerNorm, Linear): [B, C, H, W] -> [B, out_dim].

    Input: spectrogram(s) in the feature layer's units (e.g. mel dB), H and W >= 32; the
    layout's 128 x 32 ends the backbone at 4 x 1 before global average pooling.
    """

    def __init__(self, config: SpectrogramEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SpectrogramEncoderConfig()
        depths, dims = config.depths, config.dims
        self.downsample_layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(config.in_channels, dims[0], kernel_size=4, stride=4),
                    LayerNorm2d(dims[0]),
                )
            ]
        )
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2)
                )
            )
        rates = torch.linspace(0.0, config.drop_path_rate, sum(depths), device="cpu").tolist()
        self.stages = nn.ModuleList()
        start = 0
        for depth, dim in zip(depths, dims):
            self.stages.append(
                nn.Sequential(
                    *(
                        ConvNeXtBlock(dim, rates[start + j], config.layer_scale_init)
                        for j in range(depth)
                    )
                )
            )
            start += depth
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], config.out_dim)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> backbone feature map [B, dims[-1], H/32, W/32]."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise InputError(
                f"spectrogram encoder expects [B, {self.config.in_channels}, H, W], "
                f"got {list(x.shape)}"
            )
        if x.shape[-2] < MIN_INPUT_SIZE or x.shape[-1] < MIN_INPUT_SIZE:
            raise InputError(
                f"spectrogram encoder needs H and W >= {MIN_INPUT_SIZE}, got {list(x.shape[-2:])}"
            )
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spectrograms [B, C, H, W] -> embeddings [B, out_dim]."""
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.head(self.norm(x))

    def load_pretrained(self, path: str | Path, *, include_head: bool = True) -> list[str]:
        """Load weights from a LOCAL file (never downloads); returns the keys loaded.

        The file is a `torch.save`d state dict, or a checkpoint holding one under
        "state_dict" or "model" (a Lightning or reference-ConvNeXt checkpoint). Keys may carry
        a prefix (e.g. "module." or "net.encoder."), found from the stem's weight. Every
        backbone key must be present with this configuration's shape, and no extra backbone
        key may be. The head (`norm.*`, `head.*`) is loaded when the file has it and
        `include_head`; pass `include_head=False` for a backbone trained with another head.
        Raises InputError naming the file and the first missing, extra or mismatching key.
        """
        path = Path(path)
        state = _read_state_dict(path)
        own = self.state_dict()
        prefix = _find_prefix(path, state)
        theirs = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        wanted = [k for k in own if include_head or not k.startswith(_HEAD_PREFIXES)]
        for key in wanted:
            is_head = key.startswith(_HEAD_PREFIXES)
            if key not in theirs:
                if is_head and not any(k.startswith(_HEAD_PREFIXES) for k in theirs):
                    continue  # a backbone-only file: the head keeps its initialisation
                raise InputError(f"{path}: missing key {prefix + key!r} for {self.config.size}")
            if tuple(theirs[key].shape) != tuple(own[key].shape):
                hint = " (pass include_head=False to skip the head)" if is_head else ""
                raise InputError(
                    f"{path}: key {prefix + key!r} has shape {list(theirs[key].shape)}, "
                    f"expected {list(own[key].shape)}{hint}"
                )
        for key in theirs:
            if key not in own and not key.startswith(_HEAD_PREFIXES):
                raise InputError(
                    f"{path}: unexpected key {prefix + key!r} for a {self.config.size} encoder"
                )
        loaded = [k for k in wanted if k in theirs]
        with torch.no_grad():
            for key in loaded:
                own[key].copy_(theirs[key].to(own[key].dtype))
        return loaded


def _init_weights(module: nn.Module) -> None:
    """ConvNeXt's initialisation: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local state-dict or checkpoint file (weights only: no code runs)."""
    if not path.is_file():
        raise InputError(f"{path}: pretrained weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable torch weights file ({message})") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path}: holds no state dict (expected a dict of tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(f"{path}: holds no tensors")
    return tensors


def _find_prefix(path: Path, state: dict[str, torch.Tensor]) -> str:
    """The key prefix in front of the backbone keys (e.g. "", "module.", "net.encoder.")."""
    prefixes = sorted(
        k[: -len(_ANCHOR_KEY)]
        for k in state
        if k == _ANCHOR_KEY or k.endswith("." + _ANCHOR_KEY)
    )
    if not prefixes:
        raise InputError(f"{path}: no ConvNeXt backbone found (no key ending in {_ANCHOR_KEY!r})")
    if len(prefixes) > 1:
        raise InputError(f"{path}: several ConvNeXt backbones (key prefixes {prefixes})")
    return prefixes[0]


def count_parameters(config: SpectrogramEncoderConfig, *, include_head: bool = True) -> int:
    """Number of parameters of `SpectrogramEncoder(config)`, counted on the meta device
    (no memory is allocated, so "large" costs nothing)."""
    with torch.device("meta"):
        encoder = SpectrogramEncoder(config)
    return sum(
        p.numel()
        for name, p in encoder.named_parameters()
        if include_head or not name.startswith(_HEAD_PREFIXES)
    )
