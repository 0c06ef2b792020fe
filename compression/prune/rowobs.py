"""Exact per-row OBS (in the spirit of OBC, arXiv 2208.11580): the weights SparseGPT's shared-Hessian pass
only approximates, recomputed row by row for the mask it chose.

W (out, in) fp32, H (in, in), keep (out, in) bool -> for each row r with kept set K and pruned set P:
1. compensation: the least-squares optimum with w_P = 0, w_K* = w_K + H_KK^-1 H_KP w_P (SparseGPT spreads
   each pruned weight's error only over the columns after it, through one H^-1 shared by all rows, so a
   row's compensation is not optimal for its own mask);
2. optionally one OBS quantization pass over K with the row's own Hessian H_KK (GPTQ on the kept
   coordinates: what a joint prune + quantize pass should do, since a pruned coordinate is fixed at 0
   and cannot absorb later rounding errors). Columns run by decreasing diag(H) (`actorder`) or left to
   right; grids are static per group.
The quantization pass uses Babai's nearest-plane form of GPTQ: with H_KK = A A^T, A upper triangular
(a Cholesky factor of the reversed matrix), the target of the j-th kept column is
w_j + sum_{m<j} (w_m - q_m) A_mj / A_jj, so one Cholesky per row suffices (no inverse). The rows of a
chunk are batched: (rows, k, k) Hessians, rows padded with decoupled identity coordinates when their
kept counts differ. tests/compression/test_rowobs.py checks it against a readable per-row twin
(explicit H_KK^-1 and GPTQ's update through the Cholesky factor of the inverse).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.compression.methods.clip import clipped_grid, minmax_grid
from presso.compression.methods.grid import GridSpec, quantize_codes
from presso.compression.methods.registry import QuantizedWeight
from presso.compression.prune.types import PrunedWeight


def damped(h: torch.Tensor, damp: float) -> torch.Tensor:
    """H (in, in) -> H + damp*mean(diag H)*I, with never-active inputs given a unit diagonal."""
    h = h.float().clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    h.diagonal().add_(damp * h.diagonal().mean())
    return h


def _kept_order(keep: torch.Tensor, h: torch.Tensor, actorder: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """keep (n, in) -> idx (n, k): each row's kept columns in processing order, padded; valid (n, k)."""
    n, cols = keep.shape
    k = int(keep.sum(1).max())
    key = -h.diagonal() if actorder else torch.arange(cols, dtype=h.dtype)
    key = torch.where(keep, key[None, :].expand(n, cols), torch.full((n, cols), float("inf")))
    idx = torch.argsort(key, dim=1, stable=True)[:, :k]  # (n, k)
    return idx, torch.gather(keep, 1, idx)


def _reversed_factor(h: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """-> lower Cholesky factor (n, k, k) of H restricted to each row's kept columns in REVERSED processing
    order (padding coordinates get an identity block). With P the reversal, H_KK = A A^T for the upper
    A = P L P, i.e. A[m, j] = L[k-1-m, k-1-j]."""
    rev = idx.flip(1)
    sub = h[rev[:, :, None], rev[:, None, :]]  # (n, k, k)
    eye = torch.eye(idx.shape[1], dtype=h.dtype).expand_as(sub)
    vrev = valid.flip(1)
    return torch.linalg.cholesky(torch.where(vrev[:, :, None] & vrev[:, None, :], sub, eye))


@dataclass(frozen=True, slots=True)
class GridFit:
    """How the joint pass gets its static group grids: fitted per chunk of rows to the compensated kept
    weights (min-max, or the Hessian-weighted clip search with (ratios tried, smallest ratio)), or given
    (`fixed` = (scale, zero) (out, G) fp32 of an earlier quantize step)."""

    spec: GridSpec
    clip: tuple[int, float] | None = None
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def grids(self, w: torch.Tensor, h: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """w (n, in) compensated rows -> scale, zero (n, G) fp32."""
        if self.fixed is not None:
            return self.fixed[0][rows].float(), self.fixed[1][rows].float()
        if self.clip is None:
            return minmax_grid(w, self.spec)
        return clipped_grid(w, h, self.spec, *self.clip)


@torch.no_grad()
def exact_rows(w: torch.Tensor, h: torch.Tensor, keep: torch.Tensor, grid: GridFit | None = None,
               actorder: bool = True, chunk: int = 128) -> PrunedWeight:
    """w (out, in), h (in, in) already damped (`damped`), keep (out, in) -> the row-exact weights, 0 where
    pruned; with `grid`, quantized in the per-row pass (pruned codes = zero point, i.e. exact 0)."""
    w = w.float()
    out_features, cols = w.shape
    out = torch.zeros_like(w)
    width = grid.spec.width(cols) if grid is not None else cols
    codes = torch.zeros_like(w)  # (out, in) integral fp32
    scales, zeros = [], []
    for r1 in range(0, out_features, chunk):
        rows = slice(r1, min(r1 + chunk, out_features))
        idx, valid = _kept_order(keep[rows], h, actorder)
        low = _reversed_factor(h, idx, valid)  # (n, k, k)
        rhs = torch.gather((w[rows] * ~keep[rows]) @ h, 1, idx) * valid  # H_KP w_P (n, k); H symmetric
        delta = torch.cholesky_solve(rhs.flip(1)[:, :, None], low)[:, :, 0].flip(1)  # H_KK^-1 H_KP w_P
        wk = (torch.gather(w[rows], 1, idx) + delta) * valid  # (n, k) compensated kept weights
        if grid is not None:
            scale, zero = grid.grids(torch.zeros_like(w[rows]).scatter(1, idx, wk), h, rows)  # (n, G)
            scales.append(scale)
            zeros.append(zero)
            s, z = torch.gather(scale, 1, idx // width), torch.gather(zero, 1, idx // width)  # (n, k)
            q = torch.where(valid, _nearest_plane(wk, low, s, z, grid.spec), z)
            codes[rows] = zero.repeat_interleave(width, 1).scatter(1, idx, q)
            wk = (q - z) * s * valid
        out[rows] = out[rows].scatter(1, idx, wk)
    if grid is None:
        return PrunedWeight(out * keep, keep, None)
    qw = QuantizedWeight(codes=codes.to(torch.int8), scale=torch.cat(scales), zero=torch.cat(zeros).to(torch.int8),
                         spec=grid.spec)
    return PrunedWeight(qw.dequantize() * keep, keep, qw)


def _nearest_plane(wk: torch.Tensor, low: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
                   spec: GridSpec) -> torch.Tensor:
    """GPTQ over each row's kept coordinates, Babai form. wk/scale/zero (n, k), low (n, k, k) the reversed
    factor -> codes (n, k) integral fp32."""
    at = low.transpose(1, 2).flip(1, 2).contiguous()  # (n, k, k) lower: at[:, j, m] = A[:, m, j]
    diff = torch.zeros_like(wk)  # (n, k) w - w_hat of the columns done so far
    codes = torch.zeros_like(wk)
    for j in range(wk.shape[1]):
        target = wk[:, j] + (diff[:, :j] * at[:, j, :j]).sum(1) / at[:, j, j]
        codes[:, j] = quantize_codes(target, scale[:, j], zero[:, j], spec)
        diff[:, j] = wk[:, j] - (codes[:, j] - zero[:, j]) * scale[:, j]
    return codes
