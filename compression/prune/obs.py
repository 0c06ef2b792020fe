"""SparseGPT (Frantar & Alistarh, arXiv 2301.00774): OBS pruning with lazy block updates, optionally joint
with quantization of the kept weights (the paper's joint mode; cf. arXiv 2302.07612).

W (out, in) fp32 + H = 2/n X^T X (in, in) -> columns processed left to right in blocks; U = upper
Cholesky factor of (H + damp*mean(diag H)*I)^-1, d = diag(U). Mask selection is adaptive: unstructured
prunes round(ratio * B) weights per row of each block of B columns by the OBS saliency w^2 / d^2, taken
when the block starts; N:M picks M - N per row of every M columns when that group starts. Each column's
target is 0 where pruned, else the weight itself (prune only) or its rounding on the grid; the error
(w - target) / d is spread over the remaining columns. With `propagate=False` no weight is updated (the
mask still comes from the OBS saliency), which keeps kept weights exactly on a fixed grid.
`sparsegpt_rows` is the default (params.exact_rows): the same adaptive mask, then each row's weights
recomputed exactly for its own mask, pruned and quantized in one per-row OBS pass (rowobs.py).
`sparsegpt_actorder` (exact_rows: false) instead runs one act-order OBS pass with the shared Hessian.
"""

from __future__ import annotations

import math

import torch

from presso.compression.methods.clip import clip_search
from presso.compression.methods.gptq import GptqParams, damped, gptq_pass, inverse_factor
from presso.compression.methods.grid import GridSpec, grid_params, quantize_codes, spec_of, to_weight, zero_of
from presso.compression.methods.registry import QuantizedWeight
from presso.compression.prune.masks import keep_mask
from presso.compression.prune.rowobs import GridFit, exact_rows
from presso.compression.prune.spec import SparsitySpec
from presso.compression.prune.types import Grid, PrunedWeight


def _start_grid(w: torch.Tensor, grid: Grid) -> tuple[GridSpec | None, torch.Tensor | None, torch.Tensor | None]:
    """-> (spec, scale (out, G), zero (out, G) fp32) to start from; fitted groups are filled in later."""
    if grid is None:
        return None, None, None
    if isinstance(grid, QuantizedWeight):
        return spec_of(grid), grid.scale.float().clone(), zero_of(grid).float()
    groups = grid.groups(w.shape[1])
    if grid.group_size is None:  # per channel: the row's range is needed before its first column
        scale, zero = grid_params(w, grid)
        return grid, scale[:, None], zero[:, None]
    return grid, torch.ones(w.shape[0], groups), torch.zeros(w.shape[0], groups)


@torch.no_grad()
def sparsegpt(w: torch.Tensor, h: torch.Tensor, sparsity: SparsitySpec, grid: Grid = None, damp: float = 0.01,
              block_size: int = 128, propagate: bool = True, clip: tuple[int, float] | None = None) -> PrunedWeight:
    """Joint mode fits each group's grid when the group starts; `clip` = (ratios tried, smallest ratio)
    picks its range by the Hessian-weighted rounding error of the kept weights (as GPTQ's clip option)."""
    w, h = w.float().clone(), h.float().clone()  # (out, in), (in, in)
    out_features, cols = w.shape
    dead = h.diagonal() == 0  # inputs never active: keep H invertible
    h[dead, dead] = 1.0
    u = inverse_factor(h, damp)  # (in, in) upper
    spec, scale, zero = _start_grid(w, grid)
    fit = spec is not None and not isinstance(grid, QuantizedWeight) and spec.group_size is not None
    width = spec.width(cols) if spec is not None else cols
    step = math.lcm(sparsity.m or 1, width if fit else 1)
    block = max(step, block_size // step * step)
    keep = torch.ones(out_features, cols, dtype=torch.bool)
    codes = torch.zeros(out_features, cols) if spec is not None else None  # integral fp32
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]  # (out, B), (B, B)
        d = u1.diagonal()  # (B,)
        err1 = torch.zeros_like(w1)
        keep1 = keep[:, i1:i2]  # view: masks are written straight into `keep`
        if sparsity.m is None:
            keep1.copy_(keep_mask(w1.pow(2) / d.pow(2), sparsity))
        for i in range(i2 - i1):
            col = i1 + i
            if sparsity.m is not None and i % sparsity.m == 0:
                j = slice(i, i + sparsity.m)
                keep1[:, j] = keep_mask(w1[:, j].pow(2) / d[j].pow(2), sparsity)
            x = w1[:, i]  # (out,)
            if spec is None:
                target = x * keep1[:, i]
            else:
                g = col // width
                if fit and col % width == 0:  # a group starts: grid from the updated, masked-so-far weights
                    wg = w1[:, i : i + width] * keep1[:, i : i + width]  # (out, width)
                    if clip is None:
                        scale[:, g], zero[:, g] = grid_params(wg, spec)
                    else:
                        blocks = h[None, col : col + width, col : col + width]  # (1, width, width)
                        scale[:, g], zero[:, g] = (t[:, 0] for t in clip_search(wg, blocks, spec, *clip))
                q = quantize_codes(x, scale[:, g], zero[:, g], spec)
                q = torch.where(keep1[:, i], q, zero[:, g])  # pruned -> zero point -> exactly 0
                codes[:, col] = q
                target = (q - zero[:, g]) * scale[:, g]
            if propagate:
                e = (x - target) / d[i]  # (out,)
                w1[:, i:] -= e[:, None] * u1[i, i:][None, :]
                err1[:, i] = e
            w1[:, i] = target
        w[:, i1:i2] = w1
        if propagate:
            w[:, i2:] -= err1 @ u[i1:i2, i2:]
    qw = None
    if spec is not None:
        qw = to_weight(codes, scale, zero, spec)
        w = qw.dequantize()
    return PrunedWeight(w * keep, keep, qw)


@torch.no_grad()
def sparsegpt_actorder(w: torch.Tensor, h: torch.Tensor, sparsity: SparsitySpec, spec: GridSpec, damp: float,
                       block_size: int, clip: tuple[int, float] | None) -> PrunedWeight:
    """Joint prune + quantize with act-order: the mask comes from a SparseGPT pass (column order, as N:M
    needs; its weight updates are discarded), then ONE OBS pass over the original weights in order of
    decreasing diag(H) zeroes the pruned entries and rounds the kept ones, spreading both errors over the
    columns still to come. Static group grids (no g_idx) are fitted to the original kept weights: fitting
    them to the first pass's compensated weights measured worse on SmolLM2 (54.26 vs 53.92)."""
    first = sparsegpt(w, h, sparsity, None, damp, block_size)
    params = GptqParams(damp=damp, block_size=block_size, actorder=True, clip=clip is not None,
                        **({} if clip is None else {"clip_grid": clip[0], "clip_min": clip[1]}))
    qw = gptq_pass(w, h, spec, params, first.keep, grid_from=w.float() * first.keep)
    return PrunedWeight(qw.dequantize() * first.keep, first.keep, qw)


@torch.no_grad()
def sparsegpt_rows(w: torch.Tensor, h: torch.Tensor, sparsity: SparsitySpec, grid: Grid, damp: float,
                   block_size: int, actorder: bool, clip: tuple[int, float] | None) -> PrunedWeight:
    """The default: SparseGPT's adaptive mask (from a prune-only pass, or the fixed-grid pass after a
    quantize step), then every row recomputed exactly for its mask by rowobs.exact_rows: the least-squares
    compensation, and with a grid one per-row OBS pass that rounds the kept weights (static grids fitted to
    the compensated weights, or the earlier step's grid)."""
    first = sparsegpt(w, h, sparsity, grid if isinstance(grid, QuantizedWeight) else None, damp, block_size)
    fit = None
    if isinstance(grid, QuantizedWeight):
        assert grid.g_idx is None, "non-contiguous groups cannot be re-rounded row by row"
        fit = GridFit(spec_of(grid), fixed=(grid.scale, zero_of(grid)))
    elif grid is not None:
        fit = GridFit(grid, clip=clip)
    return exact_rows(w, damped(h, damp), first.keep, fit, actorder)
