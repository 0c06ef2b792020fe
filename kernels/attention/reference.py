"""Reference paged attention: for each sequence, gather its pages, then plain causal softmax attention.

The spec the fast paths are tested against. Pages are (num_blocks, block_size, Hkv, D) tensors holding
the values themselves (bf16/fp16/fp32 codecs); a sequence's token t lives at page block_table[t // bs],
row t % bs. Queries are the last q_len positions of a sequence of ctx_len tokens; grouped-query heads
share KV head h // (H / Hkv). A sliding window W lets a query at t see keys s with t - W < s <= t;
soft-capping (Gemma 2) maps each score x to cap * tanh(x / cap) before the mask.
"""

from __future__ import annotations

import torch

from presso.kernels.attention.types import PagedBatch
from presso.kernels.registry import register


def gather_pages(cache: torch.Tensor, block_table: torch.Tensor, ctx_len: int) -> torch.Tensor:
    """(ctx_len, Hkv, D) tokens of one sequence from (NB, BS, Hkv, D) pages."""
    return cache[block_table].flatten(0, 1)[:ctx_len]


def softcap_scores(scores: torch.Tensor, softcap: float) -> torch.Tensor:
    """cap * tanh(scores / cap) (Gemma 2's attention logit soft-capping); unchanged when cap is 0."""
    return torch.tanh(scores / softcap) * softcap if softcap else scores


def visible(n_q: int, n_l: int, window: int = 0, device=None) -> torch.Tensor:
    """(Q, L) bool: the last Q of L positions see keys s <= t, and s > t - window when window > 0."""
    q_pos = torch.arange(n_l - n_q, n_l, device=device)[:, None]
    s = torch.arange(n_l, device=device)[None, :]
    ok = s <= q_pos
    return ok & (s > q_pos - window) if window else ok


def attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, window: int = 0,
               softcap: float = 0.0) -> torch.Tensor:
    """q (Q, H, D) are the last Q of the L positions in k, v (L, Hkv, D); fp32 math, causal (and windowed)."""
    n_q, n_h, _ = q.shape
    n_l, n_kv, _ = k.shape
    rep = n_h // n_kv
    k = k.float().repeat_interleave(rep, dim=1)  # (L, H, D)
    v = v.float().repeat_interleave(rep, dim=1)
    scores = softcap_scores(torch.einsum("qhd,lhd->hql", q.float(), k) * scale, softcap)  # (H, Q, L)
    scores = scores.masked_fill(~visible(n_q, n_l, window, q.device), float("-inf"))
    out = torch.einsum("hql,lhd->qhd", scores.softmax(-1), v)  # (Q, H, D)
    return out.to(q.dtype)


@register("paged_attention", "reference")
def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: PagedBatch,
                    scale: float, window: int = 0, softcap: float = 0.0) -> torch.Tensor:
    """q (T, H, D) -> (T, H, D); the batch's K/V are already written into the pages."""
    out = torch.empty_like(q)
    for i in range(batch.num_decodes):
        n = int(batch.decode_context_lens[i])
        table = batch.decode_block_tables[i]
        k, v = gather_pages(k_cache, table, n), gather_pages(v_cache, table, n)
        out[i:i + 1] = attend_one(q[i:i + 1], k, v, scale, window, softcap)
    for span in batch.prefills:
        k = gather_pages(k_cache, span.block_table, span.ctx_len)
        v = gather_pages(v_cache, span.block_table, span.ctx_len)
        rows = slice(span.start, span.start + span.q_len)
        out[rows] = attend_one(q[rows], k, v, scale, window, softcap)
    return out
