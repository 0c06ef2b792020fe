"""Reference KV quantizers: the readable spec of the int8, KIVI-2bit and RVQ layouts.

Shapes: tokens x (N, H, D) float.  int8: q (N, H, D) int8 + scale (N, H, 1) fp16 (symmetric, per
token-head).  KIVI-2bit: keys per channel over the tokens of one cache block, values per token over
groups of channels; codes in [0, 3] packed 4 per byte along D (code j in bits 2*(j % 4)) + fp16
scale/min.  RVQ (arXiv 2410.15704): each vector
is divided by its RMS (stored fp16), its channels permuted so group j holds channels j, j+ng, ...
(non-contiguous grouping, used for keys) or left contiguous, cut into ng groups of G channels, and each
group coded by S residual stages of a C-entry codebook shared by all heads and groups of a layer:
codes (N, H, ng, S) uint8 (C <= 256) or int16.
"""

from __future__ import annotations

import torch

from presso.kernels.registry import register

EPS = 1e-6


@register("kv_int8_encode", "reference")
def int8_encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Round the scale to its stored fp16 first, so encode and decode use the very same step.
    scale = (x.float().abs().amax(-1, keepdim=True).clamp_min(EPS) / 127.0).to(torch.float16)  # (N, H, 1)
    q = torch.round(x.float() / scale.float()).clamp(-127, 127).to(torch.int8)
    return q, scale


@register("kv_int8_decode", "reference")
def int8_decode(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()


def kivi_encode(x: torch.Tensor, dim: int, bits: int = 2):
    """Asymmetric `bits`-bit codes with min/max statistics over `dim` (kept as size 1): the token dim of
    a block of keys (KIVI's per-channel keys) or the channel-group dim of values (per-token values).
    Returns codes uint8 in [0, 2**bits - 1], scale and minimum fp16."""
    lo = x.float().amin(dim, keepdim=True)
    hi = x.float().amax(dim, keepdim=True)
    levels = 2**bits - 1
    # Round the statistics to their stored fp16 first, so encode and decode use the very same grid.
    scale = ((hi - lo) / levels).clamp_min(EPS).to(torch.float16)
    lo = lo.to(torch.float16)
    return kivi_codes(x, scale, lo, levels), scale, lo


def kivi_codes(x: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Codes of x on a given grid (broadcast scale/lo), clamped to [0, levels]: uint8."""
    return torch.round((x.float() - lo.float()) / scale.float()).clamp(0, levels).to(torch.uint8)


def kivi_decode(codes: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    return codes.float() * scale.float() + lo.float()


def pack2(codes: torch.Tensor) -> torch.Tensor:
    """(..., D) uint8 codes in [0, 3] -> (..., D/4) uint8, code j in bits 2*(j % 4) of byte j // 4."""
    c = codes.to(torch.uint8).unflatten(-1, (-1, 4))
    return c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)


def unpack2(packed: torch.Tensor) -> torch.Tensor:
    """(..., D/4) uint8 -> (..., D) uint8 codes in [0, 3]."""
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8)
    return ((packed.unsqueeze(-1) >> shifts) & 3).flatten(-2)


@register("kv_kivi_keys_decode", "reference")
def kivi_keys_decode(packed: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """Blocks of keys: packed (F, BS, H, D/4), scale/lo (F, H, D) fp16 -> (F, BS, H, D) fp32."""
    return kivi_decode(unpack2(packed), scale.unsqueeze(1), lo.unsqueeze(1))


@register("kv_kivi_values_decode", "reference")
def kivi_values_decode(packed: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """Tokens of values: packed (N, H, D/4), scale/lo (N, H, ng) fp16 -> (N, H, D) fp32."""
    codes = unpack2(packed).unflatten(-1, (scale.shape[-1], -1))  # (N, H, ng, G)
    return kivi_decode(codes, scale.unsqueeze(-1), lo.unsqueeze(-1)).flatten(-2)


def group_permutation(dim: int, group: int, interleaved: bool) -> torch.Tensor:
    """(D,) channel order: interleaved puts channels j, j+ng, j+2ng, ... in group j (ng = D // G)."""
    if dim % group:
        raise ValueError(f"RVQ group size {group} must divide the head dim {dim}")
    order = torch.arange(dim)
    return order.view(group, dim // group).t().reshape(-1) if interleaved else order


def rvq_normalise(x: torch.Tensor, perm: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, D) -> unit-RMS grouped vectors (N, H, ng, G) fp32 and the RMS (N, H, 1) fp16."""
    rms = x.float().pow(2).mean(-1, keepdim=True).sqrt().clamp_min(EPS).to(torch.float16)
    y = (x.float() / rms.float())[..., perm]
    return y.unflatten(-1, (-1, group)), rms


@register("kv_rvq_encode", "reference")
def rvq_encode(x: torch.Tensor, codebooks: torch.Tensor, perm: torch.Tensor):
    """x (N, H, D), codebooks (S, C, G) fp32, perm (D,) -> codes (N, H, ng, S), rms (N, H, 1) fp16."""
    stages, entries, group = codebooks.shape
    residual, rms = rvq_normalise(x, perm, group)
    codes = []
    for s in range(stages):
        book = codebooks[s]  # (C, G)
        # |r - c|^2 = |r|^2 - 2 r.c + |c|^2; |r|^2 is the same for every c, so it drops out of the argmin
        dist = book.pow(2).sum(-1) - 2 * residual @ book.t()  # (N, H, ng, C)
        idx = dist.argmin(-1)
        residual = residual - book[idx]
        codes.append(idx)
    dtype = torch.uint8 if entries <= 256 else torch.int16
    return torch.stack(codes, -1).to(dtype), rms


@register("kv_rvq_decode", "reference")
def rvq_decode(codes: torch.Tensor, rms: torch.Tensor, codebooks: torch.Tensor, perm: torch.Tensor):
    """codes (N, H, ng, S), rms (N, H, 1) -> x (N, H, D) fp32."""
    stages = codebooks.shape[0]
    y = sum(codebooks[s][codes[..., s].long()] for s in range(stages))  # (N, H, ng, G)
    y = y.flatten(-2)
    out = torch.empty_like(y)
    out[..., perm] = y  # undo the channel permutation
    return out * rms.float()


@register("kv_rvq_attend", "reference")
def rvq_attend(q: torch.Tensor, k_codes, k_rms, v_codes, v_rms, k_books, v_books, k_perm, v_perm,
               scale: float) -> torch.Tensor:
    """One query position over T cached tokens: q (Hq, D) -> (Hq, D) fp32 by decoding K and V."""
    k = rvq_decode(k_codes, k_rms, k_books, k_perm)  # (T, Hkv, D)
    v = rvq_decode(v_codes, v_rms, v_books, v_perm)
    rep = q.shape[0] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)  # (T, Hq, D)
    p = (torch.einsum("hd,thd->ht", q.float(), k) * scale).softmax(-1)  # (Hq, T)
    return torch.einsum("ht,thd->hd", p, v)
