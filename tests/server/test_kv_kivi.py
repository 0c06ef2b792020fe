"""The `kivi2` paged codec: pages match the reference quantizers, the filling block stays exact, writing
token by token gives the same codes as one prefill write, and the staging pool degrades gracefully."""

from __future__ import annotations

import torch

from presso.kernels.kvcache import reference as kvref
from presso.server.kv.cache import KVCache
from presso.server.kv.kivi_codec import Kivi2Codec

H, D, BS = 2, 64, 8


def _slots(table: list[int], n: int) -> torch.Tensor:
    return torch.cat([b * BS + torch.arange(BS) for b in table])[:n]


def _reference(k: torch.Tensor, v: torch.Tensor, n_full: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What kivi2 must return for n tokens of which the first n_full blocks are complete."""
    kb = k[: n_full * BS].half().float().view(n_full, BS, H, D)
    codes, scale, lo = kvref.kivi_encode(kb, dim=1)
    k_hat = torch.cat([kvref.kivi_decode(codes, scale, lo).flatten(0, 1), k[n_full * BS:].half().float()])
    codes, scale, lo = kvref.kivi_encode(v.unflatten(-1, (-1, 32)), dim=-1)
    return k_hat, kvref.kivi_decode(codes, scale, lo).flatten(-2)


def test_prefill_then_decode_matches_reference_and_token_by_token():
    torch.manual_seed(0)
    n = 3 * BS + 5  # three full blocks and a filling one
    k, v = torch.randn(n, H, D) * 2, torch.randn(n, H, D)
    table = [6, 1, 4, 9]
    one = Kivi2Codec(H, D, block_size=BS)
    pages = one.allocate(12, BS)
    one.write(pages, _slots(table, n), k, v)
    kk, vv = one.read(pages, torch.tensor(table), n)
    k_ref, v_ref = _reference(k, v, 3)
    torch.testing.assert_close(kk, k_ref)  # full blocks: reference codes; the filling block: exact
    torch.testing.assert_close(vv, v_ref)
    assert (kk[-5:] == k[-5:].half().float()).all()

    step = Kivi2Codec(H, D, block_size=BS)
    pages2 = step.allocate(12, BS)
    slots = _slots(table, n)
    step.write(pages2, slots[:10], k[:10], v[:10])  # a prefill chunk ending mid-block, then decodes
    for t in range(10, n):
        step.write(pages2, slots[t:t + 1], k[t:t + 1], v[t:t + 1])
    for name in ("k", "k_scale", "k_lo", "v", "v_scale", "v_lo"):
        assert torch.equal(pages2[name][table[:3]], pages[name][table[:3]]), name
    kk2, vv2 = step.read(pages2, torch.tensor(table), n)
    assert torch.equal(kk2, kk) and torch.equal(vv2, vv)


def test_full_block_error_is_half_a_step():
    torch.manual_seed(1)
    k, v = torch.randn(BS, H, D) * 3, torch.randn(BS, H, D)
    codec = Kivi2Codec(H, D, block_size=BS)
    pages = codec.allocate(2, BS)
    codec.write(pages, _slots([1], BS), k, v)
    kk, vv = codec.read(pages, torch.tensor([1]), BS)
    assert (pages["block_stage"] == -1).all()  # a full block holds no staging slot
    assert ((kk - k).abs() <= pages["k_scale"][1].float() / 2 + 1e-2).all()
    assert ((vv - v).abs().view(BS, H, 2, 32) <= pages["v_scale"][1].float().unsqueeze(-1) / 2 + 1e-2).all()


def test_staging_pool_grows_for_live_blocks_and_freezes_stale_ones():
    torch.manual_seed(2)
    codec = Kivi2Codec(H, D, block_size=BS)
    pages = codec.allocate(16, BS)  # budget: a pool of one staging block
    assert pages["stage"].shape[0] == 1
    k, v = torch.randn(3, BS, H, D), torch.randn(3, BS, H, D)
    for t in range(BS // 2):  # two sequences decoding in lockstep into blocks 3 and 7: both stay exact
        codec.write(pages, torch.tensor([3 * BS + t, 7 * BS + t]), k[:2, t], v[:2, t])
    assert pages["stage"].shape[0] == 2
    for i, b in enumerate((3, 7)):
        kk, _ = codec.read(pages, torch.tensor([b]), BS // 2)
        assert torch.equal(kk, k[i, : BS // 2].half().float())
    codec.write(pages, torch.tensor([7 * BS + BS // 2]), k[1, BS // 2:][:1], v[1, BS // 2:][:1])
    codec.write(pages, torch.tensor([7 * BS + BS // 2 + 1]), k[1, BS // 2 + 1:][:1], v[1, BS // 2 + 1:][:1])
    codec.write(pages, torch.tensor([9 * BS]), k[2, :1], v[2, :1])  # block 3 idle for 2 steps: frozen
    assert pages["stage"].shape[0] == 2 and int(pages["block_stage"][3]) == -1
    kk, _ = codec.read(pages, torch.tensor([3]), BS // 2)
    rel = ((kk - k[0, : BS // 2]).norm() / k[0, : BS // 2].norm()).item()
    assert 0 < rel < 0.5  # quantized from its own 4 tokens


def test_bytes_per_token_smollm2_shape():
    codec = Kivi2Codec(3, 64, block_size=16)
    # codes 96 + key stats 48 + value stats 24 + staging pool and its index 25 + block index 1
    assert codec.bytes_per_token() == 194
    assert 2 * 3 * 64 * 2 / codec.bytes_per_token() > 3.9
    cache = KVCache("kivi2", num_layers=2, num_kv_heads=3, head_dim=64, block_size=16, memory="1MiB")
    assert cache.nbytes <= 1024**2 and cache.num_blocks == 1024**2 // (16 * 2 * 194)
