"""AQLM Triton kernel (GPU; runs on CPU tensors under TRITON_INTERPRET=1 for the conformance test).

One program computes BLOCK_N outputs of one input row: it walks K in BLOCK_K steps, gathers the codes
(BLOCK_N, BLOCK_K) of those columns, sums the M codewords' entries into a weight tile in registers
(fp32), multiplies by the x slice and accumulates; the scale is applied once at the end. The dense
weight is never written to memory. Layout as in kernels/aqlm/reference.py (out_group_size 1 only).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the `triton` extra is optional; available() reports it
    triton = None
    tl = None


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _aqlm_matvec_kernel(
        x_ptr, codes_ptr, books_ptr, scales_ptr, y_ptr,
        N, K, stride_xb, stride_yb,
        NUM_CODEBOOKS: tl.constexpr, CODEBOOK_SIZE: tl.constexpr, IN_GROUP: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid_b = tl.program_id(0)
        rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
        row_ok = rows < N
        num_groups = K // IN_GROUP
        acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)  # (BLOCK_K,)
            col_ok = cols < K
            x = tl.load(x_ptr + pid_b * stride_xb + cols, mask=col_ok, other=0.0).to(tl.float32)
            group = cols // IN_GROUP
            within = cols % IN_GROUP
            ok = row_ok[:, None] & col_ok[None, :]
            tile = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
            for m in tl.static_range(NUM_CODEBOOKS):
                code_off = (rows[:, None] * num_groups + group[None, :]) * NUM_CODEBOOKS + m
                code = tl.load(codes_ptr + code_off, mask=ok, other=0).to(tl.int32) & (CODEBOOK_SIZE - 1)
                book_off = (m * CODEBOOK_SIZE + code) * IN_GROUP + within[None, :]
                tile += tl.load(books_ptr + book_off, mask=ok, other=0.0).to(tl.float32)
            acc += tl.sum(tile * x[None, :], axis=1)
        scale = tl.load(scales_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
        tl.store(y_ptr + pid_b * stride_yb + rows, acc * scale, mask=row_ok)


def matmul(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
    block_n: int = 32,
    block_k: int = 64,
) -> torch.Tensor:
    """y = x @ W^T (+ bias) for x (..., K) -> (..., O) in x's dtype (fp32 accumulation)."""
    if triton is None:
        raise RuntimeError("the AQLM Triton kernel needs the `triton` package (pip install presso[triton])")
    num_out, num_in, num_codebooks = codes.shape
    _, size, out_group, in_group = codebooks.shape
    if out_group != 1:
        raise ValueError(f"the Triton AQLM kernel supports out_group_size 1, got {out_group}")
    x2d = x.reshape(-1, x.shape[-1]).contiguous()
    if x2d.shape[1] != num_in * in_group:
        raise ValueError(f"x has {x2d.shape[1]} features, the weight expects {num_in * in_group}")
    y = torch.empty(x2d.shape[0], num_out, dtype=torch.float32, device=x.device)
    grid = (x2d.shape[0], triton.cdiv(num_out, block_n))
    _aqlm_matvec_kernel[grid](
        x2d, codes.contiguous(), codebooks.contiguous(), scales.reshape(-1).contiguous(), y,
        num_out, x2d.shape[1], x2d.stride(0), y.stride(0),
        NUM_CODEBOOKS=num_codebooks, CODEBOOK_SIZE=size, IN_GROUP=in_group, BLOCK_N=block_n, BLOCK_K=block_k,
    )
    y = y.to(x.dtype)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.view(*x.shape[:-1], num_out)
