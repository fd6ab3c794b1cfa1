"""Reading Heimdall's Lightning checkpoints back into a plain network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from heimdall.errors import InputError, NotFoundError
from heimdall.models.localization_net import LocalizationNet, ModelConfig
from heimdall.models.radio_map import RADIO_MAP_KIND, RadioMapConfig, RadioMapNet

__all__ = ["load_checkpoint"]


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """The network stored in a training checkpoint (a `LocalizationNet`, or a `RadioMapNet`
    for a radio map) and the checkpoint's Heimdall metadata."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise InputError(f"{path} is not a readable checkpoint: {exc}") from exc
    meta = checkpoint.get("heimdall") if isinstance(checkpoint, dict) else None
    if not meta or "model_config" not in meta:
        raise InputError(f"{path} is not a Heimdall training checkpoint")
    config = dict(meta["model_config"])
    if config.get("model_kind") == RADIO_MAP_KIND:
        net: Any = RadioMapNet(RadioMapConfig(**config))
    else:
        net = LocalizationNet(ModelConfig(**config))
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    net.load_state_dict(state)
    net.eval()
    return net, dict(meta, epoch=int(checkpoint.get("epoch", 0)))
