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
w_j + sum_{m<j} (w_m - q_m) A_mj / A_jj, so one Cholesky per row suffices (no inverse). Rows are
batched in chunks of (n, k, k) factors, padded with decoupled identity coordinates when their kept
counts differ. tests/compression/test_rowobs.py checks it against a readable per-row twin
(explicit H_KK^-1 and GPTQ's update through the Cholesky factor of the inverse).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.compression.methods.clip import clipped_grid, minmax_grid
from presso.compression.methods.grid import GridSpec, quantize_codes, to_weight
from presso.compression.prune.types import PrunedWeight


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
    chunk = max(1, (16 << 20) // (4 * max(1, k * k)))
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
    """How the joint pass gets its static group grids: fitted to the compensated kept weights (min-max, or
    the Hessian-weighted clip search with (ratios tried, smallest ratio)), or given (`fixed` = (scale,
    zero) (out, G) fp32 of an earlier quantize step). Grids are per row, so they are fitted chunk by chunk."""

    spec: GridSpec
    clip: tuple[int, float] | None = None
    fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def grids(self, w: torch.Tensor, h: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """w (n, in) compensated weights of the layer's `rows` -> scale, zero (n, G) fp32."""
        if self.fixed is not None:
            return self.fixed[0][rows].float(), self.fixed[1][rows].float()
        if self.clip is None:
            return minmax_grid(w, self.spec)
        return clipped_grid(w, h, self.spec, *self.clip)


@torch.no_grad()
def exact_rows(w: torch.Tensor, h: torch.Tensor, keep: torch.Tensor, grid: GridFit | None = None,
               actorder: bool = True, budget: int = 512 << 20) -> PrunedWeight:
    """w (out, in), h (in, in) already damped (methods.gptq.damped), keep (out, in) -> the row-exact
    weights, 0 where pruned; with `grid`, quantized in the per-row pass (pruned codes = zero point, i.e.
    exact 0). Rows go in chunks whose (n, k, k) fp32 factors fit in `budget` bytes; cost O(out * k^3)
    for k kept per row."""
    w = w.float()
    idx, valid = _kept_order(keep, h, actorder)  # (out, k)
    width = grid.spec.width(w.shape[1]) if grid is not None else w.shape[1]
    out = torch.zeros_like(w)
    codes, scales, zeros = torch.zeros_like(w), [], []  # codes (out, in) integral fp32
    chunk = max(1, budget // (4 * max(1, idx.shape[1]) ** 2))
    for r1 in range(0, w.shape[0], chunk):
        rows = slice(r1, min(r1 + chunk, w.shape[0]))
        i, v = idx[rows], valid[rows]  # (n, k)
        factors = _reversed_factors(h, i.flip(1), v)  # (n, k, k) upper
        rhs = torch.gather((w[rows] * ~keep[rows]) @ h, 1, i.flip(1)) * v.flip(1)  # H_KP w_P reversed; H symmetric
        wk = (torch.gather(w[rows], 1, i) + _solve(factors, rhs).flip(1)) * v  # (n, k) w_K + H_KK^-1 H_KP w_P
        if grid is not None:
            scale, zero = grid.grids(torch.zeros_like(w[rows]).scatter(1, i, wk), h, rows)  # (n, G)
            s, z = torch.gather(scale, 1, i // width), torch.gather(zero, 1, i // width)  # (n, k)
            q = torch.where(v, _nearest_plane(wk, factors, s, z, grid.spec), z)
            codes[rows] = zero.repeat_interleave(width, 1).scatter(1, i, q)
            scales.append(scale)
            zeros.append(zero)
            wk = (q - z) * s * v
        out[rows] = out[rows].scatter(1, i, wk)
    if grid is None:
        return PrunedWeight(out * keep, keep, None)
    qw = to_weight(codes, torch.cat(scales), torch.cat(zeros), grid.spec)
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
