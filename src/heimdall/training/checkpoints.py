"""Reading Heimdall's Lightning checkpoints back into a plain network, safely.

A checkpoint is a pickle. It is loaded with `torch.load(weights_only=True)`: tensors,
containers and plain values only, plus the few types `SAFE_GLOBALS` allows; a pickle that
asks for anything else (e.g. one crafted to call `os.system`) is refused before any of it
runs. Heimdall's own checkpoints hold nothing outside that list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from heimdall.errors import InputError, NotFoundError
from heimdall.models.localization_net import LocalizationNet, ModelConfig
from heimdall.models.radio_map import RADIO_MAP_KIND, RadioMapConfig, RadioMapNet

__all__ = ["SAFE_GLOBALS", "load_checkpoint", "read_checkpoint", "safe_globals"]

#: Types beyond torch's weights-only defaults that a Heimdall checkpoint may hold (none so
#: far: hyper-parameters, loop and callback states are plain dicts, numbers and tensors).
SAFE_GLOBALS: list[Any] = []


def safe_globals() -> Any:
    """Context manager allowing `SAFE_GLOBALS` in weights-only loads (Lightning's resume too)."""
    return torch.serialization.safe_globals(SAFE_GLOBALS)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded weights-only; InputError for a foreign or unsafe pickle."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"checkpoint {path} not found")
    try:
        with safe_globals():
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or unsafe file
        text = str(exc)
        if "GLOBAL" in text:
            # The unpickler refused a global (a function or class) before calling it.
            found = re.search(r"GLOBAL (\S+)", text)
            reason = f"its pickle asks for {found[1] if found else 'a global'}, which a Heimdall checkpoint never holds"
            raise InputError(f"refused checkpoint {path}: {reason} (nothing in it was run)") from None
        detail = "not a PyTorch checkpoint" if "Weights only load failed" in text else (text.strip().splitlines() or [""])[0]
        raise InputError(f"{path} is not a readable checkpoint: {detail or type(exc).__name__}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("heimdall"), dict):
        raise InputError(f"{path} is not a Heimdall training checkpoint")
    if "model_config" not in checkpoint["heimdall"] or "state_dict" not in checkpoint:
        raise InputError(f"{path} is not a Heimdall training checkpoint")
    return checkpoint


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """The network stored in a training checkpoint (a `LocalizationNet`, or a `RadioMapNet`
    for a radio map) and the checkpoint's Heimdall metadata."""
    checkpoint = read_checkpoint(path)
    meta = checkpoint["heimdall"]
    config = dict(meta["model_config"])
    if config.get("model_kind") == RADIO_MAP_KIND:
        net: Any = RadioMapNet(RadioMapConfig(**config))
    else:
        net = LocalizationNet(ModelConfig(**config))
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    if isinstance(net, RadioMapNet):
        # Radio maps fitted before fingerprint points existed: none (what they were fitted as).
        state.setdefault("fingerprint_point_mass", torch.zeros(()))
        # ... and before the silences' weight: each silence counted in full.
        state.setdefault("silence_weight", torch.ones(()))
    net.load_state_dict(state)
    net.eval()
    return net, dict(meta, epoch=int(checkpoint.get("epoch", 0)))
