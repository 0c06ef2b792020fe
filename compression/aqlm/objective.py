"""The AQLM layer objective and the weight decode it is measured on.

For a linear layer with weight W (N, K) and calibration inputs X (T, K), with H = X^T X (K, K):
    loss(W_hat) = ||X W^T - X W_hat^T||_F^2 = sum_o (w_o - w_hat_o) H (w_o - w_hat_o)^T.
W_hat rows are s_o * decode(codes_o, codebooks) (see presso.kernels.aqlm.reference). Used by the beam
search, the codebook / scale least squares and the per-layer report (output SQNR).
"""

from __future__ import annotations

import torch


def decode_unscaled(codes: torch.Tensor, books: torch.Tensor) -> torch.Tensor:
    """codes (N, G, M) int64 in [0, C), books (M, C, 8) -> (N, G*8) sum of codewords (no scales)."""
    out = books[0][codes[:, :, 0]]  # (N, G, 8)
    for m in range(1, books.shape[0]):
        out = out + books[m][codes[:, :, m]]
    return out.reshape(codes.shape[0], -1)


def decode(codes: torch.Tensor, books: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """-> W_hat (N, K) = scales (N,) * decode_unscaled."""
    return decode_unscaled(codes, books) * scales.view(-1, 1)


def layer_loss(weight: torch.Tensor, approx: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """Per-row output error (N,): diag((W - W_hat) H (W - W_hat)^T), fp32/fp64 as given."""
    err = weight - approx
    return ((err @ hessian) * err).sum(dim=1)


def damped(hessian: torch.Tensor, damp: float) -> torch.Tensor:
    """H + damp * mean(diag H) * I: keeps the least-squares problems well posed for dead inputs."""
    extra = damp * hessian.diagonal().mean().clamp_min(1e-8)
    return hessian + extra * torch.eye(hessian.shape[0], dtype=hessian.dtype, device=hessian.device)


