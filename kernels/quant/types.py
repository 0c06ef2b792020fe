"""The one quantized integer weight of presso: what compression's methods produce and export, what the
server reads from a checkpoint, and what every wq_linear backend prepares from.

It is held in the compressed-tensors `pack-quantized` layout (packing.py): compression packs its codes
once (`from_codes`) and reads them back with `codes`; the server fills it straight from the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.kernels.quant.packing import pack_int32, unpack_int32


@dataclass(frozen=True, slots=True)
class QuantizedWeight:
    """One linear layer's integer weight: w[n, k] = (q[n, k] - zero[n, g(k)]) * scale[n, g(k)]."""

    packed: torch.Tensor  # (N, ceil(K*b/32)) int32 bit streams
    scale: torch.Tensor  # (N, G) float
    zero: torch.Tensor | None  # (N, G) int8 zero points (unpacked at load); None = symmetric
    g_idx: torch.Tensor | None  # (K,) int: group of each input channel (act-order); None = k // group
    num_bits: int
    group_size: int | None  # None = one group per output channel
    out_features: int
    in_features: int

    @classmethod
    def from_codes(cls, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, num_bits: int,
                   group_size: int | None, g_idx: torch.Tensor | None = None) -> QuantizedWeight:
        """codes (N, K) signed integers in [-2^(b-1), 2^(b-1)) -> the packed weight."""
        n, k = codes.shape
        return cls(pack_int32(codes, num_bits), scale, None if zero is None else zero.to(torch.int8), g_idx,
                   num_bits, group_size, n, k)

    @property
    def num_groups(self) -> int:
        return self.scale.shape[1]

    @property
    def symmetric(self) -> bool:
        return self.zero is None

    @property
    def codes(self) -> torch.Tensor:
        """(N, K) int8 signed codes (unpacked on each access)."""
        return unpack_int32(self.packed, self.num_bits, self.in_features)

    def dequantize(self) -> torch.Tensor:
        """-> (N, K) fp32 weight (reference.dequantize, the spec)."""
        from presso.kernels.quant.reference import dequantize  # reference imports this module

        return dequantize(self)
