"""AQLM reference kernels: the readable spec of the additive-quantization weight layout.

Layout (AQLM's Hugging Face format, one quantized nn.Linear with weight (out_features, in_features)):
- `codes`     (out_features // out_group, in_features // in_group, num_codebooks) integer. Stored signed
              (int8 for <= 8-bit codes, int16 for <= 16-bit): a stored value v < 0 means code v + 2**nbits.
- `codebooks` (num_codebooks, 2**nbits, out_group, in_group) float (fp16 on disk).
- `scales`    (out_features // out_group, 1, 1, 1) float, one per output group.
Weight block (i, j) of shape (out_group, in_group) = scales[i] * sum_m codebooks[m, codes[i, j, m]].

Everything faster (kernels/aqlm/cpu.py, kernels/aqlm/triton.py) is tested against these functions.
"""

from __future__ import annotations

import torch


def unsigned_codes(codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """Signed storage codes -> codebook row indices in [0, 2**nbits), int64, same shape."""
    return codes.long() % (1 << nbits)


def signed_codes(codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """Codebook row indices in [0, 2**nbits) -> AQLM's signed storage (int8 up to 8 bits, else int16)."""
    assert nbits <= 16, "AQLM stores codes of at most 16 bits"
    wide = codes.long()
    wide = torch.where(wide >= (1 << (nbits - 1)), wide - (1 << nbits), wide)
    return wide.to(torch.int8 if nbits <= 8 else torch.int16)


def nbits_of(codebooks: torch.Tensor) -> int:
    """Bits per code from a codebook tensor (num_codebooks, 2**nbits, out_group, in_group)."""
    size = codebooks.shape[1]
    assert size & (size - 1) == 0, f"codebook size {size} is not a power of two"
    return size.bit_length() - 1


def dequantize(codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Decode to the dense weight (out_features, in_features), fp32 (fp64 for fp64 codebooks).

    fp16/bf16 codebooks and scales are widened first, so every backend sums codewords in fp32.
    """
    num_out, num_in, num_codebooks = codes.shape
    _, _, out_group, in_group = codebooks.shape
    dtype = torch.promote_types(codebooks.dtype, torch.float32)
    books = codebooks.to(dtype)
    idx = unsigned_codes(codes, nbits_of(codebooks))  # (O, I, M) int64
    blocks = torch.zeros(num_out, num_in, out_group, in_group, dtype=dtype, device=codebooks.device)
    for m in range(num_codebooks):
        blocks += books[m][idx[:, :, m]]  # (O, I, out_group, in_group)
    blocks = blocks * scales.to(dtype).view(num_out, 1, 1, 1)
    # (O, I, og, ig) -> (O, og, I, ig) -> (O*og, I*ig): row-major weight
    return blocks.permute(0, 2, 1, 3).reshape(num_out * out_group, num_in * in_group)


def matmul(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = x @ W^T (+ bias) for x (..., in_features): decode W, then a dense matmul in x's dtype."""
    weight = dequantize(codes, codebooks, scales).to(x.dtype)
    return torch.nn.functional.linear(x, weight, None if bias is None else bias.to(x.dtype))
