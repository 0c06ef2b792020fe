"""Reference (spec) of presso's weight-only integer quantization, in the compressed-tensors layout.

Bit layout (`pack-quantized`, packed and unpacked by packing.py): signed integers q in [-2^(b-1), 2^(b-1)) are stored as unsigned
u = q + 2^(b-1), and each row is one little-endian bit stream of b-bit fields packed into int32 words:
element j occupies bits [j*b, j*b + b) of the row. Zero points (asymmetric) are packed the same way but
along dim 0; the reader unpacks those (small) at load with unpack_int32 on the transpose. Dequantization: w[n, k] = (q[n, k] - zero[n, g(k)]) * scale[n, g(k)], with
g(k) = g_idx[k] when an act-order g_idx is stored, else k // group_size (channel-wise: one group).
"""

from __future__ import annotations

import torch

from presso.kernels.quant.packing import pack_int32, unpack_int32
from presso.kernels.quant.types import QuantizedWeight
from presso.kernels.registry import register

__all__ = ["dequantize", "group_index", "pack_int32", "quantize_int4_groups", "quantize_int8_rows",
           "unpack_int32", "unpack_zero_points"]


def quantize_int8_rows(w: torch.Tensor) -> QuantizedWeight:
    """Symmetric per-output-channel int8 round-to-nearest of a dense (N, K) weight."""
    w = w.float()
    scale = (w.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)  # (N, 1)
    q = torch.round(w / scale).clamp(-127, 127)
    return QuantizedWeight(pack_int32(q, 8), scale, None, None, 8, None, w.shape[0], w.shape[1])


def quantize_int4_groups(w: torch.Tensor, group_size: int = 64) -> QuantizedWeight:
    """Symmetric group-wise int4 round-to-nearest of a dense (N, K) weight (K divisible by group_size)."""
    n, k = w.shape
    assert k % group_size == 0, (k, group_size)
    g = w.float().reshape(n, k // group_size, group_size)  # (N, G, group)
    scale = (g.abs().amax(dim=-1, keepdim=True) / 7.0).clamp(min=1e-12)  # (N, G, 1): [-7, 7] like int8's +-127
    q = torch.round(g / scale).clamp(-8, 7).reshape(n, k)
    return QuantizedWeight(pack_int32(q, 4), scale[..., 0], None, None, 4, group_size, n, k)


def group_index(qw: QuantizedWeight) -> torch.Tensor:
    """(K,) long: the scale/zero column of each input channel."""
    k = qw.in_features
    if qw.g_idx is not None:
        return qw.g_idx.to(torch.long)
    if qw.group_size is None:
        return torch.zeros(k, dtype=torch.long)
    return torch.arange(k) // qw.group_size


def unpack_zero_points(zero_packed: torch.Tensor, num_bits: int, out_features: int) -> torch.Tensor:
    """(ceil(N*b/32), G) int32 packed along dim 0 -> (N, G) int8."""
    return unpack_int32(zero_packed.t().contiguous(), num_bits, out_features).t().contiguous()


def dequantize(qw: QuantizedWeight) -> torch.Tensor:
    """(N, K) fp32 weight."""
    q = unpack_int32(qw.packed, qw.num_bits, qw.in_features).float()  # (N, K)
    g = group_index(qw)
    scale = qw.scale.float()[:, g]  # (N, K)
    if qw.zero is not None:
        q = q - qw.zero.float()[:, g]
    return q * scale


@register("wq_linear", "reference")
class ReferenceLinear:
    """y = x @ dequantize(W).T in fp32, cast back to x's dtype."""

    def __init__(self, qw: QuantizedWeight, act_dtype: torch.dtype):
        self.weight = dequantize(qw)  # (N, K) fp32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() @ self.weight.t()).to(x.dtype)
