"""Read-then-attend for compressed KV codecs: the default attention of every non-plain codec.

A codec that cannot attend on its pages directly reads them back as float K/V and attends in fp32:
all decode rows at once (`decode_rows`: one read of the blocks the rows use, padded to the longest row,
one masked attention), each prefill span on its own. Codecs that store keys before RoPE are read
through `rotated_reader`, which rotates every key to its position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from presso.kernels.attention.cpu import attend_padded
from presso.kernels.attention.types import PagedBatch

if TYPE_CHECKING:
    from presso.server.kv.codecs import KVCodec

Rope = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (n, Hkv, D) keys, (n,) positions -> rotated keys
Overlay = Callable[[torch.Tensor, torch.Tensor], None]  # (Bd, L, Hkv, D) K/V, edited in place


def rotated_reader(codec: KVCodec, rope: Rope) -> Callable:
    """codec.read for pre-RoPE codecs: the first n keys rotated to positions 0..n-1."""
    def read(pages, table, n):
        kk, vv = codec.read(pages, table, n)  # (n, Hkv, D) pre-RoPE keys
        return rope(kk, torch.arange(n, device=kk.device)), vv
    return read


def decode_rows(q: torch.Tensor, codec: KVCodec, rope: Rope | None, pages: dict[str, torch.Tensor],
                batch: PagedBatch, scale: float, overlay: Overlay | None = None) -> torch.Tensor:
    """Every decode row at once: one codec read over the blocks the rows use, padded to the longest row,
    keys rotated for pre-RoPE codecs, `overlay` (an exact window) written over the decoded values, then
    one masked attention. q (Bd, H, D) -> (Bd, H, D) fp32. The batch comes from KVCache.prepare()
    (decode_mask set). A per-row loop costs ~20 small ops per row per layer, which dominated at batch 32."""
    tables = batch.decode_block_tables  # (Bd, MB)
    bd, mb = tables.shape
    bs = batch.block_size
    blocks = torch.arange(mb, device=tables.device)
    used = blocks[None, :] < ((batch.decode_context_lens + bs - 1) // bs)[:, None]  # (Bd, MB)
    # only the blocks each row uses are read (decode work follows the real lengths, not the longest row)
    kk, vv = codec.read(pages, tables[used], int(used.sum()) * bs)  # (nb*BS, Hkv, D) fp32
    if codec.pre_rope:
        first = blocks.expand(bd, mb)[used] * bs  # (nb,) first position of each block read
        kk = rope(kk, (first[:, None] + torch.arange(bs, device=tables.device)).flatten())
    k_all = kk.new_zeros(bd, mb, bs, *kk.shape[1:])  # (Bd, MB, BS, Hkv, D): padding stays 0 and is masked
    v_all = vv.new_zeros(bd, mb, bs, *vv.shape[1:])
    k_all[used] = kk.reshape(-1, bs, *kk.shape[1:])
    v_all[used] = vv.reshape(-1, bs, *vv.shape[1:])
    length = batch.decode_max_len
    kk, vv = k_all.flatten(1, 2)[:, :length], v_all.flatten(1, 2)[:, :length]  # (Bd, L, Hkv, D)
    if overlay is not None:
        overlay(kk, vv)
    assert batch.decode_slots is not None, "KVCache.prepare() indexes the decode rows once per step"
    return attend_padded(q, kk, vv, batch.decode_mask, scale)
