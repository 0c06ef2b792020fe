"""Reference decompression of compressed-tensors sparse weights (`sparse-bitmask`, `sparse-24-bitmask`).

Layout: `<name>.weight.shape` (2,) the dense shape (N, K); `<name>.weight.bitmask` (N, ceil(K/8)) uint8,
bit j%8 of byte j//8 (little-endian bit order) set where w[n, j] != 0; `<name>.weight.compressed` the
non-zero values in row-major order (flat, or (N, K/2) for 2:4); `row_offsets` (unstructured only) is
not needed to decode. On CPU the dense result is also the fast path: with 50% sparsity a dense matmul
beats any sparse kernel torch offers here, so sparse checkpoints are stored small and computed dense.
"""

from __future__ import annotations

import torch

from presso.kernels.registry import register


def unpack_bitmask(bitmask: torch.Tensor, cols: int) -> torch.Tensor:
    """(N, ceil(K/8)) uint8 -> (N, K) bool."""
    bits = (bitmask.to(torch.int32)[:, :, None] >> torch.arange(8, dtype=torch.int32)) & 1  # (N, W, 8)
    return bits.flatten(1)[:, :cols].bool()


@register("sparse_decompress", "reference")
def decompress(compressed: torch.Tensor, bitmask: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Dense (N, K) weight in the values' dtype."""
    n, k = shape
    mask = unpack_bitmask(bitmask, k)
    dense = torch.zeros(n, k, dtype=compressed.dtype)
    dense[mask] = compressed.flatten()
    return dense
