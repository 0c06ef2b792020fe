"""KV-cache quantizer kernels: int8 and RVQ reference layouts, the code-space CPU attention twin, and
every other backend (cpu, Triton under TRITON_INTERPRET=1, marked `interp`) against the reference."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from presso.compression.checkpoint.kv_codebooks import LayerCodebooks, RVQSpec, save_kv_codebooks
from presso.compression.kv_rvq.kmeans import residual_kmeans
from presso.kernels import registry
from presso.kernels.kvcache import cpu as kvcpu
from presso.kernels.kvcache import reference as kvref
from presso.server.kv.kivi_codec import Kivi2Codec
from presso.server.kv.quant_codecs import Int8Codec, RVQCodec

HAS_TRITON = importlib.util.find_spec("triton") is not None
TRITON_OPS = {"kv_int8_encode", "kv_int8_decode", "kv_kivi_keys_decode", "kv_kivi_values_decode",
              "kv_rvq_encode", "kv_rvq_decode", "kv_rvq_attend"}


def test_int8_round_trip_error_is_half_a_step():
    x = torch.randn(40, 3, 64) * 3
    q, scale = kvref.int8_encode(x)
    assert q.dtype == torch.int8 and scale.shape == (40, 3, 1)
    err = (kvref.int8_decode(q, scale) - x).abs()
    assert (err <= scale.float() * 0.5 + 1e-3).all()


def test_kivi_per_channel_and_per_token():
    x = torch.randn(16, 2, 8)
    for dim in (0, -1):  # stats over tokens per (head, channel): keys; over channels per token: values
        codes, scale, lo = kvref.kivi_encode(x, dim)
        assert codes.max() <= 3 and scale.shape[dim] == 1
        err = (kvref.kivi_decode(codes, scale, lo) - x).abs()
        assert (err <= scale.float() * 0.5 + 1e-2).all()


def test_pack2_round_trip_and_bit_order():
    codes = torch.randint(0, 4, (5, 3, 16), dtype=torch.uint8)
    packed = kvref.pack2(codes)
    assert packed.shape == (5, 3, 4) and torch.equal(kvref.unpack2(packed), codes)
    assert kvref.pack2(torch.tensor([[1, 2, 3, 0]], dtype=torch.uint8)).item() == 1 | 2 << 2 | 3 << 4


def _kivi_keys_case():
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(5, 8, 2, 32, generator=g) * 4  # (F, BS, H, D)
    codes, scale, lo = kvref.kivi_encode(keys, dim=1)
    return kvref.pack2(codes), scale[:, 0], lo[:, 0]


def _kivi_values_case():
    g = torch.Generator().manual_seed(4)
    v = torch.randn(40, 2, 64, generator=g)
    codes, scale, lo = kvref.kivi_encode(v.unflatten(-1, (-1, 32)), dim=-1)
    return kvref.pack2(codes.flatten(-2)), scale[..., 0], lo[..., 0]


def _rvq_attend_case():
    g = torch.Generator().manual_seed(5)
    k, v = torch.randn(80, 2, 32, generator=g), torch.randn(80, 2, 32, generator=g)  # > one Triton block
    kb, kp = _books(k, 3, 8, True)
    vb, vp = _books(v, 2, 4, False)  # V with its own stages and group
    kc, kr = kvref.rvq_encode(k, kb, kp)
    vc, vr = kvref.rvq_encode(v, vb, vp)
    return torch.randn(6, 32, generator=g), kc, kr, vc, vr, kb, vb, kp, vp, 0.2


def _int8_encode_case():
    x = torch.randn(24, 2, 48, generator=torch.Generator().manual_seed(7)) * 3  # D not a power of two
    x[3, 1] = 0  # its fp16 step underflows to 0: 0/0 -> code 0, as torch casts it
    return (x,)


def _int8_decode_case():
    return kvref.int8_encode(*_int8_encode_case())


def _rvq_encode_case():
    x = torch.randn(30, 2, 48, generator=torch.Generator().manual_seed(8))
    books, perm = _books(x, 3, 8, True, entries=40)  # 40 entries: a masked tail in the Triton block
    return x, books, perm


def _rvq_decode_case():
    x, books, perm = _rvq_encode_case()
    return (*kvref.rvq_encode(x, books, perm), books, perm)


KV_CASES = {"kv_kivi_keys_decode": _kivi_keys_case, "kv_kivi_values_decode": _kivi_values_case,
            "kv_rvq_attend": _rvq_attend_case, "kv_int8_encode": _int8_encode_case,
            "kv_int8_decode": _int8_decode_case, "kv_rvq_encode": _rvq_encode_case,
            "kv_rvq_decode": _rvq_decode_case}


def _kv_backends():
    for op, backends in registry.registered().items():
        if op.startswith("kv_") and "reference" in backends:
            for b in backends:
                marks = [pytest.mark.interp] if b == "triton" else []
                if b != "reference":
                    yield pytest.param(op, b, id=f"{op}-{b}", marks=marks)


def _assert_matches(got, want):
    """Codes (integer tensors) bit-exact, floats to 1e-4."""
    for g, w in zip(got, want, strict=True) if isinstance(want, tuple) else [(got, want)]:
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        if w.dtype.is_floating_point:
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
        else:
            assert torch.equal(g, w), f"{int((g != w).sum())} of {w.numel()} codes differ"


@pytest.mark.parametrize("op,backend", list(_kv_backends()))
def test_kv_backend_matches_reference(op, backend):
    """Every non-reference KV-cache kernel has a case here and agrees with its reference."""
    if backend == "triton" and not HAS_TRITON:
        pytest.skip("triton is not installed (pip install presso[triton])")
    assert op in KV_CASES, f"add a conformance case for {op}"
    args = KV_CASES[op]()
    want = registry.get(op, backend="reference")(*args)
    got = registry.get(op, backend=backend)(*args)
    assert isinstance(got, tuple) == isinstance(want, tuple)
    _assert_matches(got, want)


def test_triton_backends_registered():
    """A broken Triton module must not silently drop its cases (the package swallows ImportError)."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    assert TRITON_OPS <= {op for op, backends in registry.registered().items() if "triton" in backends}


@pytest.mark.interp
def test_triton_rvq_wide_codebook_int16_codes():
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    g = torch.Generator().manual_seed(9)
    x, books = torch.randn(12, 2, 32, generator=g), torch.randn(2, 300, 4, generator=g) * 0.5
    perm = kvref.group_permutation(32, 4, interleaved=False)
    codes, rms = registry.get("kv_rvq_encode", backend="triton")(x, books, perm)
    want_codes, want_rms = kvref.rvq_encode(x, books, perm)
    assert codes.dtype == torch.int16 and torch.equal(codes, want_codes) and torch.equal(rms, want_rms)
    decoded = registry.get("kv_rvq_decode", backend="triton")(codes, rms, books, perm)
    assert torch.equal(decoded, kvref.rvq_decode(codes, rms, books, perm))


def _rvq_codec(model_dir):
    """An RVQ codec over random-data codebooks saved as presso_kv.safetensors in model_dir."""
    x = torch.randn(200, 2, 32, generator=torch.Generator().manual_seed(11))
    (kb, kp), (vb, vp) = _books(x, 3, 8, True), _books(x * 2, 3, 8, False)
    save_kv_codebooks(model_dir, RVQSpec(stages=3, entries=64, group=8, keys="post_rope"), [LayerCodebooks(kb, kp, vb, vp)], {})
    return RVQCodec(2, 32, model_dir, layer=0, block_size=8)


CODECS = {"int8": lambda _: Int8Codec(2, 32, block_size=8), "kivi2": lambda _: Kivi2Codec(2, 32, block_size=8),
          "rvq": _rvq_codec}


@pytest.mark.interp
@pytest.mark.parametrize("codec", list(CODECS))
def test_codec_pages_identical_through_triton(codec, monkeypatch, tmp_path):
    """The codecs fetch their ops from the registry: forcing Triton gives the very same pages and reads."""
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    g = torch.Generator().manual_seed(10)
    k, v, q = torch.randn(20, 2, 32, generator=g), torch.randn(20, 2, 32, generator=g), torch.randn(4, 32)
    table, slots = torch.tensor([2, 0, 3]), torch.cat([b * 8 + torch.arange(8) for b in (2, 0, 3)])[:20]
    results = []
    for forced in ("", "triton"):
        monkeypatch.setenv("PRESSO_KERNEL_BACKEND", forced)
        c = CODECS[codec](tmp_path)
        pages = c.allocate(4, 8)
        c.write(pages, slots, k, v)
        attend = c.attend_decode(q, pages, table, 20, 0.2) if hasattr(c, "attend_decode") else None
        results.append((pages, c.read(pages, table, 20), attend))
    (pages, read, attend), (t_pages, t_read, t_attend) = results
    assert all(torch.equal(pages[name], t_pages[name]) for name in pages)
    torch.testing.assert_close(t_read, read, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(t_attend, attend, rtol=1e-4, atol=1e-4)


def test_rvq_encode_picks_nearest_codeword_per_stage():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(30, 2, 16, generator=g)
    books = torch.randn(3, 16, 4, generator=g)  # (S, C, G)
    perm = kvref.group_permutation(16, 4, interleaved=True)
    codes, _ = kvref.rvq_encode(x, books, perm)
    residual, _ = kvref.rvq_normalise(x, perm, 4)  # (N, H, ng, G)
    for s in range(3):
        dist = (residual.unsqueeze(-2) - books[s]).pow(2).sum(-1)  # brute force (N, H, ng, C)
        picked = dist.gather(-1, codes[..., s].long().unsqueeze(-1))
        assert (picked <= dist.min(-1, keepdim=True).values + 1e-5).all()
        residual = residual - books[s][codes[..., s].long()]


def test_group_permutation_interleaves():
    perm = kvref.group_permutation(8, 4, interleaved=True)
    assert perm.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]  # group 0 = channels 0,2,4,6
    with pytest.raises(ValueError, match="divide"):
        kvref.group_permutation(10, 4, True)


def _books(x: torch.Tensor, stages: int, group: int, interleaved: bool, entries: int = 64):
    perm = kvref.group_permutation(x.shape[-1], group, interleaved)
    groups, _ = kvref.rvq_normalise(x, perm, group)
    books, _ = residual_kmeans(groups.reshape(-1, group), stages, entries, iters=8)
    return books, perm


def _sqnr(x, y):
    return 10 * torch.log10(x.pow(2).sum() / (x - y).pow(2).sum()).item()


def test_rvq_more_stages_reconstruct_better():
    torch.manual_seed(0)
    x = torch.randn(512, 2, 32) @ torch.randn(32, 32)  # correlated channels, like real keys
    books, perm = _books(x, 4, 8, True)
    sqnr = []
    for s in (1, 2, 4):
        codes, rms = kvref.rvq_encode(x, books[:s], perm)
        assert codes.shape == (512, 2, 4, s) and codes.dtype == torch.uint8
        sqnr.append(_sqnr(x, kvref.rvq_decode(codes, rms, books[:s], perm)))
    assert sqnr[0] < sqnr[1] < sqnr[2] and sqnr[2] > sqnr[0] + 3


def test_cpu_code_space_attention_matches_reference():
    torch.manual_seed(1)
    t, hkv, hq, d = 96, 2, 6, 32
    k, v = torch.randn(t, hkv, d), torch.randn(t, hkv, d)
    kb, kp = _books(k, 3, 8, True)
    vb, vp = _books(v, 3, 8, False)
    kc, kr = kvref.rvq_encode(k, kb, kp)
    vc, vr = kvref.rvq_encode(v, vb, vp)
    q = torch.randn(hq, d)
    ref = kvref.rvq_attend(q, kc, kr, vc, vr, kb, vb, kp, vp, 0.2)
    fast = kvcpu.rvq_attend(q, kc, kr, vc, vr, kb, vb, kp, vp, 0.2)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    scores = kvcpu.rvq_scores(q, kc, kr, kb, kp)
    k_hat = kvref.rvq_decode(kc, kr, kb, kp).repeat_interleave(hq // hkv, 1)
    torch.testing.assert_close(scores, torch.einsum("hd,thd->ht", q, k_hat), rtol=1e-4, atol=1e-4)
