"""`imatrix`: importance-weighted grid search per group (the idea of llama.cpp's importance-matrix quants).

Linear W (out, in) fp32 + the diagonal of its input Hessian (importance of input column j: mean x_j^2
over the calibration tokens) -> for every group row x (width n) and its importances a (n,): candidate
grids (symmetric: scale = absmax / L for L over [min_ratio*(qmax+0.5), -qmin]; asymmetric: the min and
max independently shrunk), each rounded to the nearest codes q, then its scale refitted by weighted least
squares for those codes (s = sum a q' x / sum a q'^2, q' = q - zero) and the codes re-rounded at the new
scale; the grid with the smallest weighted error sum a (x - x_hat)^2 wins. Only the diagonal of H is
used: no cross-column error compensation, which is what lets GPTQ overfit its calibration text. The
min-max grid (RTN) is always a candidate, so the weighted error is never worse than RTN's.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from presso.compression.methods.grid import GridSpec, grid_params, quantize_codes, to_weight
from presso.compression.methods.registry import LayerStats, Method, QuantizedWeight, register_method


class ImatrixParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    grid: int = Field(24, ge=1, le=200, description="candidate scales per group (per bound if asymmetric)")
    min_ratio: float = Field(0.6, gt=0, le=1, description="smallest range ratio tried")
    floor: float = Field(0.01, ge=0, le=1, description="fraction of the mean importance added to every column")
    magnitude: float = Field(0.0, ge=0, description="weight importance by (1 + this * w^2 / mean w^2)")


def importance(h: torch.Tensor, floor: float) -> torch.Tensor:
    """H (in, in) -> (in,) fp32 column importances: diag(H) plus `floor` x its mean (none exactly zero)."""
    d = h.diagonal().float().clamp(min=0)
    return d + floor * d.mean() + 1e-12


def _candidates(rows: torch.Tensor, spec: GridSpec, params: ImatrixParams):
    """rows (R, n) -> iterator of (scale (R,), zero (R,)); the first is the min-max (RTN) grid."""
    yield grid_params(rows, spec)
    k = params.grid
    ratios = [1.0 - (1.0 - params.min_ratio) * i / max(k - 1, 1) for i in range(k)]
    if spec.symmetric:
        absmax = rows.abs().amax(dim=1)  # (R,)
        levels = [r * (spec.qmax + 0.5) for r in ratios] + [float(-spec.qmin)]  # -qmin: max maps to qmin
        for level in levels:
            scale = torch.where(absmax > 0, absmax / level, torch.ones_like(absmax))
            yield spec.round_scale(scale), torch.zeros_like(absmax)
        return
    lo, hi = rows.amin(dim=1).clamp(max=0), rows.amax(dim=1).clamp(min=0)  # (R,)
    for a in ratios:
        for b in ratios:
            scale = (hi * b - lo * a) / (spec.qmax - spec.qmin)
            scale = spec.round_scale(torch.where(scale > 0, scale, torch.ones_like(scale)))
            zero = torch.clamp(torch.round(spec.qmin - lo * a / scale), spec.qmin, spec.qmax)
            yield scale, zero


def _error(rows, imp, scale, zero, spec) -> torch.Tensor:
    """Weighted squared error (R,) of rows on the grid (scale, zero) (R,) with nearest rounding."""
    q = quantize_codes(rows, scale[:, None], zero[:, None], spec)
    return (imp * ((q - zero[:, None]) * scale[:, None] - rows).square()).sum(dim=1)


def _refit(rows, imp, scale, zero, spec) -> torch.Tensor:
    """-> the weighted least-squares scale (R,) for the codes nearest at `scale`, stored-dtype rounded."""
    q = quantize_codes(rows, scale[:, None], zero[:, None], spec) - zero[:, None]  # (R, n)
    num, den = (imp * q * rows).sum(dim=1), (imp * q * q).sum(dim=1)
    fit = torch.where((den > 0) & (num > 0), num / den.clamp(min=1e-30), scale)
    return spec.round_scale(fit)


@torch.no_grad()
def weighted_grid(w: torch.Tensor, col_importance: torch.Tensor, spec: GridSpec,
                  params: ImatrixParams) -> tuple[torch.Tensor, torch.Tensor]:
    """w (out, in) fp32, col_importance (in,) -> scale (out, G) fp32, zero (out, G) fp32 (integral)."""
    out_features, in_features = w.shape
    width = spec.width(in_features)
    rows = w.float().reshape(-1, width)  # (out*G, width): one row per quantization group
    imp = col_importance.float().reshape(1, -1, width).expand(out_features, -1, -1).reshape(-1, width)
    if params.magnitude > 0:
        imp = imp * (1 + params.magnitude * rows.square() / rows.square().mean(dim=1, keepdim=True).clamp(min=1e-30))
    best_err = torch.full((rows.shape[0],), float("inf"))
    best_scale, best_zero = torch.ones(rows.shape[0]), torch.zeros(rows.shape[0])
    for scale, zero in _candidates(rows, spec, params):
        for s in (scale, _refit(rows, imp, scale, zero, spec)):
            err = _error(rows, imp, s, zero, spec)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_scale, best_zero = torch.where(better, s, best_scale), torch.where(better, zero, best_zero)
    return best_scale.reshape(out_features, -1), best_zero.reshape(out_features, -1)


def quantize_imatrix(linear: torch.nn.Linear, stats: LayerStats | None, spec: GridSpec,
                     params: BaseModel) -> QuantizedWeight:
    assert stats is not None and stats.hessian is not None, "imatrix needs the layer's input statistics"
    assert isinstance(params, ImatrixParams)
    w = linear.weight.detach().float()  # (out, in)
    scale, zero = weighted_grid(w, importance(stats.hessian, params.floor), spec, params)  # (out, G)
    width = spec.width(w.shape[1])
    codes = quantize_codes(w.reshape(w.shape[0], -1, width), scale[..., None], zero[..., None], spec)
    if stats.keep is not None:  # an earlier pruning step: pruned entries take the zero point (exact 0)
        codes = torch.where(stats.keep.reshape(codes.shape), codes, zero[..., None].expand_as(codes))
    return to_weight(codes.reshape(w.shape), scale, zero.to(torch.int8), spec)


IMATRIX = register_method(
    Method(
        name="imatrix",
        quantize=quantize_imatrix,
        params=ImatrixParams,
        needs_hessian=True,
        description="importance-weighted scale/zero search per group (diagonal of H), nearest rounding",
    )
)
