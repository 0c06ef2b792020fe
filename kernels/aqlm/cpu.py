"""AQLM CPU kernels: y = x @ W^T without materialising the dense weight W.

Two paths, both checked against kernels/aqlm/reference.py:
- lookup table (`lut_matmul`, small codebooks such as 2x8 / 1x8): per input group j and codebook m,
  table[m, j, c, b] = <x[b, group j], codebooks[m, c]>; then y[b, o] = scales[o] * sum_{j,m}
  table[m, j, codes[o, j, m], b], a gather-sum done by `embedding_bag` (one fused pass over the codes).
  Cost ~ B*M*2^nbits*K multiply-adds + O*(K/8)*M gathers, independent of a dense O*K decode.
- tiled decode (`tiled_matmul`, large codebooks such as 1x16, where the table would be bigger than the
  weight): decode `tile` output rows at a time and multiply; only one tile of W exists at once.
`matmul` picks between them by cost. Activations may be fp32 or bf16; accumulation is in x's dtype for
the matmuls and fp32 for the table gather-sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from presso.kernels.aqlm.reference import nbits_of


def _check(x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor) -> None:
    if codebooks.shape[2] != 1:
        raise ValueError(f"the CPU AQLM kernel supports out_group_size 1, got {codebooks.shape[2]}")
    if x.shape[-1] != codes.shape[1] * codebooks.shape[3]:
        raise ValueError(f"x has {x.shape[-1]} features, the weight expects {codes.shape[1] * codebooks.shape[3]}")


def flat_lut_index(codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """codes (O, I, M) signed -> (O, I*M) int32 rows into a table laid out (M, I, 2**nbits)."""
    num_out, num_in, num_codebooks = codes.shape
    size = 1 << nbits
    if codes.dtype == torch.int8 and nbits == 8:
        idx = codes.view(torch.uint8).to(torch.int32)  # reinterpreting the byte = unsigned code
    else:
        idx = codes.to(torch.int32) & (size - 1)  # two's complement mask = unsigned code
    offsets = torch.arange(num_codebooks, dtype=torch.int32, device=codes.device).view(1, 1, -1) * (num_in * size)
    offsets = offsets + torch.arange(num_in, dtype=torch.int32, device=codes.device).view(1, -1, 1) * size
    return (idx + offsets).view(num_out, num_in * num_codebooks)  # offsets (1, I, M) broadcast


def lut_matmul(x2d: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x2d (B, K) -> (B, O) via input-codebook products (see module docstring)."""
    batch = x2d.shape[0]
    num_out, num_in, num_codebooks = codes.shape
    in_group = codebooks.shape[3]
    groups = x2d.float().view(batch, num_in, in_group)  # (B, I, ig)
    books = codebooks[:, :, 0, :].float()  # (M, C, ig)
    # table[m, i, c, b] = sum_k books[m, c, k] * groups[b, i, k]  -> (M, I, C, B)
    table = torch.einsum("mck,bik->micb", books, groups).reshape(-1, batch)
    index = flat_lut_index(codes, nbits_of(codebooks))  # (O, I*M)
    summed = F.embedding_bag(index, table, mode="sum")  # (O, B) fp32
    return (summed * scales.view(num_out, 1).float()).t().to(x2d.dtype)


def decode_rows(codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Dense rows of W for codes (t, I, M) and their scales (t, 1, 1, 1) -> (t, I*ig) fp32."""
    size = 1 << nbits_of(codebooks)
    rows = codes.to(torch.int64) & (size - 1)  # (t, I, M) unsigned codes
    books = codebooks[:, :, 0, :].float()  # (M, C, ig)
    block = F.embedding(rows[:, :, 0], books[0])  # (t, I, ig)
    for m in range(1, codes.shape[2]):
        block += F.embedding(rows[:, :, m], books[m])
    return block.view(codes.shape[0], -1) * scales.reshape(-1, 1).float()


def dequantize(codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The whole dense weight (O, K) fp32 (the dequantize-then-matmul baseline; equals reference)."""
    if codebooks.shape[2] != 1:
        raise ValueError(f"the CPU AQLM kernel supports out_group_size 1, got {codebooks.shape[2]}")
    return decode_rows(codes, codebooks, scales)


def tiled_matmul(
    x2d: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor, tile: int = 256
) -> torch.Tensor:
    """x2d (B, K) -> (B, O), decoding `tile` rows of W (tile, K) at a time (fp32 sums, x's dtype matmul)."""
    num_out = codes.shape[0]
    out = torch.empty(x2d.shape[0], num_out, dtype=x2d.dtype, device=x2d.device)
    for start in range(0, num_out, tile):
        block = decode_rows(codes[start : start + tile], codebooks, scales[start : start + tile])  # (t, K)
        out[:, start : start + tile] = x2d @ block.to(x2d.dtype).t()
    return out


def use_lut(batch: int, codes: torch.Tensor, codebooks: torch.Tensor) -> bool:
    """Cost model: the table costs B*M*C*K multiply-adds, a decode ~ O*K*M gathers + B*O*K multiply-adds;
    measured here, tables win up to B*C ~ 16*O (all 2x8 / 1x8 shapes of SmolLM2 at batch <= 16)."""
    return batch * codebooks.shape[1] <= 16 * codes.shape[0]


def matmul(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = x @ W^T (+ bias) for x (..., K) -> (..., O) in x's dtype; W never materialised whole."""
    _check(x, codes, codebooks)
    x2d = x.reshape(-1, x.shape[-1])
    if use_lut(x2d.shape[0], codes, codebooks):
        y = lut_matmul(x2d, codes, codebooks, scales)
    else:
        y = tiled_matmul(x2d, codes, codebooks, scales)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.view(*x.shape[:-1], codes.shape[0])
