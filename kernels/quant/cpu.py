"""Fast CPU `wq_linear`: torch's packed int8 / int4 weight-only matmuls with bf16 activations.

Measured on this machine (DESIGN.md): with bf16 activations `_weight_int8pack_mm` is ~3x and
`_weight_int4pack_mm_for_cpu` ~1.8x faster than an fp32 matmul at batch 1; with fp32 activations they
are much slower, so fp32 (and fp16) activations get a dequantized dense weight instead.
int4 maps (q - z)*s to torch's (u - 8)*s + zf with u = q + 8 and zf = -z*s. int8 runs as two int4
planes through the same kernel: q = 16*hi + lo with hi = floor(q/16) in [-8, 8) and lo in [0, 16), so
s*(q - z) = (hi+8 - 8)*16s + (lo - 8)*s + (8 - z)*s: the high plane's scale is 16s (exact in bf16), the low
plane's zero (8 - z)*s. Measured here (1 thread, weights streamed from DRAM as in a decode step): two int4
passes over the same bytes are 1.3-1.8x faster than `_weight_int8pack_mm` (SmolLM2 3072x576 layers,
49152x576 head) for one activation row, whose M=1 loop does not keep up with memory; at 8 rows they were
~5 % slower, so only single rows take the planes (batch-1 decode: engine 1.13-1.36x on the int8 checkpoint).
Elsewhere, and where K has no int4 group size, the int8 kernel runs (asymmetric: y = s*(x @ q.T) - sum(x) * s*z). An act-order g_idx becomes one permutation.
The packed kernels cost grows linearly with the number of activation rows while a dense bf16 GEMM does
not, so batches above envs.cpu_packed_max_rows() use a bf16 dequantized copy made on first use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from presso.kernels import envs
from presso.kernels.quant.reference import dequantize, group_index, unpack_int32
from presso.kernels.quant.types import QuantizedWeight
from presso.kernels.registry import register

INT4_GROUPS = (256, 128, 64, 32)


def _int4_group(qw: QuantizedWeight, perm_ok: bool) -> int | None:
    """The torch int4 group size to use (one that divides the checkpoint's), or None if unsupported."""
    span = qw.group_size or qw.in_features
    if qw.num_bits > 4 or not perm_ok:
        return None
    return next((g for g in INT4_GROUPS if span % g == 0 and qw.in_features % g == 0), None)


def _act_order_perm(qw: QuantizedWeight) -> tuple[torch.Tensor | None, bool]:
    """(perm, ok): the permutation making g_idx groups contiguous (None if already), ok if it exists."""
    if qw.g_idx is None:
        return None, True
    g = qw.g_idx.to(torch.long)
    perm = torch.argsort(g, stable=True)
    ok = qw.group_size is not None and bool((g[perm] == torch.arange(qw.in_features) // qw.group_size).all())
    trivial = bool((perm == torch.arange(qw.in_features)).all())
    return (None if trivial else perm), ok


@register("wq_linear", "cpu")
class CpuLinear:
    def __init__(self, qw: QuantizedWeight, act_dtype: torch.dtype):
        self.mode = "dense"
        self.perm = None
        self.out_features = qw.out_features
        self.dense = None  # (N, K) bf16 copy for batches above max_rows
        self.max_rows = envs.cpu_packed_max_rows()
        if act_dtype == torch.bfloat16 and qw.num_bits == 8 and qw.num_groups == 1:
            self._init_int8(qw)
            if self.group is not None:
                self._init_int8_planes(qw)
            return
        perm, ok = _act_order_perm(qw)
        group = _int4_group(qw, ok) if act_dtype == torch.bfloat16 else None
        if group is not None:
            self._init_int4(qw, perm, group)
            return
        self.weight = dequantize(qw).to(act_dtype)  # (N, K)

    def _init_int8(self, qw: QuantizedWeight) -> None:
        self.mode = "int8"
        fits = qw.out_features % 16 == 0  # torch's int4 packing needs N in multiples of 16
        self.group = next((g for g in INT4_GROUPS if fits and qw.in_features % g == 0), None)
        self.q = unpack_int32(qw.packed, 8, qw.in_features).contiguous()  # (N, K) int8
        scale = qw.scale.float()[:, 0]  # (N,)
        self.scale = scale.to(torch.bfloat16)
        zero = qw.zero
        self.zs = None if zero is None else (scale * zero.float()[:, 0]).to(torch.bfloat16)  # (N,)
        if self.max_rows:
            zf = 0.0 if zero is None else zero.float()
            self.dense = ((self.q.float() - zf) * qw.scale.float()).to(torch.bfloat16)

    def _init_int8_planes(self, qw: QuantizedWeight) -> None:
        """The int8 weight as two int4pack planes (hi, lo) with per-group scales/zeros (module docstring)."""
        self.mode = "int8x2"  # one row: the planes; more rows: the int8 kernel (self.q kept)
        q = self.q.to(torch.int32)  # (N, K) in [-128, 128)
        hi = torch.div(q, 16, rounding_mode="floor")  # (N, K) in [-8, 8)
        lo = q - 16 * hi  # (N, K) in [0, 16)
        s = qw.scale.float()  # (N, 1)
        z = torch.zeros_like(s) if qw.zero is None else qw.zero.float()
        groups = qw.in_features // self.group

        def scales_zeros(scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:  # (K/group, N, 2) bf16
            return torch.stack([scale.expand(-1, groups).t(), zero.expand(-1, groups).t()], -1).to(torch.bfloat16)

        self.planes = (
            (torch.ops.aten._convert_weight_to_int4pack_for_cpu((hi + 8).contiguous(), 1),
             scales_zeros(16 * s, torch.zeros_like(s)).contiguous()),
            (torch.ops.aten._convert_weight_to_int4pack_for_cpu(lo.contiguous(), 1),
             scales_zeros(s, (8 - z) * s).contiguous()),
        )

    def _init_int4(self, qw: QuantizedWeight, perm: torch.Tensor | None, group: int) -> None:
        self.mode = "int4"
        self.group = group
        k = qw.in_features
        q = unpack_int32(qw.packed, qw.num_bits, k).to(torch.int32) + 8  # (N, K) in [0, 16)
        g = group_index(qw)  # (K,)
        zero = qw.zero
        if perm is not None:
            q, g = q[:, perm], g[perm]
            self.perm = perm
        cols = g[torch.arange(0, k, group)]  # (K/group,) checkpoint group of each torch group
        scale = qw.scale.float()[:, cols]  # (N, K/group)
        zf = torch.zeros_like(scale) if zero is None else -zero.float()[:, cols] * scale
        if self.max_rows:  # same permuted column order as q: x is permuted before either matmul
            full_zero = 0.0 if zero is None else zero.float()[:, g]
            self.dense = ((q.float() - 8 - full_zero) * qw.scale.float()[:, g]).to(torch.bfloat16)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.contiguous(), 1)
        self.scales_zeros = torch.stack([scale.t(), zf.t()], dim=-1).to(torch.bfloat16).contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "dense":
            return F.linear(x, self.weight)
        shape = x.shape
        x2 = x if x.dim() == 2 and x.dtype == torch.bfloat16 else x.reshape(-1, shape[-1]).to(torch.bfloat16)
        if self.perm is not None:
            x2 = x2[:, self.perm]
        if self.dense is not None and x2.shape[0] > self.max_rows:
            y = F.linear(x2, self.dense)
        elif self.mode == "int8x2" and x2.shape[0] == 1:
            x2 = x2.contiguous()
            (hi, hi_sz), (lo, lo_sz) = self.planes
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2, hi, self.group, hi_sz)
            y = y + torch.ops.aten._weight_int4pack_mm_for_cpu(x2, lo, self.group, lo_sz)
        elif self.mode in ("int8", "int8x2"):
            y = torch.ops.aten._weight_int8pack_mm(x2, self.q, self.scale)  # (M, N)
            if self.zs is not None:
                y = y - x2.float().sum(-1, keepdim=True).to(torch.bfloat16) * self.zs
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2.contiguous(), self.packed, self.group,
                                                           self.scales_zeros)
        if x.dim() == 2 and x.dtype == torch.bfloat16:
            return y
        return y.to(x.dtype).reshape(*shape[:-1], self.out_features)
