"""Set-model building blocks written for clean ONNX export (explicit masked attention)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MaskedSelfAttentionBlock", "MaskedAttentionPool", "masked_softmax"]

# Large but finite: -inf would turn a fully masked row into NaN.
_MASK_VALUE = -1.0e4


def masked_softmax(scores: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where `key_mask` (broadcastable, bool) is True."""
    scores = torch.where(key_mask, scores, torch.full_like(scores, _MASK_VALUE))
    return torch.softmax(scores, dim=-1)


class MaskedSelfAttentionBlock(nn.Module):
    """Pre-norm transformer block over the receiver axis; absent receivers are never attended."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B,R,D], mask [B,R] bool -> [B,R,D]."""
        b, r, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q = q.reshape(b, r, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.reshape(b, r, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.reshape(b, r, self.num_heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        attn = masked_softmax(scores, mask[:, None, None, :])
        out = (attn @ v).transpose(1, 2).reshape(b, r, d)
        x = x + self.dropout(self.proj(out))
        return x + self.dropout(self.ffn(self.norm2(x)))


class MaskedAttentionPool(nn.Module):
    """Pool a set to one vector with learned queries (Set Transformer's PMA)."""

    def __init__(self, dim: int, num_queries: int = 2) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) / math.sqrt(dim))
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out_dim = num_queries * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B,R,D], mask [B,R] bool -> [B, num_queries * D]."""
        scores = torch.einsum("qd,brd->bqr", self.queries, self.key(x)) / math.sqrt(x.shape[-1])
        attn = masked_softmax(scores, mask[:, None, :])
        return torch.einsum("bqr,brd->bqd", attn, self.value(x)).flatten(1)
