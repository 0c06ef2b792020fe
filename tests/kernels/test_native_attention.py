"""The native paged decode attention (kernels/native/paged_decode.c) against its torch twins: attend_padded
on gathered K/V and the reference paged attention, for bf16/fp32 pages, grouped-query ratios, padding
masks, sliding windows and soft-capping; plus how the library is built, cached, and bound to torch's
OpenMP runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from presso.kernels import envs
from presso.kernels.attention import native
from presso.kernels.attention import reference as ref
from presso.kernels.attention.cpu import attend_padded
from presso.kernels.attention.types import PagedBatch, decode_index
from presso.kernels.native import build

pytestmark = pytest.mark.skipif(shutil.which(envs.c_compiler()) is None, reason="no C compiler")


def _pages(dtype, nb=30, bs=4, hkv=2, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(nb, bs, hkv, d, generator=g).to(dtype), torch.randn(nb, bs, hkv, d, generator=g).to(dtype))


def _batch(lens, bs=4, nb=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    mb = (max(lens) + bs - 1) // bs
    tables = torch.stack([torch.randperm(nb, generator=g)[:mb] for _ in lens])
    return PagedBatch(torch.zeros(len(lens), dtype=torch.long), len(lens), tables, torch.tensor(lens), max(lens), (), bs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("group", [1, 3, 8])
@pytest.mark.parametrize("softcap", [0.0, 3.0])
@pytest.mark.parametrize("window", [0, 5])
def test_native_equals_attend_padded(dtype, group, softcap, window):
    assert native.usable(torch.zeros(1, 2 * group, 16), _pages(dtype)[0])
    k_cache, v_cache = _pages(dtype)
    batch = _batch([13, 7, 1, 16])
    slots, mask = decode_index(batch, window)
    q = torch.randn(4, 2 * group, 16, generator=torch.Generator().manual_seed(2))
    got = native.decode(q, k_cache, v_cache, slots, mask, 0.3, softcap)
    k = k_cache.view(-1, 2, 16)[slots].float()  # (Bd, L, Hkv, D)
    v = v_cache.view(-1, 2, 16)[slots].float()
    want = attend_padded(q, k, v, mask, 0.3, softcap)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_native_decode_matches_reference_paged_attention():
    k_cache, v_cache = _pages(torch.bfloat16)
    batch = _batch([9, 16, 3])
    q = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(3)).bfloat16()
    slots, mask = decode_index(batch)
    got = native.decode(q, k_cache, v_cache, slots, mask, 0.25).to(q.dtype)
    want = ref.paged_attention(q, k_cache, v_cache, batch, 0.25)
    torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=1e-2)


def test_native_op_under_torch_compile():
    k_cache, v_cache = _pages(torch.float32)
    slots, mask = decode_index(_batch([5, 11]))
    q = torch.randn(2, 4, 16)
    fn = torch.compile(lambda *a: native.decode(*a, 0.5) * 2, fullgraph=True)
    torch.testing.assert_close(fn(q, k_cache, v_cache, slots, mask), 2 * native.decode(q, k_cache, v_cache, slots, mask, 0.5))


def test_library_is_cached_under_presso_home_and_shares_torchs_openmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSO_HOME", str(tmp_path))
    build.library.cache_clear()
    try:
        assert build.library("paged_decode") is not None
        built = list((tmp_path / "native").glob("paged_decode-*.so"))
        assert len(built) == 1 and not list((tmp_path / "native").glob("*.tmp*"))
        mtime = built[0].stat().st_mtime_ns
        build.library.cache_clear()
        assert build.library("paged_decode") is not None and built[0].stat().st_mtime_ns == mtime  # reused
        gomp = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "libgomp" in line}
        assert len(gomp) <= 1, gomp  # one OpenMP runtime: the kernels use torch's thread pool
    finally:
        build.library.cache_clear()


def test_switched_off_or_unbuildable_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSO_HOME", str(tmp_path))
    try:
        monkeypatch.setenv("PRESSO_NATIVE_KERNELS", "0")
        build.library.cache_clear()
        assert build.library("paged_decode") is None
        assert not native.usable(torch.zeros(1, 2, 16), _pages(torch.float32)[0])
        monkeypatch.setenv("PRESSO_NATIVE_KERNELS", "1")
        monkeypatch.setenv("CC", "no-such-compiler-presso")
        build.library.cache_clear()
        assert build.library("paged_decode") is None
        assert not (tmp_path / "native").exists() or not list((tmp_path / "native").iterdir())
    finally:
        build.library.cache_clear()
