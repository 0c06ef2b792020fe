"""Paged attention layer: write this step's K/V into the layer's pages, then attend.

Plain codecs (pages hold the values) go through the kernel dispatcher (`paged_attention`: the fast CPU
path or the reference); any other codec takes the reference path: codec.read (gather + dequant) per
sequence, then causal softmax attention, except decode rows of codecs with `attend_decode` (RVQ), which
attend on the codes directly. With an exact recent window (pages `win_k`/`win_v`) each sequence's last
W positions are read exactly and older ones as the codec stored them (server/kv/window.py). Codecs that
code keys before RoPE get k_proj's output and the layer rotates every key it reads back. Sits between
a model's qkv projection and its output projection.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from presso.kernels.attention.reference import attend_one
from presso.kernels.attention.types import PagedBatch
from presso.server.kv import window
from presso.server.kv.codecs import KVCodec

Rope = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (n, H, D) keys, (n,) positions -> rotated keys


def paged_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, codec: KVCodec,
                    pages: dict[str, torch.Tensor], batch: PagedBatch, scale: float, kernel,
                    k_pre: torch.Tensor | None = None, rope: Rope | None = None) -> torch.Tensor:
    """q (T, H, D), k/v (T, Hkv, D) of this step -> attention output (T, H, D).

    `kernel` is the dispatcher's `paged_attention` for plain pages (resolved once by the model). Codecs
    that store keys before RoPE get `k_pre` (T, Hkv, D) and rotate what they read with `rope`.
    """
    if codec.pre_rope:
        assert k_pre is not None and rope is not None, "pre-RoPE keys need the model's rotary embedding"
        codec.write(pages, batch.slot_mapping, k_pre, v)
        read = _rotated_reader(codec, rope)
    else:
        codec.write(pages, batch.slot_mapping, k, v)
        read = codec.read
    if codec.plain:
        return kernel(q, pages["k"], pages["v"], batch, scale)
    if "win_k" in pages:
        return windowed_attention(q, k, v, read, pages, batch, scale)
    return decoded_attention(q, codec, read, pages, batch, scale)


def _rotated_reader(codec: KVCodec, rope: Rope) -> Callable:
    def read(pages, table, n):
        kk, vv = codec.read(pages, table, n)  # (n, Hkv, D) pre-RoPE keys
        return rope(kk, torch.arange(n)), vv
    return read


def decoded_attention(q, codec: KVCodec, read: Callable, pages, batch: PagedBatch, scale: float) -> torch.Tensor:
    """The reference path for every codec: read each sequence back as float K/V, then attend."""
    out = torch.empty_like(q)
    # codecs that score queries on their codes (post-RoPE keys only: a pre-RoPE key depends on its position)
    in_code_space = None if codec.pre_rope else getattr(codec, "attend_decode", None)
    for i in range(batch.num_decodes):
        table, n = batch.decode_block_tables[i], int(batch.decode_context_lens[i])
        if in_code_space is not None:
            out[i] = in_code_space(q[i], pages, table, n, scale).to(q.dtype)
            continue
        kk, vv = read(pages, table, n)
        out[i:i + 1] = attend_one(q[i:i + 1], kk, vv, scale)
    for span in batch.prefills:
        kk, vv = read(pages, span.block_table, span.ctx_len)
        rows = slice(span.start, span.start + span.q_len)
        out[rows] = attend_one(q[rows], kk, vv, scale)
    return out


def windowed_attention(q, k, v, read: Callable, pages, batch: PagedBatch, scale: float) -> torch.Tensor:
    """Codec pages plus an exact recent window (server/kv/window.py): per sequence, the last W positions
    before each query exactly, older ones as stored; then this step's tokens go into the ring."""
    out = torch.empty_like(q)
    seqs = [(slice(i, i + 1), batch.decode_block_tables[i], int(batch.decode_context_lens[i]),
             batch.decode_window_slots[i]) for i in range(batch.num_decodes)]
    seqs += [(slice(s.start, s.start + s.q_len), s.block_table, s.ctx_len, s.window_slot) for s in batch.prefills]
    for rows, table, n, slot in seqs:
        n0 = n - (rows.stop - rows.start)  # tokens cached before this step
        kk, vv = read(pages, table, n)
        out[rows] = window.attend(q[rows], kk, vv, k[rows], v[rows], pages, slot, n0, scale).to(q.dtype)
    for rows, _, n, slot in seqs:  # after every read: the ring holds positions before this step
        window.update(pages, slot, n - (rows.stop - rows.start), k[rows], v[rows])
    return out
