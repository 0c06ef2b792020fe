"""compressed-tensors pack -> unpack round trips of our integer codes are exact (all bit widths)."""

from __future__ import annotations

import pytest
import torch
from compressed_tensors.compressors.pack_quantized import pack_to_int32, unpack_from_int32

from presso.compression.methods.grid import GridSpec, rtn_quantize


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
# out_features >= 16: compressed-tensors 0.20 cannot unpack a zero point packed into a single row
@pytest.mark.parametrize("shape", [(16, 64), (24, 96), (40, 576)])
def test_codes_pack_unpack_exact(bits, shape):
    spec = GridSpec(bits, 32, symmetric=False)
    codes, _, zero = rtn_quantize(torch.randn(*shape), spec)
    packed = pack_to_int32(codes, bits)
    assert packed.dtype == torch.int32 and packed.shape[0] == shape[0]
    assert packed.shape[1] * 32 >= shape[1] * bits  # densely packed
    assert torch.equal(unpack_from_int32(packed, bits, torch.Size(shape)), codes)
    # zero points are packed along the output dimension
    zp_packed = pack_to_int32(zero, bits, packed_dim=0)
    assert torch.equal(unpack_from_int32(zp_packed, bits, zero.shape, packed_dim=0), zero)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_extreme_codes_survive(bits):
    spec = GridSpec(bits, None, symmetric=True)
    codes = torch.tensor([[spec.qmin, spec.qmax, 0, -1] * 8], dtype=torch.int8)  # (1, 32)
    assert torch.equal(unpack_from_int32(pack_to_int32(codes, bits), bits, codes.shape), codes)
