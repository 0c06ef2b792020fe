"""Trainable stand-ins for compressed Linears: the student's forward dequantizes on the fly.

Each module keeps its format's discrete part frozen (integer codes, AQLM code indices, sparsity mask)
as a buffer and exposes only what the format can store back unchanged in size as nn.Parameters:
  GroupQuantLinear  pack-quantized int2..int8: per-group `scale` (+ `zero` as a float, rounded in the
                    forward with a straight-through gradient so what trains is what gets exported)
  CodebookLinear    AQLM: `codebooks` and per-row `scales` (codes frozen)
  MaskedLinear      sparse unquantized: the kept values of `weight` (mask frozen; pruned entries get no
                    gradient because the forward multiplies by the mask)
distill/student.py builds them from checkpoint tensors; distill/export.py reads the parameters back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from presso.kernels.aqlm.reference import unsigned_codes


class GroupQuantLinear(torch.nn.Module):
    """W = (q - round(zero)) * scale, groups of `group` input columns (or g_idx) per scale."""

    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int,
                 g_idx: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        out_features, in_features = codes.shape
        self.in_features, self.out_features, self.bits = in_features, out_features, bits
        self.register_buffer("codes", codes.to(torch.int8))  # (out, in) int8, signed range of `bits`
        if g_idx is None:  # contiguous groups: column j -> group j // group_size
            group = -(-in_features // scale.shape[1])
            g_idx = torch.arange(in_features) // group
        self.register_buffer("g_idx", g_idx.long())  # (in,) int64
        self.scale = torch.nn.Parameter(scale.float().clone())  # (out, G) fp32
        self.zero = None if zero is None else torch.nn.Parameter(zero.float().clone())  # (out, G) fp32
        self.register_buffer("bias", None if bias is None else bias.float().clone())

    def rounded_zero(self) -> torch.Tensor | None:
        """(out, G) zero points on the integer grid, as stored at export."""
        if self.zero is None:
            return None
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return self.zero.detach().round().clamp(lo, hi)

    def weight(self) -> torch.Tensor:
        q = self.codes.float()  # (out, in)
        if self.zero is not None:  # straight-through rounding: forward on the grid, gradient as identity
            zero = self.zero + (self.rounded_zero() - self.zero).detach()
            q = q - zero[:, self.g_idx]
        return q * self.scale[:, self.g_idx]  # (out, in) fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class CodebookLinear(torch.nn.Module):
    """AQLM (out_group 1): W[n, 8g:8g+8] = scales[n] * sum_m codebooks[m, codes[n, g, m]]."""

    def __init__(self, codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__()
        num_out, groups, _ = codes.shape
        nbits = codebooks.shape[1].bit_length() - 1
        self.in_features, self.out_features = groups * codebooks.shape[3], num_out
        # (M, out, G) int64 row indices into each codebook; frozen
        self.register_buffer("index", unsigned_codes(codes, nbits).permute(2, 0, 1).contiguous())
        self.codebooks = torch.nn.Parameter(codebooks.float().clone())  # (M, C, 1, in_group) fp32
        self.scales = torch.nn.Parameter(scales.float().clone())  # (out, 1, 1, 1) fp32
        self.register_buffer("bias", None if bias is None else bias.float().clone())

    def weight(self) -> torch.Tensor:
        books = self.codebooks[:, :, 0, :]  # (M, C, in_group)
        blocks = sum(books[m][self.index[m]] for m in range(books.shape[0]))  # (out, G, in_group)
        return blocks.reshape(self.out_features, self.in_features) * self.scales.view(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class MaskedLinear(torch.nn.Module):
    """W = weight * mask: only the kept entries train; the mask (out, in) bool never changes."""

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("mask", mask.bool().clone())  # (out, in) bool
        self.weight = torch.nn.Parameter((weight.float() * self.mask).clone())  # (out, in) fp32
        self.register_buffer("bias", None if bias is None else bias.float().clone())

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.masked_weight().to(x.dtype)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))
