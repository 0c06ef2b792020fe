"""Least-squares updates of one layer's codebooks and scales with the codes held fixed.

Both solve the output-error objective sum_o (w_o - s_o d_o) H (w_o - s_o d_o)^T (objective.py):
- scales: per row a 1-D least squares, s_o = (d_o H w_o^T) / (d_o H d_o^T), exact.
- codebooks: the objective is quadratic in the codebook entries theta (M, C, 8). With A the linear map
  theta -> s * decode(codes, theta) (N, K) and A^T its adjoint (a scatter-add of s-weighted rows into the
  codewords they use), the normal equations A^T (A theta H) = A^T (W H) are solved by conjugate gradient
  started at the current codebooks. CG decreases the quadratic monotonically; the result is kept only if
  the objective did not increase.
"""

from __future__ import annotations

import torch

from presso.compression.aqlm.objective import decode, decode_unscaled, layer_loss


def update_scales(weight: torch.Tensor, codes: torch.Tensor, books: torch.Tensor, hessian: torch.Tensor) -> torch.Tensor:
    """-> scales (N,) minimising the objective for fixed codes and codebooks."""
    d = decode_unscaled(codes, books)  # (N, K)
    dh = d @ hessian  # (N, K)
    num = (dh * weight).sum(-1)
    den = (dh * d).sum(-1)
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.ones_like(num))


def _adjoint(resid: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, size: int) -> torch.Tensor:
    """A^T: resid (N, K) -> (M, C, 8): sum of s_o * resid[o, group g] into codeword codes[o, g, m]."""
    num_out, groups, num_codebooks = codes.shape
    pieces = (resid * scales.view(-1, 1)).reshape(num_out * groups, 8)  # (N*G, 8)
    out = torch.zeros(num_codebooks, size, 8, dtype=resid.dtype)
    for m in range(num_codebooks):
        out[m].index_add_(0, codes[:, :, m].reshape(-1), pieces)
    return out


def update_codebooks(
    weight: torch.Tensor, codes: torch.Tensor, books: torch.Tensor, scales: torch.Tensor,
    hessian: torch.Tensor, iters: int,
) -> torch.Tensor:
    """-> codebooks (M, C, 8) after `iters` CG steps on the normal equations (never worse than `books`)."""
    size = books.shape[1]

    def normal_op(theta: torch.Tensor) -> torch.Tensor:  # theta (M, C, 8) -> A^T (A theta H)
        return _adjoint(decode(codes, theta, scales) @ hessian, codes, scales, size)

    theta = books.clone()
    rhs = _adjoint(weight @ hessian, codes, scales, size)
    r = rhs - normal_op(theta)
    p = r.clone()
    rr = (r * r).sum()
    for _ in range(iters):
        if rr <= 1e-20:
            break
        qp = normal_op(p)
        alpha = rr / (p * qp).sum().clamp_min(1e-30)
        theta = theta + alpha * p
        r = r - alpha * qp
        rr_new = (r * r).sum()
        p = r + (rr_new / rr) * p
        rr = rr_new
    before = layer_loss(weight, decode(codes, books, scales), hessian).sum()
    after = layer_loss(weight, decode(codes, theta, scales), hessian).sum()
    return theta if after <= before else books
