"""Kernel conformance: every registered (op, backend) against that op's reference, on shared cases.

Triton backends run on CPU tensors under TRITON_INTERPRET=1 (set in tests/conftest.py) and are marked
`interp`; they skip cleanly where triton is not importable. Ops whose family registers no case here
(another family's tests cover them) are reported as skipped, never silently passed.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from presso.kernels import registry
from presso.kernels.attention.types import PagedBatch, PrefillSpan
from presso.kernels.quant import QuantizedWeight
from presso.kernels.quant.packing import pack_int32, unpack_int32

HAS_TRITON = importlib.util.find_spec("triton") is not None


def make_qw(n, k, bits, group, zero, act_order, seed=0) -> QuantizedWeight:
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1))
    q = torch.randint(lo, hi, (n, k), generator=g)
    groups = 1 if group is None else k // group
    scale = torch.rand(n, groups, generator=g) * 0.02 + 0.005
    zp = torch.randint(lo, hi, (n, groups), generator=g).to(torch.int8) if zero else None
    g_idx = None
    if act_order:
        perm = torch.randperm(k, generator=g)
        g_idx = torch.empty(k, dtype=torch.int32)
        g_idx[perm] = (torch.arange(k) // group).to(torch.int32)
    return QuantizedWeight(pack_int32(q, bits), scale, zp, g_idx, bits, group, n, k)


def wq_cases():
    for bits, group, zero, act, dtype in [
        (8, None, False, False, torch.bfloat16), (8, None, True, False, torch.bfloat16),
        (4, 32, True, False, torch.bfloat16), (4, 64, False, False, torch.bfloat16),
        (4, None, False, False, torch.bfloat16), (4, 32, True, True, torch.bfloat16),
        (3, 32, True, False, torch.bfloat16), (8, 32, False, False, torch.bfloat16),
        (4, 32, True, False, torch.float32), (8, None, False, False, torch.float32),
    ]:
        qw = make_qw(96, 128, bits, group, zero, act)
        # one row (int8 as two int4 planes), a decode-sized batch (packed CPU kernels), a large one (dense copy)
        xs = [torch.randn(rows, 128, generator=torch.Generator().manual_seed(1)).to(dtype) for rows in (1, 5, 20)]
        yield f"b{bits}-g{group}-z{int(zero)}-a{int(act)}-{str(dtype)[6:]}", (qw, dtype, xs)


def run_wq(impl, case):
    qw, dtype, xs = case
    layer = impl(qw, dtype)
    return torch.cat([layer(x).float() for x in xs])


def attention_cases():
    g = torch.Generator().manual_seed(0)
    nb, bs, hkv, h, d = 24, 4, 2, 4, 16
    k_cache, v_cache = torch.randn(nb, bs, hkv, d, generator=g), torch.randn(nb, bs, hkv, d, generator=g)
    perm = torch.randperm(nb, generator=g)
    tables = [perm[0:5], perm[5:8], perm[8:16], perm[16:20]]
    # two decodes (ctx 17 and 9), a first prefill chunk (12 of 12) and a later chunk (6 ending at 14)
    dec_tables = torch.stack([torch.cat([tables[0], perm[:0]]), torch.cat([tables[1], tables[1][:2]])])
    batch = PagedBatch(
        slot_mapping=torch.zeros(2 + 12 + 6, dtype=torch.long), num_decodes=2, decode_block_tables=dec_tables,
        decode_context_lens=torch.tensor([17, 9]), decode_max_len=17,
        prefills=(PrefillSpan(2, 12, 12, tables[2]), PrefillSpan(14, 6, 14, tables[3])), block_size=bs,
    )
    q = torch.randn(20, h, d, generator=g)
    yield "mixed-fp32", (q, k_cache, v_cache, batch)
    yield "mixed-bf16", (q.bfloat16(), k_cache.bfloat16(), v_cache.bfloat16(), batch)
    decode_only = PagedBatch(batch.slot_mapping[:2], 2, dec_tables, batch.decode_context_lens, 17, (), bs)
    yield "decode-only", (q[:2], k_cache, v_cache, decode_only)


def run_attention(impl, case):
    q, k, v, batch = case
    return impl(q, k, v, batch, 0.25).float()


CASES = {"wq_linear": (wq_cases, run_wq, 1e-2), "paged_attention": (attention_cases, run_attention, 1e-2)}


def _params():
    for op, backends in registry.registered().items():
        for backend in backends:
            if backend == "reference":
                continue
            marks = [pytest.mark.interp] if backend == "triton" else []
            yield pytest.param(op, backend, id=f"{op}-{backend}", marks=marks)


@pytest.mark.parametrize("op,backend", list(_params()))
def test_backend_matches_reference(op, backend):
    if backend == "triton" and not HAS_TRITON:
        pytest.skip("triton is not installed (pip install presso[triton])")
    if op not in CASES:
        pytest.skip(f"no conformance case for {op!r} here; its family's own tests compare it")
    cases, run, tol = CASES[op]
    ref, impl = registry.get(op, backend="reference"), registry.get(op, backend=backend)
    for name, case in cases():
        want, got = run(ref, case), run(impl, case)
        rel = float((want - got).norm() / want.norm())
        assert rel < tol, f"{op}/{backend} case {name}: relative error {rel:.2e}"


def test_packing_matches_compressed_tensors():
    ct = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")
    g = torch.Generator().manual_seed(0)
    for bits in (2, 3, 4, 5, 8):
        for cols in (1, 9, 70, 576):
            q = torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (7, cols), generator=g)
            packed = ct.pack_to_int32(q.to(torch.int8), bits)
            assert torch.equal(pack_int32(q, bits), packed), (bits, cols)
            assert torch.equal(unpack_int32(packed, bits, cols), q.to(torch.int8))
            qw = QuantizedWeight.from_codes(q, torch.ones(7, 1), None, bits, None)
            assert torch.equal(qw.codes, q.to(torch.int8)) and torch.equal(qw.dequantize(), q.float())


def test_sparse_bitmask_layout_matches_compressed_tensors():
    helpers = pytest.importorskip("compressed_tensors.utils.helpers")
    w = torch.randn(6, 21)
    w[w.abs() < 0.7] = 0
    mask = w != 0
    decompress = registry.get("sparse_decompress", backend="reference")
    assert torch.equal(decompress(w[mask], helpers.pack_bitmasks(mask), (6, 21)), w)


def test_dispatcher_honours_env(monkeypatch):
    monkeypatch.setenv("PRESSO_KERNEL_BACKEND", "reference")
    assert registry.get("wq_linear") is registry.get("wq_linear", backend="reference")
    monkeypatch.setenv("PRESSO_KERNEL_BACKEND", "bogus")
    with pytest.raises(ValueError, match="PRESSO_KERNEL_BACKEND"):
        registry.get("wq_linear")
    monkeypatch.delenv("PRESSO_KERNEL_BACKEND")
    assert registry.get("wq_linear") is registry.get("wq_linear", backend="cpu")
