"""Fast CPU KV-cache ops: attention over RVQ codes (never decoding the cache) and KIVI-2bit unpacking.

KIVI: one (256, 4) table lookup per packed byte instead of four shift-and-mask passes.

Scores: q·k_t = rms_t * Σ_{g,s} (q_g · codebook_s)[code_{t,g,s}]: one (Hq, ng, S, C) table per query,
then a gather-sum over the T tokens' codes.  Values: Σ_t p_t v_t = unperm(Σ_{g,s} A[g,s,:] @
codebook_s) with A[g,s,c] = Σ_t p_t rms_t [code_{t,g,s} = c], a scatter-add over the codes.
Cost per token is S*ng gathers instead of S*D decode work plus a D-wide dot product.
"""

from __future__ import annotations

import torch

from presso.kernels.registry import register


def _head_codes(codes: torch.Tensor, rep: int) -> torch.Tensor:
    """(T, Hkv, ng, S) -> (Hq, ng*S, T) long, each query head reading its KV head's codes."""
    t, hkv, ng, s = codes.shape
    return codes.long().repeat_interleave(rep, 1).reshape(t, hkv * rep, ng * s).permute(1, 2, 0)


def rvq_scores(q: torch.Tensor, codes: torch.Tensor, rms: torch.Tensor, books: torch.Tensor,
               perm: torch.Tensor) -> torch.Tensor:
    """q (Hq, D), codes (T, Hkv, ng, S), rms (T, Hkv, 1) -> q·k (Hq, T) fp32."""
    stages, entries, group = books.shape
    hq = q.shape[0]
    rep = hq // codes.shape[1]
    qg = q.float()[:, perm].view(hq, -1, group)  # (Hq, ng, G)
    table = torch.einsum("hgd,scd->hgsc", qg, books).reshape(hq, -1, entries)  # (Hq, ng*S, C)
    picked = table.gather(2, _head_codes(codes, rep))  # (Hq, ng*S, T)
    return picked.sum(1) * rms.float()[:, :, 0].repeat_interleave(rep, 1).t()


def rvq_weighted_sum(p: torch.Tensor, codes: torch.Tensor, rms: torch.Tensor, books: torch.Tensor,
                     perm: torch.Tensor) -> torch.Tensor:
    """p (Hq, T) attention probabilities -> Σ_t p_t v_t (Hq, D) fp32."""
    stages, entries, group = books.shape
    hq, t = p.shape
    rep = hq // codes.shape[1]
    ng = codes.shape[2]
    w = p.float() * rms.float()[:, :, 0].repeat_interleave(rep, 1).t()  # (Hq, T)
    idx = _head_codes(codes, rep)  # (Hq, ng*S, T)
    acc = torch.zeros(hq, ng * stages, entries)
    acc.scatter_add_(2, idx, w.unsqueeze(1).expand(-1, ng * stages, -1))
    acc = acc.view(hq, ng, stages, entries)
    y = torch.einsum("hgsc,scd->hgd", acc, books).reshape(hq, -1)  # (Hq, D) permuted
    out = torch.empty_like(y)
    out[:, perm] = y
    return out


@register("kv_rvq_attend", "cpu")
def rvq_attend(q: torch.Tensor, k_codes, k_rms, v_codes, v_rms, k_books, v_books, k_perm, v_perm,
               scale: float) -> torch.Tensor:
    """One query position over T cached tokens from codes only: q (Hq, D) -> (Hq, D) fp32."""
    p = (rvq_scores(q, k_codes, k_rms, k_books, k_perm) * scale).softmax(-1)
    return rvq_weighted_sum(p, v_codes, v_rms, v_books, v_perm)


_NIBBLES = ((torch.arange(256)[:, None] >> torch.tensor([0, 2, 4, 6])) & 3).float()  # (256, 4) fp32


def _unpack2_float(packed: torch.Tensor) -> torch.Tensor:
    """(..., D/4) uint8 -> (..., D) fp32 codes via the byte table."""
    return _NIBBLES[packed.long()].flatten(-2)


@register("kv_kivi_keys_decode", "cpu")
def kivi_keys_decode(packed: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """packed (F, BS, H, D/4), scale/lo (F, H, D) fp16 -> (F, BS, H, D) fp32."""
    return torch.addcmul(lo.float().unsqueeze(1), _unpack2_float(packed), scale.float().unsqueeze(1))


@register("kv_kivi_values_decode", "cpu")
def kivi_values_decode(packed: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """packed (N, H, D/4), scale/lo (N, H, ng) fp16 -> (N, H, D) fp32."""
    codes = _unpack2_float(packed).unflatten(-1, (scale.shape[-1], -1))  # (N, H, ng, G)
    return torch.addcmul(lo.float().unsqueeze(-1), codes, scale.float().unsqueeze(-1)).flatten(-2)
