"""Array plumbing shared by the feature functions: numpy or torch in, the same kind out."""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

from heimdall.errors import InputError

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

#: Most complex samples one call takes (2**28 complex64 = 2 GiB); larger input is refused unread.
MAX_IQ_SAMPLES = 2**28


def to_tensor(x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """(`x` as a tensor without copying where possible, whether it came in as numpy)."""
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.from_numpy(np.ascontiguousarray(x)), True


def iq_tensor(iq: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    """`to_tensor(iq)` once `iq` is known to be a complex array of a size worth reading."""
    if not isinstance(iq, (np.ndarray, torch.Tensor)):
        raise InputError(f"iq must be a numpy array or torch tensor, got {type(iq).__name__}")
    if isinstance(iq, np.ndarray) and not np.iscomplexobj(iq):
        raise InputError(f"iq must be complex baseband, got dtype {iq.dtype}")
    size = int(np.prod(iq.shape, dtype=np.float64))
    if size > MAX_IQ_SAMPLES:
        # Checked on the shape alone: a broadcast view may be far larger than memory.
        raise InputError(f"iq holds {size:.3g} samples; at most {MAX_IQ_SAMPLES} per call")
    return to_tensor(iq)


def all_finite(x: torch.Tensor) -> bool:
    """Whether every element of `x` (real or complex) is finite.

    A float32 sum is finite when every part is (NaN and inf propagate) and costs a twentieth
    of `torch.isfinite`; only when it is not (or finite values overflowed it) does the exact,
    slower check decide.
    """
    parts = torch.view_as_real(x) if torch.is_complex(x) else x
    return math.isfinite(float(parts.sum())) or bool(torch.isfinite(parts).all())


def back(x: torch.Tensor, as_numpy: bool):
    """`x` as numpy when the input was numpy, else as it is."""
    return x.numpy() if as_numpy else x
