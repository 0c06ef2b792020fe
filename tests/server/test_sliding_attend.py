"""Sliding-window (and soft-capped) attention in every KV codec's paths against the readable twin: read the
whole sequence back, then attend_one (or window.attend with an exact recent window) with the window mask.
The fast paths get block tables whose out-of-window entries name a block that does not exist, so any read
of a freed block fails loudly instead of being masked away."""

from __future__ import annotations

import pytest
import torch

from presso.kernels.attention import cpu as attn_cpu
from presso.kernels.attention import reference as attn_ref
from presso.kernels.attention.reference import attend_one
from presso.kernels.attention.types import PagedBatch, PrefillSpan, index_decodes, window_start
from presso.server.kv import window as ring
from presso.server.kv.attend import rotated_reader
from presso.server.kv.cache import KVCache
from presso.server.layers.rotary import Rotary, apply_rotary

HKV, D, H, BS, W = 2, 16, 4, 4, 7
LENS = [5, 11, 17, 23]  # decode rows' context lengths, the current token included
GONE = 10_000  # a block id past the end of the pages: what a freed block must never be read as

CASES = [("fp32", None, 0, 0.0), ("fp32", None, 0, 3.0), ("bf16", None, 0, 0.0), ("int8", None, 0, 0.0),
         ("int8", None, 0, 3.0), ("kivi2", None, 0, 0.0), ("int8", None, 5, 0.0), ("int8", None, 12, 3.0),
         ("rvq", "post", 0, 0.0), ("rvq", "post", 0, 3.0), ("rvq", "pre", 0, 0.0), ("rvq", "post", 5, 0.0)]


def _setup(codec_name, books, ring_win, kv_model_dir, kv_prerope_dir):
    model_dir = {"post": kv_model_dir, "pre": kv_prerope_dir, None: None}[books]
    kv = KVCache(codec_name, 1, HKV, D, BS, 0, model_dir=model_dir, num_blocks=40, window=ring_win, max_seqs=6,
                 sliding_windows=[W])
    rotary = Rotary({"rope_theta": 10000.0}, D)

    def rope(x, positions):
        return apply_rotary(x.float(), *rotary.cos_sin(positions, torch.float32))
    return kv.layers[0].codec, kv.layers[0].pages, rope


def _fill(codec, pages, n, free, g):
    """Write n random tokens into freshly taken blocks; the block table (nb,)."""
    table = torch.tensor([free.pop(3 % len(free)) for _ in range((n + BS - 1) // BS)])
    pos = torch.arange(n)
    codec.write(pages, table[pos // BS] * BS + pos % BS, torch.randn(n, HKV, D, generator=g),
                torch.randn(n, HKV, D, generator=g))
    return table


def _freed(table, first_live_block):
    out = table.clone()
    out[:first_live_block] = GONE
    return out


@pytest.mark.parametrize("codec_name,books,ring_win,softcap", CASES)
def test_decode_rows_see_only_the_window(codec_name, books, ring_win, softcap, kv_model_dir, kv_prerope_dir):
    codec, pages, rope = _setup(codec_name, books, ring_win, kv_model_dir, kv_prerope_dir)
    g = torch.Generator().manual_seed(0)
    free = list(range(39, -1, -1))
    tables = [_fill(codec, pages, n, free, g) for n in LENS]
    slots = (4, 0, 5, 2)
    if ring_win:
        for n, slot in zip(LENS, slots, strict=True):
            ring.update(codec.ring_k[slot], codec.ring_v[slot], 0, torch.randn(n - 1, HKV, D, generator=g),
                        torch.randn(n - 1, HKV, D, generator=g))
    q = torch.randn(len(LENS), H, D, generator=g)
    k_new, v_new = torch.randn(len(LENS), HKV, D, generator=g), torch.randn(len(LENS), HKV, D, generator=g)
    live = [_freed(t, max(0, n - W) // BS) for t, n in zip(tables, LENS, strict=True)]
    mb = max(len(t) for t in live)
    batch = PagedBatch(
        slot_mapping=torch.zeros(len(LENS), dtype=torch.long), num_decodes=len(LENS),
        decode_block_tables=torch.stack([torch.cat([t, torch.zeros(mb - len(t), dtype=torch.long)]) for t in live]),
        decode_context_lens=torch.tensor(LENS), decode_max_len=max(LENS), prefills=(), block_size=BS,
        decode_seq_slots=slots)
    batch = index_decodes(batch, (W,))  # as KVCache.prepare() does once per step
    assert batch.window_index[0][1].shape == (len(LENS), W)
    if codec.plain:  # the paged_attention kernel on the pages themselves
        fast = codec.attend(q, k_new, v_new, pages, batch, 0.25, rope, W, softcap)
    else:
        fast = codec.attend_decodes(q, k_new, v_new, pages, batch, 0.25, rope, W, softcap)
    read = rotated_reader(codec, rope) if codec.pre_rope else codec.read
    for i, (n, table, slot) in enumerate(zip(LENS, tables, slots, strict=True)):
        kk, vv = read(pages, table, n)
        if ring_win:
            want = ring.attend(q[i:i + 1], kk, vv, k_new[i:i + 1], v_new[i:i + 1], codec.ring_k[slot],
                               codec.ring_v[slot], n - 1, 0.25, sliding=W, softcap=softcap)
        else:
            want = attend_one(q[i:i + 1], kk, vv, 0.25, W, softcap)
        tol = 2e-2 if codec_name == "bf16" else 2e-5
        torch.testing.assert_close(fast[i:i + 1].float(), want.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("codec_name,books,ring_win,softcap", CASES)
def test_prefill_chunk_reads_from_its_window(codec_name, books, ring_win, softcap, kv_model_dir, kv_prerope_dir):
    """A later chunk (6 queries ending at 23) reads blocks from window_start on; two sequences in one batch."""
    codec, pages, rope = _setup(codec_name, books, ring_win, kv_model_dir, kv_prerope_dir)
    g = torch.Generator().manual_seed(1)
    free = list(range(39, -1, -1))
    spans_in = [(23, 6), (9, 9)]  # (ctx_len, q_len): a later chunk, and a first chunk longer than W
    tables = [_fill(codec, pages, n, free, g) for n, _ in spans_in]
    q = torch.randn(15, H, D, generator=g)
    k_new, v_new = torch.randn(15, HKV, D, generator=g), torch.randn(15, HKV, D, generator=g)
    if ring_win:  # each ring holds the exact K/V of the positions before its chunk
        for (n, ql), slot in zip(spans_in, (1, 3), strict=True):
            ring.update(codec.ring_k[slot], codec.ring_v[slot], 0, torch.randn(n - ql, HKV, D, generator=g),
                        torch.randn(n - ql, HKV, D, generator=g))
    starts = (0, 6)
    spans = tuple(PrefillSpan(s, ql, n, _freed(t, window_start(n, ql, W, BS) // BS), slot)
                  for s, (n, ql), t, slot in zip(starts, spans_in, tables, (1, 3), strict=True))
    assert int(spans[0].block_table[0]) == GONE  # the later chunk really skips a freed block
    batch = PagedBatch(torch.zeros(15, dtype=torch.long), 0, torch.zeros(0, 0, dtype=torch.long),
                       torch.zeros(0, dtype=torch.long), 0, spans, BS)
    want = []
    read = rotated_reader(codec, rope) if codec.pre_rope else codec.read
    for s, (n, ql), table, slot in zip(starts, spans_in, tables, (1, 3), strict=True):
        rows = slice(s, s + ql)
        kk, vv = read(pages, table, n)
        if ring_win:
            want.append(ring.attend(q[rows], kk, vv, k_new[rows], v_new[rows], codec.ring_k[slot],
                                    codec.ring_v[slot], n - ql, 0.25, sliding=W, softcap=softcap))
        else:
            want.append(attend_one(q[rows], kk, vv, 0.25, W, softcap))
    fast = codec.attend(q, k_new, v_new, pages, batch, 0.25, rope, W, softcap)
    tol = 2e-2 if codec_name == "bf16" else 2e-5
    torch.testing.assert_close(fast.float(), torch.cat(want).float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("softcap", [0.0, 3.0])
def test_plain_kernels_agree_on_windows(softcap):
    """The cpu paged_attention against its reference, windowed and capped, on one mixed batch."""
    g = torch.Generator().manual_seed(2)
    k_cache, v_cache = torch.randn(24, BS, HKV, D, generator=g), torch.randn(24, BS, HKV, D, generator=g)
    perm = torch.randperm(24, generator=g)
    dec = torch.stack([perm[0:6], perm[6:12]])
    batch = PagedBatch(torch.zeros(2 + 10, dtype=torch.long), 2, dec, torch.tensor([23, 9]), 23,
                       (PrefillSpan(2, 10, 22, perm[12:18]),), BS)
    q = torch.randn(12, H, D, generator=g)
    want = attn_ref.paged_attention(q, k_cache, v_cache, batch, 0.25, W, softcap)
    got = attn_cpu.paged_attention(q, k_cache, v_cache, batch, 0.25, W, softcap)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    full = attn_ref.paged_attention(q, k_cache, v_cache, batch, 0.25, 0, softcap)
    assert (full - want).abs().max() > 1e-2  # the window changes the result
