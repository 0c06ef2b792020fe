"""Pruning methods by name: `magnitude`, `wanda` (arXiv 2306.11695), `sparsegpt` (arXiv 2301.00774).

Registered in the same registry as rtn/gptq/awq (recipe step `method:`); each supplies `prune` instead of
`quantize`. magnitude: score |W_ij|. wanda: score |W_ij| * ||X_j||_2, with ||X_j||^2 = n/2 * H_jj read off
the calibration Hessian's diagonal (the n/2 factor cancels inside a row). Both compare scores per output
row (N:M: per group of M) and never update weights. sparsegpt: OBS with weight updates (obs.py); a step
that also sets `bits` prunes and quantizes jointly (params.actorder: SparseGPT's mask, then one act-order
OBS pass over the original weights for both errors; false: the paper's single column-order pass).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from presso.compression.methods.registry import LayerStats, Method, QuantizedWeight, register_method
from presso.compression.prune.masks import keep_mask
from presso.compression.prune.obs import sparsegpt, sparsegpt_actorder, sparsegpt_rows
from presso.compression.prune.spec import SparsitySpec
from presso.compression.prune.types import Grid, PrunedWeight, without_update


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparseGptParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    damp: float = Field(0.01, gt=0, le=1, description="fraction of mean(diag H) added to diag H")
    block_size: int = Field(128, ge=1, le=4096, description="columns per lazy update / adaptive mask block")
    actorder: bool = Field(
        True, description="joint mode: mask from the SparseGPT pass, then one act-order OBS pass that prunes and "
                          "quantizes together (false: one column-order pass choosing mask and codes at once)")
    clip: bool = Field(True, description="joint mode: group ranges from an output-error clip search")
    clip_grid: int = Field(20, ge=1, le=100, description="shrink ratios tried by the clip search")
    clip_min: float = Field(0.5, gt=0, le=1, description="smallest range ratio tried")
    exact_rows: bool = Field(
        True, description="recompute each row's kept weights for its own mask (exact least squares, and in joint "
                          "mode one per-row OBS quantization pass with the row's own Hessian) instead of keeping "
                          "the shared-Hessian updates of the SparseGPT pass; costs one Cholesky of k x k per row "
                          "(k kept weights per row): OBC's cost, affordable up to a few thousand columns")
    fixed_grid_update: bool = Field(
        True, description="on an already quantized Linear: re-round kept weights onto the earlier grid with "
                          "OBS updates (true) or prune by OBS saliency without any update (false)")


def prune_magnitude(linear: torch.nn.Linear, stats: LayerStats | None, sparsity: SparsitySpec, grid: Grid,
                    params: BaseModel) -> PrunedWeight:
    w = linear.weight.detach().float()  # (out, in)
    return without_update(w, keep_mask(w.abs(), sparsity), grid)


def prune_wanda(linear: torch.nn.Linear, stats: LayerStats | None, sparsity: SparsitySpec, grid: Grid,
                params: BaseModel) -> PrunedWeight:
    assert stats is not None and stats.hessian is not None, "wanda needs the layer's Hessian"
    w = linear.weight.detach().float()  # (out, in)
    norms = stats.hessian.diagonal().float().clamp(min=0).sqrt()  # (in,) proportional to ||X_j||_2
    return without_update(w, keep_mask(w.abs() * norms[None, :], sparsity), grid)


def prune_sparsegpt(linear: torch.nn.Linear, stats: LayerStats | None, sparsity: SparsitySpec, grid: Grid,
                    params: BaseModel) -> PrunedWeight:
    assert stats is not None and stats.hessian is not None, "sparsegpt needs the layer's Hessian"
    assert isinstance(params, SparseGptParams)
    propagate = params.fixed_grid_update or not isinstance(grid, QuantizedWeight)
    clip = (params.clip_grid, params.clip_min) if params.clip else None
    if params.exact_rows and propagate:
        return sparsegpt_rows(linear.weight.detach(), stats.hessian, sparsity, grid, params.damp, params.block_size,
                              params.actorder, clip)
    if params.actorder and grid is not None and not isinstance(grid, QuantizedWeight):
        return sparsegpt_actorder(linear.weight.detach(), stats.hessian, sparsity, grid, params.damp,
                                  params.block_size, clip)
    return sparsegpt(linear.weight.detach(), stats.hessian, sparsity, grid, params.damp, params.block_size,
                     propagate, clip)


MAGNITUDE = register_method(Method(
    name="magnitude", quantize=None, params=NoParams, prune=prune_magnitude,
    description="magnitude pruning: smallest |W| per row (or per group of M)",
))
WANDA = register_method(Method(
    name="wanda", quantize=None, params=NoParams, needs_hessian=True, prune=prune_wanda,
    description="Wanda: |W| x input-norm scores per row, no weight update",
))
SPARSEGPT = register_method(Method(
    name="sparsegpt", quantize=None, params=SparseGptParams, needs_hessian=True, prune=prune_sparsegpt, joint=True,
    description="SparseGPT: OBS pruning with lazy block updates; joint quantization when the step sets bits",
))
