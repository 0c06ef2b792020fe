"""Fast CPU paged attention: all decode rows in one batched matmul-softmax-matmul, prefills one SDPA each.

Decodes gather their context with one index per K/V into a padded (Bd, L, Hkv, D) tensor with a length
mask; the query's grouped heads become the matmul's rows, (Bd, Hkv, g, D) @ (Bd, Hkv, D, L), so K/V are
never repeated per head. (Measured here: torch's CPU SDPA for one-token queries is ~4x slower than this
at batch 64.) A prefill chunk with no earlier context attends causally to its own
freshly written pages; a later chunk gets an offset causal mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from presso.kernels.attention.types import PagedBatch, index_decodes
from presso.kernels.registry import register


def attend_padded(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                  scale: float) -> torch.Tensor:
    """One-token queries over padded contexts: q (Bd, H, D), k/v (Bd, L, Hkv, D) fp32, mask (Bd, 1, 1, L)
    bool valid positions or None -> (Bd, H, D) fp32. Also the decode path of compressed KV codecs."""
    bd, hkv, d = q.shape[0], k.shape[2], k.shape[3]
    qg = q.float().view(bd, hkv, -1, d)  # (Bd, Hkv, g, D)
    scores = torch.matmul(qg, k.permute(0, 2, 3, 1)) * scale  # (Bd, Hkv, g, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.matmul(scores.softmax(-1), v.transpose(1, 2))  # (Bd, Hkv, g, D)
    return out.view(bd, -1, d)


def _decode(q, k_cache, v_cache, batch: PagedBatch, scale: float) -> torch.Tensor:
    bd = batch.num_decodes
    batch = index_decodes(batch)  # a no-op on the engine's batches (the KV cache's prepare() indexed them)
    slots, mask = batch.decode_slots, batch.decode_mask
    hkv, d = k_cache.shape[2], k_cache.shape[3]
    k = k_cache.view(-1, hkv, d)[slots].float()  # (Bd, L, Hkv, D) fp32: CPU bf16 bmm is ~2x slower
    v = v_cache.view(-1, hkv, d)[slots].float()
    return attend_padded(q[:bd], k, v, mask, scale).to(q.dtype)  # (Bd, H, D)


@register("paged_attention", "cpu")
def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: PagedBatch,
                    scale: float) -> torch.Tensor:
    """q (T, H, D) -> (T, H, D); the batch's K/V are already written into the pages."""
    if not batch.prefills:
        return _decode(q, k_cache, v_cache, batch, scale)
    out = torch.empty_like(q)
    if batch.num_decodes:
        out[: batch.num_decodes] = _decode(q, k_cache, v_cache, batch, scale)
    for span in batch.prefills:
        table = span.block_table
        k = k_cache[table].flatten(0, 1)[: span.ctx_len].transpose(0, 1).to(q.dtype)  # (Hkv, L, D)
        v = v_cache[table].flatten(0, 1)[: span.ctx_len].transpose(0, 1).to(q.dtype)
        qs = q[span.start: span.start + span.q_len].transpose(0, 1)  # (H, Q, D)
        if span.ctx_len == span.q_len:
            o = F.scaled_dot_product_attention(qs, k, v, is_causal=True, scale=scale, enable_gqa=True)
        else:
            q_pos = torch.arange(span.ctx_len - span.q_len, span.ctx_len)[:, None]
            mask = torch.arange(span.ctx_len)[None, :] <= q_pos  # (Q, L)
            o = F.scaled_dot_product_attention(qs, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        out[span.start: span.start + span.q_len] = o.transpose(0, 1)
    return out
