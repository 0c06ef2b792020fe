"""The CPU int8 weight split into two int4 planes (kernels/quant/cpu.py) against the reference dequantize."""

from __future__ import annotations

import pytest
import torch

from presso.kernels.quant.cpu import CpuLinear
from presso.kernels.quant.reference import dequantize, quantize_int8_rows


@pytest.mark.parametrize("zero", [False, True])
def test_int8_planes_match_reference_and_int8_kernel(zero):
    g = torch.Generator().manual_seed(0)
    qw = quantize_int8_rows(torch.randn(208, 192, generator=g))
    if zero:  # an asymmetric weight: every row shifted by its own zero point
        z = torch.randint(-20, 20, (208, 1), generator=g, dtype=torch.int8)
        qw = type(qw)(qw.packed, qw.scale, z, None, 8, None, 208, 192)
    layer = CpuLinear(qw, torch.bfloat16)
    assert layer.mode == "int8x2"  # K=192 has int4 groups (64, 32): one row runs the planes
    x = torch.randn(1, 192, generator=g).bfloat16()
    want = x.float() @ dequantize(qw).float().t()  # (1, 208)
    planes = layer(x).float()
    assert float((planes - want).norm() / want.norm()) < 5e-3
    int8 = torch.ops.aten._weight_int8pack_mm(x, layer.q, layer.scale).float()  # the int8 kernel's answer
    if zero:
        int8 = int8 - x.float().sum() * layer.zs.float()
    assert float((int8 - want).norm() / want.norm()) < 5e-3
    two = torch.cat([x, x])  # two rows take the int8 kernel, and agree with the planes row by row
    assert torch.allclose(layer(two).float()[0], planes[0], rtol=2e-2, atol=2e-2 * float(want.abs().max()))


def test_int8_without_int4_shapes_keeps_the_int8_kernel():
    qw = quantize_int8_rows(torch.randn(200, 192))  # N=200 is not a multiple of 16: no int4 packing
    layer = CpuLinear(qw, torch.bfloat16)
    assert layer.mode == "int8"
    x = torch.randn(1, 192).bfloat16()
    want = x.float() @ dequantize(qw).float().t()
    assert float((layer(x).float() - want).norm() / want.norm()) < 5e-3
