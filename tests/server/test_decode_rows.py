"""Batched decode over compressed KV pages (a codec's attend_decodes: server/kv/attend.decode_rows, with the
window's overlay) against its readable twin, the per-sequence path: read one sequence back, then attend_one
(or window.attend with an exact recent window). Rows of different lengths, padding blocks, pre-RoPE keys, windows shorter and longer than
a sequence, for every non-plain codec."""

from __future__ import annotations

import pytest
import torch

from presso.kernels.attention.reference import attend_one
from presso.kernels.attention.types import PagedBatch
from presso.server.kv import window
from presso.server.kv.attend import rotated_reader
from presso.server.kv.cache import KVCache
from presso.server.layers.rotary import Rotary, apply_rotary

HKV, D, H, BS = 2, 16, 4, 4
LENS = [5, 11, 17, 1]  # tokens cached per row, the current one included


@pytest.mark.parametrize("codec_name,books,win", [
    ("int8", None, 0), ("kivi2", None, 0), ("int8", None, 6), ("kivi2", None, 3),
    ("rvq", "post", 6), ("rvq", "pre", 0), ("rvq", "pre", 8), ("rvq", "post", 32)])
def test_decode_rows_equal_the_per_sequence_path(codec_name, books, win, kv_model_dir, kv_prerope_dir):
    model_dir = {"post": kv_model_dir, "pre": kv_prerope_dir, None: None}[books]
    g = torch.Generator().manual_seed(0)
    kv = KVCache(codec_name, 1, HKV, D, BS, 0, model_dir=model_dir, num_blocks=24, window=win, max_seqs=6)
    codec, pages = kv.layers[0].codec, kv.layers[0].pages
    assert codec.pre_rope == (books == "pre")
    rotary = Rotary({"rope_theta": 10000.0}, D)

    def rope(x, positions):
        return apply_rotary(x.float(), *rotary.cos_sin(positions, torch.float32))

    tables, free = [], list(range(23, -1, -1))  # blocks handed out in a scrambled order
    for n in LENS:
        table = torch.tensor([free.pop(3 % len(free)) for _ in range((n + BS - 1) // BS)])
        tables.append(table)
        pos = torch.arange(n)
        codec.write(pages, table[pos // BS] * BS + pos % BS, torch.randn(n, HKV, D, generator=g),
                    torch.randn(n, HKV, D, generator=g))
    slots = (4, 0, 5, 2)  # ring rows
    if win:  # rings hold each row's exact K/V of the positions before this step
        for n, slot in zip(LENS, slots, strict=True):
            window.update(codec.ring_k[slot], codec.ring_v[slot], 0, torch.randn(n - 1, HKV, D, generator=g),
                          torch.randn(n - 1, HKV, D, generator=g))
    q = torch.randn(len(LENS), H, D, generator=g)
    k_new, v_new = torch.randn(len(LENS), HKV, D, generator=g), torch.randn(len(LENS), HKV, D, generator=g)
    mb = max(len(t) for t in tables)
    batch = PagedBatch(
        slot_mapping=torch.zeros(len(LENS), dtype=torch.long), num_decodes=len(LENS),
        decode_block_tables=torch.stack([torch.cat([t, torch.zeros(mb - len(t), dtype=torch.long)]) for t in tables]),
        decode_context_lens=torch.tensor(LENS), decode_max_len=max(LENS), prefills=(),
        block_size=BS, decode_seq_slots=slots)
    fast = codec.attend_decodes(q, k_new, v_new, pages, kv.prepare(batch), 0.25, rope)
    read = rotated_reader(codec, rope) if codec.pre_rope else codec.read
    for i, (n, table, slot) in enumerate(zip(LENS, tables, slots, strict=True)):
        kk, vv = read(pages, table, n)
        if win:
            ref = window.attend(q[i:i + 1], kk, vv, k_new[i:i + 1], v_new[i:i + 1], codec.ring_k[slot],
                                codec.ring_v[slot], n - 1, 0.25)
        else:
            ref = attend_one(q[i:i + 1], kk, vv, 0.25)
        torch.testing.assert_close(fast[i:i + 1], ref.float(), atol=2e-5, rtol=1e-4)
