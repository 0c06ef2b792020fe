"""The quantized weight as read from a checkpoint: the input every wq_linear backend prepares from."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class QuantizedWeight:
    """One linear layer's integer weight in the compressed-tensors `pack-quantized` layout."""

    packed: torch.Tensor  # (N, ceil(K*b/32)) int32 bit streams
    scale: torch.Tensor  # (N, G) float
    zero: torch.Tensor | None  # (N, G) int8 zero points (unpacked at load); None = symmetric
    g_idx: torch.Tensor | None  # (K,) int: group of each input channel (act-order); None = k // group
    num_bits: int
    group_size: int | None  # None = one group per output channel
    out_features: int
    in_features: int

    @property
    def num_groups(self) -> int:
        return self.scale.shape[1]
