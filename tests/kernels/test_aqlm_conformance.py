"""Conformance: every AQLM kernel backend (cpu, triton under TRITON_INTERPRET=1) against the reference.

Also pins the layout itself: signed code storage, and decode of a hand-built weight.
"""

from __future__ import annotations

import pytest
import torch

from presso.kernels import registry
from presso.kernels.aqlm import aqlm_dequantize, aqlm_matmul
from presso.kernels.aqlm import reference as ref
from presso.kernels.aqlm import triton as triton_kernel

CONFIGS = [(1, 8), (2, 8), (1, 16), (2, 4)]  # (num_codebooks, nbits)


def random_layer(out_features: int, in_features: int, num_codebooks: int, nbits: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1 << nbits, (out_features, in_features // 8, num_codebooks), generator=gen)
    books = torch.randn(num_codebooks, 1 << nbits, 1, 8, generator=gen)
    scales = torch.rand(out_features, 1, 1, 1, generator=gen) + 0.5
    return ref.signed_codes(codes, nbits), books, scales


def test_signed_codes_round_trip():
    codes = torch.tensor([0, 1, 127, 128, 255])
    stored = ref.signed_codes(codes, 8)
    assert stored.dtype == torch.int8 and stored.tolist() == [0, 1, 127, -128, -1]
    assert ref.unsigned_codes(stored, 8).tolist() == codes.tolist()
    assert ref.signed_codes(torch.tensor([65535]), 16).dtype == torch.int16


def test_reference_decodes_by_hand():
    books = torch.arange(2 * 4 * 8, dtype=torch.float32).view(2, 4, 1, 8)
    codes = ref.signed_codes(torch.tensor([[[1, 2], [3, 0]]]), 2)  # one row, two groups, 2 codebooks
    weight = ref.dequantize(codes, books, torch.full((1, 1, 1, 1), 2.0))
    expected = torch.cat([books[0, 1, 0] + books[1, 2, 0], books[0, 3, 0] + books[1, 0, 0]]) * 2
    assert torch.equal(weight, expected.view(1, 16))


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("num_codebooks,nbits", CONFIGS)
@pytest.mark.parametrize("batch", [1, 5])
def test_backend_matches_reference(backend, num_codebooks, nbits, batch):
    if backend == "triton" and not triton_kernel.available():
        pytest.skip("triton is not installed (pip install presso[triton])")
    codes, books, scales = random_layer(40, 48, num_codebooks, nbits)
    x = torch.randn(batch, 48)
    bias = torch.randn(40)
    want = ref.matmul(x, codes, books, scales, bias)
    got = aqlm_matmul(x, codes, books, scales, bias, backend=backend)
    assert got.shape == want.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("num_codebooks,nbits", [(2, 8), (1, 16)])
def test_cpu_bf16_activations_and_3d_input(num_codebooks, nbits):
    codes, books, scales = random_layer(24, 32, num_codebooks, nbits, seed=1)
    x = torch.randn(2, 3, 32).bfloat16()
    want = ref.matmul(x.float(), codes, books, scales)
    got = aqlm_matmul(x, codes, books, scales, backend="cpu")
    assert got.shape == (2, 3, 24) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=3e-2, atol=3e-1)


def test_cpu_lut_and_tiled_paths_agree():
    from presso.kernels.aqlm import cpu

    codes, books, scales = random_layer(300, 64, 2, 8, seed=2)
    x = torch.randn(3, 64)
    torch.testing.assert_close(cpu.lut_matmul(x, codes, books, scales), cpu.tiled_matmul(x, codes, books, scales, tile=7))


def test_ops_are_in_the_kernel_registry_and_honour_the_env(monkeypatch):
    ops = registry.registered()
    assert {"reference", "cpu"} <= set(ops["aqlm_matmul"]) and set(ops["aqlm_dequantize"]) == {"reference", "cpu"}
    assert ("triton" in ops["aqlm_matmul"]) == triton_kernel.available()
    monkeypatch.setenv("PRESSO_KERNEL_BACKEND", "reference")
    assert registry.get("aqlm_matmul", "cpu") is ref.matmul
    monkeypatch.delenv("PRESSO_KERNEL_BACKEND")
    with registry.select("cpu") as resolved:
        registry.get("aqlm_matmul")
    assert resolved == {"aqlm_matmul": "cpu"}
    if triton_kernel.available():
        assert registry.get("aqlm_matmul", "cuda") is triton_kernel.matmul


def test_dequantize_matches_reference():
    codes, books, scales = random_layer(16, 24, 2, 8)
    assert torch.equal(aqlm_dequantize(codes, books, scales), ref.dequantize(codes, books, scales))


@pytest.mark.parametrize("num_codebooks,nbits", CONFIGS)
def test_cpu_dequantize_matches_reference(num_codebooks, nbits):
    codes, books, scales = random_layer(16, 24, num_codebooks, nbits, seed=3)
    want = ref.dequantize(codes, books.half(), scales.half())
    torch.testing.assert_close(aqlm_dequantize(codes, books.half(), scales.half(), backend="cpu"), want)
