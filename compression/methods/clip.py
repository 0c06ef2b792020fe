"""Activation-aware range clipping: per group, the min-max range shrink that minimises output error.

w (out, in) fp32, H (in, in) input Hessian -> for shrink ratios r in [min_ratio, 1]: grid from r * range,
error of group g in row o = d H_gg d^T with d the rounding error of that row's group -> per (row, group)
the grid with the smallest error. Used by AWQ (as in its clip search) and, optionally, GPTQ's grids.
"""

from __future__ import annotations

import torch

from presso.compression.methods.grid import GridSpec, grid_params, group_view, quantize_codes


def diagonal_blocks(hessian: torch.Tensor, width: int) -> torch.Tensor:
    """H (in, in) -> (G, width, width) diagonal blocks, one per contiguous group of columns."""
    groups = hessian.shape[0] // width
    idx = torch.arange(groups)
    return hessian.reshape(groups, width, groups, width)[idx, :, idx, :]


def clip_search(
    w: torch.Tensor, blocks: torch.Tensor, spec: GridSpec, steps: int = 20, min_ratio: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, G*width) fp32, blocks (G, width, width) -> scale (out, G), zero (out, G) fp32."""
    out_features, in_features = w.shape
    groups, width = blocks.shape[0], blocks.shape[1]
    assert groups * width == in_features, (groups, width, in_features)
    rows = w.reshape(out_features * groups, width)  # one row per (output row, group)
    best_err = torch.full((out_features, groups), float("inf"))
    best_scale = torch.ones(out_features, groups)
    best_zero = torch.zeros(out_features, groups)
    for step in range(steps):
        ratio = 1.0 - (1.0 - min_ratio) * step / max(steps - 1, 1)
        scale, zero = grid_params(rows, spec, ratio)  # (out*G,)
        q = quantize_codes(rows, scale[:, None], zero[:, None], spec)
        delta = ((q - zero[:, None]) * scale[:, None] - rows).reshape(out_features, groups, width)
        err = torch.einsum("ogi,gij,ogj->og", delta, blocks, delta)  # (out, G)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale.reshape(out_features, groups), best_scale)
        best_zero = torch.where(better, zero.reshape(out_features, groups), best_zero)
    return best_scale, best_zero


def clipped_grid(w: torch.Tensor, hessian: torch.Tensor, spec: GridSpec, steps: int = 20,
                 min_ratio: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, in), H (in, in) -> scale, zero (out, G): the clip search over the layer's own groups."""
    width = spec.width(w.shape[1])
    return clip_search(w, diagonal_blocks(hessian, width), spec, steps, min_ratio)


def minmax_grid(w: torch.Tensor, spec: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, in) -> min-max scale, zero (out, G)."""
    scale, zero = grid_params(group_view(w, spec), spec)
    return scale.reshape(w.shape[0], -1), zero.reshape(w.shape[0], -1)
