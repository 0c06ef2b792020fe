"""Paged attention layer: write this step's K/V into the layer's pages, then attend.

Plain codecs (pages hold the values) go through the kernel dispatcher (`paged_attention`: the fast CPU
path or the reference); any other codec reads its pages back as float K/V (gather + dequant): all
decode rows in one read and one masked attention (the CPU kernel's attend_padded), each prefill span on
its own, except decode rows of codecs with `attend_decode` (RVQ, post-RoPE keys, no window), which
attend on the codes directly. With an exact recent window (pages `win_k`/`win_v`) each sequence's last
W positions are read exactly and older ones as the codec stored them (server/kv/window.py). Codecs that
code keys before RoPE get k_proj's output and the layer rotates every key it reads back. Sits between
a model's qkv projection and its output projection.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from presso.kernels.attention.cpu import attend_padded, decode_mask
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
    else:
        codec.write(pages, batch.slot_mapping, k, v)
    if codec.plain:
        return kernel(q, pages["k"], pages["v"], batch, scale)
    windowed = "win_k" in pages
    out = torch.empty_like(q)
    nd = batch.num_decodes
    # codecs that score queries on their codes (post-RoPE keys only: a pre-RoPE key depends on its position)
    in_code_space = None if codec.pre_rope or windowed else getattr(codec, "attend_decode", None)
    if nd and in_code_space is not None:
        for i in range(nd):
            table, n = batch.decode_block_tables[i], int(batch.decode_context_lens[i])
            out[i] = in_code_space(q[i], pages, table, n, scale).to(q.dtype)
    elif nd:
        out[:nd] = decode_rows(q[:nd], k[:nd], v[:nd], codec, rope, pages, batch, scale).to(q.dtype)
    read = _rotated_reader(codec, rope) if codec.pre_rope else codec.read
    for span in batch.prefills:
        rows = slice(span.start, span.start + span.q_len)
        kk, vv = read(pages, span.block_table, span.ctx_len)
        if windowed:
            n0 = span.ctx_len - span.q_len  # tokens cached before this step
            out[rows] = window.attend(q[rows], kk, vv, k[rows], v[rows], pages, span.window_slot, n0,
                                      scale).to(q.dtype)
        else:
            out[rows] = attend_one(q[rows], kk, vv, scale)
    if windowed:  # after every read: the rings hold positions before this step
        if nd:
            window.update_rows(pages, batch.decode_window_slots, batch.decode_context_lens - 1, k[:nd], v[:nd])
        for span in batch.prefills:
            rows = slice(span.start, span.start + span.q_len)
            window.update(pages, span.window_slot, span.ctx_len - span.q_len, k[rows], v[rows])
    return out


def _rotated_reader(codec: KVCodec, rope: Rope) -> Callable:
    def read(pages, table, n):
        kk, vv = codec.read(pages, table, n)  # (n, Hkv, D) pre-RoPE keys
        return rope(kk, torch.arange(n)), vv
    return read


def decode_rows(q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, codec: KVCodec, rope: Rope | None,
                pages: dict[str, torch.Tensor], batch: PagedBatch, scale: float) -> torch.Tensor:
    """Every decode row at once: one codec read over the blocks the rows use, padded to the longest row,
    keys rotated for pre-RoPE codecs, the exact window (if any) written over the decoded positions, then
    one masked attention. q (Bd, H, D), k_new/v_new (Bd, Hkv, D) this step's post-RoPE K/V ->
    (Bd, H, D) fp32. A per-row loop costs ~20 small ops per row per layer, which dominated at batch 32."""
    tables = batch.decode_block_tables  # (Bd, MB)
    bd, mb = tables.shape
    bs = batch.block_size
    assert bs > 0, "the runner sets PagedBatch.block_size"
    used = torch.arange(mb)[None, :] < ((batch.decode_context_lens + bs - 1) // bs)[:, None]  # (Bd, MB)
    # only the blocks each row uses are read (decode work follows the real lengths, not the longest row)
    kk, vv = codec.read(pages, tables[used], int(used.sum()) * bs)  # (nb*BS, Hkv, D) fp32
    if codec.pre_rope:
        first = torch.arange(mb).expand(bd, mb)[used] * bs  # (nb,) first position of each block read
        kk = rope(kk, (first[:, None] + torch.arange(bs)).flatten())
    length = batch.decode_max_len
    k_all = kk.new_zeros(bd, mb, bs, *kk.shape[1:])  # (Bd, MB, BS, Hkv, D): padding stays 0 and is masked
    v_all = vv.new_zeros(bd, mb, bs, *vv.shape[1:])
    k_all[used] = kk.reshape(-1, bs, *kk.shape[1:])
    v_all[used] = vv.reshape(-1, bs, *vv.shape[1:])
    kk, vv = k_all.flatten(1, 2)[:, :length], v_all.flatten(1, 2)[:, :length]  # (Bd, L, Hkv, D)
    if "win_k" in pages:
        window.overlay(kk, vv, k_new, v_new, pages, batch.decode_window_slots, batch.decode_context_lens - 1)
    return attend_padded(q, kk, vv, decode_mask(batch, bs), scale)
