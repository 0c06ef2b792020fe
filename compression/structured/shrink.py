"""Slice a Llama decoder layer's Linears in place to the kept heads / MLP channels.

Attention: q_proj keeps the kept heads' rows (out dim), o_proj the same columns (in dim); k/v are
untouched (every KV head keeps at least one q head). MLP: gate/up keep the kept channels' rows, down_proj
the same columns. Biases follow the out dim. The attention module's GQA group count is updated so
transformers' repeat_kv stays right while the rest of the model is still being calibrated.
"""

from __future__ import annotations

import torch
from torch import nn


def _set(linear: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    linear.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
    if linear.bias is not None:
        linear.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
    linear.out_features, linear.in_features = weight.shape


def keep_rows(linear: nn.Linear, rows: torch.Tensor) -> None:
    """linear (out, in) -> (len(rows), in)."""
    _set(linear, linear.weight.data[rows], None if linear.bias is None else linear.bias.data[rows])


def set_columns(linear: nn.Linear, weight: torch.Tensor) -> None:
    """Replace the weight with `weight` (out, k), keeping the bias (the out dim is unchanged)."""
    _set(linear, weight.to(linear.weight.dtype), None if linear.bias is None else linear.bias.data)


def shrink_attention(attn: nn.Module, rows: torch.Tensor, o_weight: torch.Tensor, num_heads: int,
                     num_kv: int) -> None:
    """rows: kept q features (k * head_dim,); o_weight: (hidden, k * head_dim) new o_proj weight."""
    keep_rows(attn.q_proj, rows)
    set_columns(attn.o_proj, o_weight)
    attn.num_key_value_groups = num_heads // num_kv
    if hasattr(attn, "num_heads"):
        attn.num_heads = num_heads


def shrink_mlp(mlp: nn.Module, channels: torch.Tensor, down_weight: torch.Tensor) -> None:
    """channels: kept intermediate indices (k,); down_weight: (hidden, k) new down_proj weight."""
    keep_rows(mlp.gate_proj, channels)
    keep_rows(mlp.up_proj, channels)
    set_columns(mlp.down_proj, down_weight)
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = len(channels)
