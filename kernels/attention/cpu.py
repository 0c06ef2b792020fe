"""Fast CPU paged attention: all decode rows in one batched matmul-softmax-matmul, prefills one SDPA each.

Decodes gather their context with one index per K/V into a padded (Bd, L, Hkv, D) tensor with a length
mask; the query's grouped heads become the matmul's rows, (Bd, Hkv, g, D) @ (Bd, Hkv, D, L), so K/V are
never repeated per head. (Measured here: torch's CPU SDPA for one-token queries is ~4x slower than this
at batch 64.) A prefill chunk with no earlier context attends causally to its own
freshly written pages; a later chunk gets an offset causal mask. A sliding-window layer (window W)
gathers only each decode row's last W positions and each prefill span's blocks from its first query's
window on; soft-capped scores (Gemma 2) take the explicit fp32 path, as SDPA cannot cap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from presso.kernels.attention import native
from presso.kernels.attention.reference import attend_one, softcap_scores, visible
from presso.kernels.attention.types import PagedBatch, decode_view, window_start
from presso.kernels.registry import register


def attend_padded(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                  scale: float, softcap: float = 0.0) -> torch.Tensor:
    """One-token queries over padded contexts: q (Bd, H, D), k/v (Bd, L, Hkv, D) fp32, mask (Bd, 1, 1, L)
    bool valid positions or None -> (Bd, H, D) fp32. Also the decode path of compressed KV codecs."""
    bd, hkv, d = q.shape[0], k.shape[2], k.shape[3]
    qg = q.float().view(bd, hkv, -1, d)  # (Bd, Hkv, g, D)
    scores = softcap_scores(torch.matmul(qg, k.permute(0, 2, 3, 1)) * scale, softcap)  # (Bd, Hkv, g, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.matmul(scores.softmax(-1), v.transpose(1, 2))  # (Bd, Hkv, g, D)
    return out.view(bd, -1, d)


def _decode(q, k_cache, v_cache, batch: PagedBatch, scale: float, window: int, softcap: float) -> torch.Tensor:
    bd = batch.num_decodes
    slots, mask = decode_view(batch, window)  # precomputed by the KV cache's prepare() on engine batches
    if native.usable(q, k_cache):  # reads K/V in place from the pages (kernels/native/paged_decode.c)
        return native.decode(q[:bd], k_cache, v_cache, slots, mask, scale, softcap).to(q.dtype)
    hkv, d = k_cache.shape[2], k_cache.shape[3]
    k = k_cache.view(-1, hkv, d)[slots].float()  # (Bd, L, Hkv, D) fp32: CPU bf16 bmm is ~2x slower
    v = v_cache.view(-1, hkv, d)[slots].float()
    return attend_padded(q[:bd], k, v, mask, scale, softcap).to(q.dtype)  # (Bd, H, D)


@register("paged_attention", "cpu")
def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: PagedBatch,
                    scale: float, window: int = 0, softcap: float = 0.0) -> torch.Tensor:
    """q (T, H, D) -> (T, H, D); the batch's K/V are already written into the pages."""
    if not batch.prefills:
        return _decode(q, k_cache, v_cache, batch, scale, window, softcap)
    out = torch.empty_like(q)
    if batch.num_decodes:
        out[: batch.num_decodes] = _decode(q, k_cache, v_cache, batch, scale, window, softcap)
    bs = k_cache.shape[1]
    for span in batch.prefills:
        lo = window_start(span.ctx_len, span.q_len, window, bs)  # block-aligned first position read
        table = span.block_table[lo // bs:]
        n = span.ctx_len - lo
        rows = slice(span.start, span.start + span.q_len)
        if softcap:
            out[rows] = attend_one(q[rows], k_cache[table].flatten(0, 1)[:n], v_cache[table].flatten(0, 1)[:n],
                                   scale, window, softcap)
            continue
        k = k_cache[table].flatten(0, 1)[:n].transpose(0, 1).to(q.dtype)  # (Hkv, L, D)
        v = v_cache[table].flatten(0, 1)[:n].transpose(0, 1).to(q.dtype)
        qs = q[rows].transpose(0, 1)  # (H, Q, D)
        if n == span.q_len and not window:
            o = F.scaled_dot_product_attention(qs, k, v, is_causal=True, scale=scale, enable_gqa=True)
        else:
            mask = visible(span.q_len, n, window, q.device)  # (Q, L)
            o = F.scaled_dot_product_attention(qs, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        out[rows] = o.transpose(0, 1)
    return out
