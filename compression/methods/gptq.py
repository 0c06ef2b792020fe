"""`gptq`: GPTQ (Frantar et al., arXiv 2210.17323) on one Linear from its input Hessian.

Linear weight W (out, in) fp32 + H = 2/n X^T X (in, in) from calibration -> columns quantized one at a
time in blocks, each column's rounding error spread over the not-yet-quantized columns through the
upper Cholesky factor of H^-1 (lazy batch updates); dampening adds `damp * mean(diag H)` to diag H.
Group scales are taken from the partially updated weights when a group starts. With `actorder`,
columns run in order of decreasing diag(H) while group scales are fixed up front from the original
weights ("static groups", llm-compressor's `actorder: weight`; with `imatrix`, from the importance-weighted
search of imatrix.py), so groups stay contiguous and no g_idx
is needed (compressed-tensors >= 0.14 no longer stores one). After a pruning step (LayerStats.keep), pruned
entries take code = zero point (exactly 0) when their column comes, so the mask survives.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from presso.compression.methods.clip import clip_search, clipped_grid, minmax_grid
from presso.compression.methods.grid import GridSpec, grid_params, quantize_codes, to_weight
from presso.compression.methods.imatrix import ImatrixParams, importance, weighted_grid
from presso.compression.methods.registry import LayerStats, Method, QuantizedWeight, register_method


class GptqParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    damp: float = Field(0.01, gt=0, le=1, description="fraction of mean(diag H) added to diag H")
    block_size: int = Field(128, ge=1, le=4096, description="columns per lazy batch update")
    actorder: bool = Field(False, description="quantize columns by decreasing diag(H), static groups")
    clip: bool = Field(False, description="grids from an output-error clip search instead of min-max")
    clip_grid: int = Field(20, ge=1, le=100, description="shrink ratios tried by the clip search")
    clip_min: float = Field(0.5, gt=0, le=1, description="smallest range ratio tried")
    imatrix: bool = Field(False, description="static grids from the importance-weighted search (imatrix.py)")


def damped(h: torch.Tensor, damp: float) -> torch.Tensor:
    """H (in, in) -> fp32 H + damp*mean(diag H)*I, with never-active inputs given a unit diagonal."""
    h = h.float().clone()
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    h.diagonal().add_(damp * h.diagonal().mean())
    return h


def inverse_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """h (in, in) -> upper Cholesky factor U of damped(h)^-1, so H^-1 = U^T U."""
    lower = torch.linalg.cholesky(damped(h, damp))
    return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)


def quantize_gptq(
    linear: torch.nn.Linear, stats: LayerStats | None, spec: GridSpec, params: BaseModel
) -> QuantizedWeight:
    assert stats is not None and stats.hessian is not None, "gptq needs the layer's Hessian"
    assert isinstance(params, GptqParams)
    return gptq_pass(linear.weight.detach(), stats.hessian, spec, params, stats.keep)


@torch.no_grad()
def gptq_pass(w: torch.Tensor, h: torch.Tensor, spec: GridSpec, params: GptqParams,
              keep: torch.Tensor | None = None, grid_from: torch.Tensor | None = None) -> QuantizedWeight:
    """w (out, in), h (in, in) -> codes on the grid. `keep` (out, in) bool: entries forced to exact 0 (their
    error propagates like a rounding error). `grid_from` (out, in): fit static grids to these weights
    instead of w (the joint prune+quantize pass fits them to the pruned-and-compensated weights)."""
    w = w.float().clone()  # (out, in)
    h = h.float().clone()  # (in, in)
    out_features, in_features = w.shape
    width = spec.width(in_features)
    dead = h.diagonal() == 0  # inputs that were always zero: weight irrelevant, keep H invertible
    h[dead, dead] = 1.0
    w[:, dead] = 0.0

    # Static (up-front) grid: per channel always, per group when columns run out of order.
    static = spec.group_size is None or params.actorder or params.imatrix
    src = w if grid_from is None else grid_from.float()
    if params.imatrix:
        scale, zero = weighted_grid(src, importance(h, ImatrixParams().floor), spec, ImatrixParams())
    elif params.clip:
        scale, zero = clipped_grid(src, h, spec, params.clip_grid, params.clip_min)  # (out, G)
    else:
        scale, zero = minmax_grid(src, spec)  # (out, G)
    perm = torch.argsort(h.diagonal(), descending=True) if params.actorder else torch.arange(in_features)
    w, h = w[:, perm], h[perm][:, perm]
    keep = None if keep is None else keep[:, perm]  # (out, in) bool: pruned entries stay 0
    group_of = perm // width  # (in,) group of each (permuted) column

    u = inverse_factor(h, params.damp)  # (in, in) upper
    codes = torch.zeros_like(w)  # (out, in) integral fp32, permuted column order
    block = params.block_size if static else max(width, params.block_size // width * width)
    for i1 in range(0, in_features, block):
        i2 = min(i1 + block, in_features)
        w1 = w[:, i1:i2].clone()  # (out, B) columns being quantized, updated in place
        err1 = torch.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            g = int(group_of[col])
            if not static and col % width == 0:  # a new group starts: grid from the updated weights
                wg = w1[:, i : i + width] if keep is None else w1[:, i : i + width] * keep[:, col : col + width]
                if params.clip:
                    blocks = h[None, col : col + width, col : col + width]  # (1, width, width)
                    s_new, z_new = (t[:, 0] for t in clip_search(wg, blocks, spec,
                                                                 params.clip_grid, params.clip_min))
                else:
                    s_new, z_new = grid_params(wg, spec)
                scale[:, g], zero[:, g] = s_new, z_new
            s, z = scale[:, g], zero[:, g]  # (out,)
            q = quantize_codes(w1[:, i], s, z, spec)  # (out,)
            if keep is not None:  # pruned: code = zero point (exact 0); the error still propagates
                q = torch.where(keep[:, col], q, z)
            codes[:, col] = q
            err = (w1[:, i] - (q - z) * s) / u1[i, i]  # (out,)
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    codes = codes[:, torch.argsort(perm)]  # back to the original column order
    return to_weight(codes, scale, zero, spec)


GPTQ = register_method(
    Method(
        name="gptq",
        quantize=quantize_gptq,
        params=GptqParams,
        needs_hessian=True,
        description="GPTQ: Hessian-aware sequential rounding with lazy block updates",
    )
)
