"""Which heads / MLP channels a layer keeps, and the least-squares compensation of the removed ones.

Importance of an input group S of an output projection W (out, in) with input Hessian H = 2/n X^T X:
the energy of its contribution to the output, trace(W[:, S] H[S, S] W[:, S]^T) = 2/n ||W[:, S] X_S||^2,
i.e. the output error of removing S alone without compensation (a channel: ||W[:, j]||^2 H_jj; a head:
its head_dim columns of o_proj together). Compensation: with kept set K and removed set R,
argmin_W' ||W' X_K - W X||^2 = W_K + W_R H_RK H_KK^-1 (closed form, H_KK damped).
"""

from __future__ import annotations

import torch


def group_scores(weight: torch.Tensor, hessian: torch.Tensor, group: int) -> torch.Tensor:
    """weight (out, in) fp32, hessian (in, in) fp32 -> (in // group,) output energy per column group."""
    out, n_in = weight.shape
    w = weight.reshape(out, n_in // group, group).transpose(0, 1)  # (G, out, g)
    h = hessian.reshape(n_in // group, group, n_in // group, group).diagonal(dim1=0, dim2=2)  # (g, g, G)
    h = h.permute(2, 0, 1)  # (G, g, g) diagonal blocks
    return torch.einsum("gop,gpq,goq->g", w, h, w)  # (G,)


def keep_channels(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """(C,) scores -> (keep,) int64 indices of the highest, ascending (original order)."""
    return torch.topk(scores, keep).indices.sort().values


def keep_heads(scores: torch.Tensor, num_kv: int, keep_per_group: int) -> torch.Tensor:
    """(H,) head scores -> kept q-head indices, `keep_per_group` in each KV group (q head i reads KV head
    i // (H / num_kv), HF's repeat_kv layout), ascending."""
    per = scores.numel() // num_kv
    kept = [g * per + keep_channels(scores[g * per:(g + 1) * per], keep_per_group) for g in range(num_kv)]
    return torch.cat(kept)


def head_columns(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(k,) head indices -> (k * head_dim,) feature indices."""
    return (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)


def compensated(weight: torch.Tensor, hessian: torch.Tensor, kept: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """weight (out, in), hessian (in, in), kept (k,) -> (out, k): W_K + W_R H_RK H_KK^-1."""
    mask = torch.ones(weight.shape[1], dtype=torch.bool)
    mask[kept] = False
    removed = mask.nonzero().squeeze(1)
    h_kk = hessian[kept][:, kept].double()  # (k, k)
    h_kk += damp * h_kk.diagonal().mean() * torch.eye(len(kept), dtype=torch.float64)
    h_rk = hessian[removed][:, kept].double()  # (r, k)
    w = weight.double()
    delta = torch.linalg.solve(h_kk, (w[:, removed] @ h_rk).T).T  # (out, k) = W_R H_RK H_KK^-1
    return (w[:, kept] + delta).to(weight.dtype)
