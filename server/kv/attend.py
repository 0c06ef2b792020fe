"""Read-then-attend for compressed KV codecs: the default attention of every non-plain codec.

A codec that cannot attend on its pages directly reads them back as float K/V and attends in fp32:
all decode rows at once (`decode_rows`: one read of the blocks the rows use, padded to the longest row,
one masked attention), each prefill span on its own. Codecs that store keys before RoPE are read
through `rotated_reader`, which rotates every key to its position. A sliding-window layer (window W)
reads only the blocks holding each row's last W positions (block-aligned), so blocks out of the window
are never touched and may already be freed.
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
# (Bd, L, Hkv, D) K/V, edited in place; (Bd,) position of each row's column 0
Overlay = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def rotated_reader(codec: KVCodec, rope: Rope) -> Callable:
    """codec.read for pre-RoPE codecs: n keys from block table `table`, whose first block starts at
    position `first` (0 unless a sliding window skipped earlier blocks), rotated to their positions."""
    def read(pages, table, n, first: int = 0):
        kk, vv = codec.read(pages, table, n)  # (n, Hkv, D) pre-RoPE keys
        return rope(kk, torch.arange(first, first + n, device=kk.device)), vv
    return read


def decode_rows(q: torch.Tensor, codec: KVCodec, rope: Rope | None, pages: dict[str, torch.Tensor],
                batch: PagedBatch, scale: float, overlay: Overlay | None = None, window: int = 0,
                softcap: float = 0.0) -> torch.Tensor:
    """Every decode row at once: one codec read over the blocks the rows use (with a window W, only the
    blocks holding each row's last W positions), each row's blocks packed from column 0 and padded to the
    longest row, keys rotated for pre-RoPE codecs, `overlay` (an exact window) written over the decoded
    values, then one masked attention. q (Bd, H, D) -> (Bd, H, D) fp32. A per-row loop costs ~20 small
    ops per row per layer, which dominated at batch 32."""
    tables = batch.decode_block_tables  # (Bd, MB)
    bd, mb = tables.shape
    bs = batch.block_size
    lens = batch.decode_context_lens  # (Bd,)
    end = (lens + bs - 1) // bs  # (Bd,) one past each row's last block
    first = (lens - window).clamp(min=0) // bs if window else torch.zeros_like(lens)  # (Bd,) first block read
    count = end - first
    cols = torch.arange(int(count.max()), device=tables.device)  # (MBw,)
    used = cols[None, :] < count[:, None]  # (Bd, MBw)
    block_col = (first[:, None] + cols[None, :]).clamp(max=mb - 1)  # (Bd, MBw) column of the block table
    # only the blocks each row uses are read (decode work follows the real lengths, not the longest row)
    kk, vv = codec.read(pages, tables.gather(1, block_col)[used], int(used.sum()) * bs)  # (nb*BS, Hkv, D) fp32
    offs = torch.arange(bs, device=tables.device)
    if codec.pre_rope:
        kk = rope(kk, (block_col[used][:, None] * bs + offs).flatten())
    k_all = kk.new_zeros(bd, len(cols), bs, *kk.shape[1:])  # (Bd, MBw, BS, Hkv, D): padding stays 0, masked
    v_all = vv.new_zeros(bd, len(cols), bs, *vv.shape[1:])
    k_all[used] = kk.reshape(-1, bs, *kk.shape[1:])
    v_all[used] = vv.reshape(-1, bs, *vv.shape[1:])
    kk, vv = k_all.flatten(1, 2), v_all.flatten(1, 2)  # (Bd, L, Hkv, D)
    pos = (block_col[:, :, None] * bs + offs).flatten(1)  # (Bd, L) position of each column
    valid = used.repeat_interleave(bs, 1) & (pos < lens[:, None])
    if window:
        valid &= pos >= (lens - window)[:, None]  # the query at t = n - 1 sees s > t - W
    if overlay is not None:
        overlay(kk, vv, first * bs)
    return attend_padded(q, kk, vv, valid[:, None, None, :], scale, softcap)
