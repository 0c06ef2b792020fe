"""Triton KV-cache kernels for the scalar codecs: int8 encode/decode and KIVI-2bit unpacking (GPU).

Layouts as in kernels/kvcache/reference.py. Every kernel views its tensor as R rows of D channels
(one row = one token-head) and a program handles BLOCK_R whole rows, so the per-row statistics (the
int8 scale) never leave registers. Rounding matches the reference bit for bit: IEEE division
(`tl.div_rn`) and round-half-to-even, as torch.round does. On CPU tensors these run only under
TRITON_INTERPRET=1 (the kernel tests). Importing this module fails where triton is missing.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from presso.kernels.kvcache.reference import EPS
from presso.kernels.registry import register

BLOCK_R = 16  # rows (token-heads) per program


@triton.jit
def round_half_even(y):
    """torch.round on fp32: floor, then up when the fraction passes 1/2 or is 1/2 with an odd floor."""
    r = tl.floor(y)
    f = y - r  # exact for |y| < 2**23
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0.0
    return tl.where((f > 0.5) | ((f == 0.5) & odd), r + 1.0, r)


@triton.jit
def _int8_encode_kernel(x_ptr, q_ptr, scale_ptr, R, D, eps,
                        BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # (BR,)
    cols = tl.arange(0, BLOCK_D)  # (BD,)
    m = (rows[:, None] < R) & (cols[None, :] < D)
    off = rows[:, None] * D + cols[None, :]
    x = tl.load(x_ptr + off, mask=m, other=0.0).to(tl.float32)  # (BR, BD)
    amax = tl.maximum(tl.max(tl.abs(x), axis=1), eps)  # (BR,)
    scale = tl.div_rn(amax, 127.0).to(tl.float16).to(tl.float32)  # the stored fp16 step, as fp32
    # a near-zero row's step underflows fp16 to 0: torch then makes x/0 = +-inf -> +-127 and 0/0 -> 0
    zero = scale[:, None] == 0.0  # (BR, 1)
    q = round_half_even(tl.div_rn(x, tl.where(zero, 1.0, scale[:, None])))
    q = tl.minimum(tl.maximum(q, -127.0), 127.0)
    q = tl.where(zero, tl.where(x > 0, 127.0, 0.0) - tl.where(x < 0, 127.0, 0.0), q)
    tl.store(q_ptr + off, q.to(tl.int8), mask=m)
    tl.store(scale_ptr + rows, scale.to(tl.float16), mask=rows < R)


@triton.jit
def _int8_decode_kernel(q_ptr, scale_ptr, out_ptr, R, D, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    m = (rows[:, None] < R) & (cols[None, :] < D)
    off = rows[:, None] * D + cols[None, :]
    q = tl.load(q_ptr + off, mask=m, other=0).to(tl.float32)  # (BR, BD)
    scale = tl.load(scale_ptr + rows, mask=rows < R, other=0.0).to(tl.float32)  # (BR,)
    tl.store(out_ptr + off, q * scale[:, None], mask=m)


@triton.jit
def _kivi_decode_kernel(packed_ptr, scale_ptr, lo_ptr, out_ptr, R, D, BS, H, G, W,
                        BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    """Row r = (block f, token b, head h) of packed (R, D/4); its statistics sit at row f*H + h (keys:
    BS tokens share a block's row, W = D, G = 1; values: BS = 1, one row per token-head, W = ng)."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # (BR,)
    cols = tl.arange(0, BLOCK_D)  # (BD,)
    m = (rows[:, None] < R) & (cols[None, :] < D)
    byte = tl.load(packed_ptr + rows[:, None] * (D // 4) + cols[None, :] // 4, mask=m, other=0).to(tl.int32)
    code = ((byte >> ((cols % 4) * 2)[None, :]) & 3).to(tl.float32)  # (BR, BD) in [0, 3]
    stat_row = (rows // (BS * H)) * H + rows % H  # (BR,)
    stat = stat_row[:, None] * W + cols[None, :] // G
    scale = tl.load(scale_ptr + stat, mask=m, other=0.0).to(tl.float32)
    lo = tl.load(lo_ptr + stat, mask=m, other=0.0).to(tl.float32)
    tl.store(out_ptr + rows[:, None] * D + cols[None, :], code * scale + lo, mask=m)


def _grid(rows: int) -> tuple[int]:
    return (triton.cdiv(rows, BLOCK_R),)


@register("kv_int8_encode", "triton")
def int8_encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, H, D) -> q (N, H, D) int8, scale (N, H, 1) fp16."""
    d = x.shape[-1]
    q = torch.empty(x.shape, dtype=torch.int8, device=x.device)
    scale = torch.empty(*x.shape[:-1], 1, dtype=torch.float16, device=x.device)
    rows = q.numel() // d
    _int8_encode_kernel[_grid(rows)](x.contiguous(), q, scale, rows, d, EPS,
                                     BLOCK_R=BLOCK_R, BLOCK_D=triton.next_power_of_2(d))
    return q, scale


@register("kv_int8_decode", "triton")
def int8_decode(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q (N, H, D) int8, scale (N, H, 1) fp16 -> (N, H, D) fp32."""
    d = q.shape[-1]
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    rows = q.numel() // d
    _int8_decode_kernel[_grid(rows)](q.contiguous(), scale.contiguous(), out, rows, d,
                                     BLOCK_R=BLOCK_R, BLOCK_D=triton.next_power_of_2(d))
    return out


def _kivi_decode(packed, scale, lo, out_shape, bs: int, group: int) -> torch.Tensor:
    d = out_shape[-1]
    heads = out_shape[-2]
    out = torch.empty(out_shape, dtype=torch.float32, device=packed.device)
    rows = out.numel() // d
    _kivi_decode_kernel[_grid(rows)](packed.contiguous(), scale.contiguous(), lo.contiguous(), out,
                                     rows, d, bs, heads, group, d // group,
                                     BLOCK_R=BLOCK_R, BLOCK_D=triton.next_power_of_2(d))
    return out


@register("kv_kivi_keys_decode", "triton")
def kivi_keys_decode(packed: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """packed (F, BS, H, D/4), scale/lo (F, H, D) fp16 -> (F, BS, H, D) fp32."""
    f, bs, h, quarter = packed.shape
    return _kivi_decode(packed, scale, lo, (f, bs, h, 4 * quarter), bs, 1)


@register("kv_kivi_values_decode", "triton")
def kivi_values_decode(packed: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """packed (N, H, D/4), scale/lo (N, H, ng) fp16 -> (N, H, D) fp32."""
    n, h, quarter = packed.shape
    d = 4 * quarter
    return _kivi_decode(packed, scale, lo, (n, h, d), 1, d // scale.shape[-1])
