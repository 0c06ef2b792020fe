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
w_j + sum_{m<j} (w_m - q_m) A_mj / A_jj, so one Cholesky per row suffices (no inverse). All rows are
batched: (out, k, k) factors, rows padded with decoupled identity coordinates when their kept counts
differ. tests/compression/test_rowobs.py checks it against a readable per-row twin
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


def _reversed_factors(h: torch.Tensor, rev: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """rev (n, k): each row's kept columns in REVERSED processing order -> U (n, k, k), the upper Cholesky
    factor of H restricted to them (padding coordinates get an identity block). With P the reversal and
    L = U^T, H_KK (processing order) = A A^T for the upper A = P L P.
    Rows go through LAPACK a few at a time (chunks under 16 MB, which glibc serves from the heap) and as
    column-major views: fresh multi-hundred-MB temporaries cost as much in page faults as the factorization."""
    n, k = rev.shape
    chunk = max(1, (16 << 20) // (4 * k * k))
    factors = torch.empty(n, k, k)  # (n, k, k) fp32
    sub = torch.empty(min(chunk, n), k, k)
    for r1 in range(0, n, chunk):
        r2 = min(r1 + chunk, n)
        for i, r in enumerate(range(r1, r2)):
            torch.index_select(h.index_select(0, rev[r]), 1, rev[r], out=sub[i])
            if not bool(valid[r].all()):
                pad = ~valid[r].flip(0)
                sub[i][pad, :] = 0.0
                sub[i][:, pad] = 0.0
                sub[i].diagonal()[pad] = 1.0
        factors[r1:r2] = torch.linalg.cholesky(sub[: r2 - r1].mT).mT  # sub symmetric: chol(sub^T)^T = U
    return factors


def _solve(factors: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(U^T U) x = b for every row: factors (n, k, k) upper, b (n, k) -> x (n, k). Two substitutions that
    read U by rows (torch.cholesky_solve would first copy all factors to column-major)."""
    k = b.shape[1]
    b = b.clone()
    y = torch.empty_like(b)
    for i in range(k):  # U^T y = b, column-oriented
        y[:, i] = b[:, i] / factors[:, i, i]
        b[:, i + 1 :] -= y[:, i, None] * factors[:, i, i + 1 :]
    x = torch.empty_like(b)
    for i in range(k - 1, -1, -1):  # U x = y
        x[:, i] = (y[:, i] - (factors[:, i, i + 1 :] * x[:, i + 1 :]).sum(1)) / factors[:, i, i]
    return x


@dataclass(frozen=True, slots=True)
class GridFit:
    """How the joint pass gets its static group grids: fitted to the compensated kept weights (min-max, or the Hessian-weighted clip search with (ratios tried, smallest ratio)), or given
    (`fixed` = (scale, zero) (out, G) fp32 of an earlier quantize step)."""

    spec: GridSpec
    clip: tuple[int, float] | None = None
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def grids(self, w: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w (out, in) compensated weights -> scale, zero (out, G) fp32."""
        if self.fixed is not None:
            return self.fixed[0].float(), self.fixed[1].float()
        if self.clip is None:
            return minmax_grid(w, self.spec)
        return clipped_grid(w, h, self.spec, *self.clip)


@torch.no_grad()
def exact_rows(w: torch.Tensor, h: torch.Tensor, keep: torch.Tensor, grid: GridFit | None = None,
               actorder: bool = True) -> PrunedWeight:
    """w (out, in), h (in, in) already damped (`damped`), keep (out, in) -> the row-exact weights, 0 where
    pruned; with `grid`, quantized in the per-row pass (pruned codes = zero point, i.e. exact 0)."""
    w = w.float()
    idx, valid = _kept_order(keep, h, actorder)  # (out, k)
    rev = idx.flip(1)
    factors = _reversed_factors(h, rev, valid)  # (out, k, k) upper
    rhs = torch.gather((w * ~keep) @ h, 1, rev) * valid.flip(1)  # H_KP w_P (out, k), reversed; H symmetric
    delta = _solve(factors, rhs).flip(1)  # H_KK^-1 H_KP w_P
    wk = (torch.gather(w, 1, idx) + delta) * valid  # (out, k) compensated kept weights, processing order
    if grid is None:
        return PrunedWeight(torch.zeros_like(w).scatter(1, idx, wk) * keep, keep, None)
    width = grid.spec.width(w.shape[1])
    scale, zero = grid.grids(torch.zeros_like(w).scatter(1, idx, wk), h)  # (out, G)
    s, z = torch.gather(scale, 1, idx // width), torch.gather(zero, 1, idx // width)  # (out, k)
    q = torch.where(valid, _nearest_plane(wk, factors, s, z, grid.spec), z)
    codes = zero.repeat_interleave(width, 1).scatter(1, idx, q)  # (out, in) integral fp32
    qw = QuantizedWeight(codes=codes.to(torch.int8), scale=scale, zero=zero.to(torch.int8), spec=grid.spec)
    return PrunedWeight(qw.dequantize() * keep, keep, qw)


def _nearest_plane(wk: torch.Tensor, factors: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor,
                   spec: GridSpec) -> torch.Tensor:
    """GPTQ over each row's kept coordinates, Babai form. wk/scale/zero (n, k) in processing order,
    factors (n, k, k) the reversed upper factors U -> codes (n, k) integral fp32. A[m, j] = U[k-1-j, k-1-m],
    so column j's feedback sum over m < j reads row k-1-j of U from column k-j on, against the differences
    kept in reversed order."""
    k = wk.shape[1]
    diff = torch.zeros_like(wk)  # (n, k) w - w_hat of the columns done so far, REVERSED: diff[:, k-1-m]
    codes = torch.zeros_like(wk)
    for j in range(k):
        r = k - 1 - j
        feedback = (diff[:, r + 1:] * factors[:, r, r + 1:]).sum(1) / factors[:, r, r]
        codes[:, j] = quantize_codes(wk[:, j] + feedback, scale[:, j], zero[:, j], spec)
        diff[:, r] = wk[:, j] - (codes[:, j] - zero[:, j]) * scale[:, j]
    return codes
