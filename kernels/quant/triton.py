"""Triton `wq_linear` for GPUs: a dequantization kernel reading the packed int32 bit streams directly.

Each program dequantizes a (BLOCK_N, BLOCK_K) tile of W from `weight_packed`, the zero points and
the scales into the activation dtype; the matmul is then torch's (cuBLAS). On CPU tensors it runs only
under TRITON_INTERPRET=1 (the conformance test). Importing this module fails where triton is missing.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from presso.kernels.quant.reference import group_index
from presso.kernels.quant.types import QuantizedWeight
from presso.kernels.registry import register


@triton.jit
def _dequant_kernel(packed_ptr, scale_ptr, zero_ptr, gidx_ptr, out_ptr, N, K, W, G,
                    BITS: tl.constexpr, HAS_ZERO: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BN,)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)  # (BK,)
    m = (rn[:, None] < N) & (rk[None, :] < K)
    bit = rk * BITS
    word, off = bit // 32, bit % 32
    lo = tl.load(packed_ptr + rn[:, None] * W + word[None, :], mask=m, other=0).to(tl.int64) & 0xFFFFFFFF
    nxt_m = m & ((word[None, :] + 1) < W)
    nxt = tl.load(packed_ptr + rn[:, None] * W + word[None, :] + 1, mask=nxt_m, other=0).to(tl.int64)
    nxt = nxt & 0xFFFFFFFF
    spill = (off + BITS) > 32
    u = ((lo >> off[None, :]) | tl.where(spill[None, :], nxt << (32 - off[None, :]), 0)) & ((1 << BITS) - 1)
    q = u.to(tl.float32) - (1 << (BITS - 1))
    g = tl.load(gidx_ptr + rk, mask=rk < K, other=0)  # (BK,)
    s = tl.load(scale_ptr + rn[:, None] * G + g[None, :], mask=m, other=0.0).to(tl.float32)
    if HAS_ZERO:
        z = tl.load(zero_ptr + rn[:, None] * G + g[None, :], mask=m, other=0).to(tl.float32)
        q = q - z
    tl.store(out_ptr + rn[:, None] * K + rk[None, :], (q * s).to(out_ptr.dtype.element_ty), mask=m)


def dequantize_triton(qw: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
    """(N, K) weight in `dtype`, dequantized by the Triton kernel on qw's device."""
    n, k = qw.out_features, qw.in_features
    out = torch.empty(n, k, dtype=dtype, device=qw.packed.device)
    gidx = group_index(qw).to(torch.int32).to(qw.packed.device)
    zero = qw.zero if qw.zero is not None else qw.scale  # unused when HAS_ZERO is False
    grid = (triton.cdiv(n, 32), triton.cdiv(k, 64))
    _dequant_kernel[grid](
        qw.packed.contiguous(), qw.scale.contiguous(), zero.contiguous(), gidx, out, n, k,
        qw.packed.shape[1], qw.scale.shape[1],
        BITS=qw.num_bits, HAS_ZERO=qw.zero is not None, BLOCK_N=32, BLOCK_K=64,
    )
    return out


@register("wq_linear", "triton")
class TritonLinear:
    """Dequantize once into the activation dtype, then a dense matmul (weights stay small on disk only)."""

    def __init__(self, qw: QuantizedWeight, act_dtype: torch.dtype):
        self.weight = dequantize_triton(qw, act_dtype)  # (N, K)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight.to(x.dtype))
