"""Paged attention layer: write this step's K/V into the layer's pages, then attend.

Plain codecs (pages hold the values) go through the kernel dispatcher (`paged_attention`: the fast CPU
path or the reference); any other codec takes the reference path: codec.read (gather + dequant) per
sequence, then causal softmax attention, except decode rows of codecs with `attend_decode` (RVQ), which
attend on the codes directly. Sits between a model's qkv projection and its output projection.
"""

from __future__ import annotations

import torch

from presso.kernels.attention.reference import attend_one
from presso.kernels.attention.types import PagedBatch
from presso.server.kv.codecs import KVCodec


def paged_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, codec: KVCodec,
                    pages: dict[str, torch.Tensor], batch: PagedBatch, scale: float, kernel) -> torch.Tensor:
    """q (T, H, D), k/v (T, Hkv, D) of this step -> attention output (T, H, D).

    `kernel` is the dispatcher's `paged_attention` for plain pages (resolved once by the model).
    """
    codec.write(pages, batch.slot_mapping, k, v)
    if codec.plain:
        return kernel(q, pages["k"], pages["v"], batch, scale)
    return decoded_attention(q, codec, pages, batch, scale)


def decoded_attention(q, codec: KVCodec, pages, batch: PagedBatch, scale: float) -> torch.Tensor:
    """The reference path for every codec: read each sequence back as float K/V, then attend."""
    out = torch.empty_like(q)
    in_code_space = getattr(codec, "attend_decode", None)  # codecs that score queries on their codes
    for i in range(batch.num_decodes):
        table, n = batch.decode_block_tables[i], int(batch.decode_context_lens[i])
        if in_code_space is not None:
            out[i] = in_code_space(q[i], pages, table, n, scale).to(q.dtype)
            continue
        kk, vv = codec.read(pages, table, n)
        out[i:i + 1] = attend_one(q[i:i + 1], kk, vv, scale)
    for span in batch.prefills:
        kk, vv = codec.read(pages, span.block_table, span.ctx_len)
        rows = slice(span.start, span.start + span.q_len)
        out[rows] = attend_one(q[rows], kk, vv, scale)
    return out
