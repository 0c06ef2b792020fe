"""`awq`: activation-aware weight quantization (Lin et al., arXiv 2306.00978), per decoder layer.

prepare_layer: for each (smooth op -> balanced Linears) pair of a decoder layer (found for any family by
awq_pairs.py: norms by data flow, v -> o and up -> down by name, fused Phi-3 rows included), accumulate the
Linears' input Gram matrix G = X^T X (in, in) and mean|X| (in,), search s = mean|X|^alpha (alpha on a
grid) minimising ||Q(W diag s) (X / s) - W X||^2 summed over the balanced Linears (computed from G),
then fold: smooth op's output channels / s, balanced weights' columns * s (the model's function is
unchanged before rounding). quantize: RTN on the folded weight, with each
group's range shrunk by the ratio minimising the Hessian-weighted output error (AWQ's clip search).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from presso.compression.calibration.hessian import HessianCollector
from presso.compression.methods.awq_pairs import LayerFeeds, fold
from presso.compression.methods.clip import clipped_grid
from presso.compression.methods.grid import GridSpec, dequantize, quantize_codes, rtn_quantize, to_weight
from presso.compression.methods.registry import (
    LayerContext,
    LayerStats,
    Method,
    QuantizedWeight,
    register_method,
)
from presso.compression.methods.rtn import quantize_rtn


class AwqParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    grid: int = Field(20, ge=2, le=100, description="alpha values tried in [0, 1)")
    clip: bool = Field(True, description="search a per-group range shrink after scaling")
    clip_grid: int = Field(20, ge=1, le=100)
    clip_min: float = Field(0.5, gt=0, le=1, description="smallest range ratio tried")


def _search_scale(gram: torch.Tensor, mean_abs: torch.Tensor, linears, specs, grid: int) -> tuple[torch.Tensor, float]:
    """gram (in, in) = 2/n X^T X over all calibration tokens, mean_abs (in,) -> best s (in,) and its alpha.

    Output error of one Linear: |(X/s) (Q(W s) - W s)^T|^2 = tr(D G_s D^T) with D = Q(W s) - W s and
    G_s = diag(1/s) G diag(1/s), so the search never touches the activations again.
    """
    weights = [lin.weight.detach().float() for lin in linears]  # each (out_k, in)
    best = (float("inf"), torch.ones_like(mean_abs), 0.0)
    for step in range(grid):
        alpha = step / grid
        s = mean_abs.clamp(min=1e-4).pow(alpha)
        s = (s / (s.max() * s.min()).sqrt()).clamp(min=1e-4)  # (in,)
        gram_s = gram / s[:, None] / s[None, :]  # (in, in)
        loss = 0.0
        for w, spec in zip(weights, specs, strict=True):
            ws = w * s  # (out_k, in)
            d = dequantize(*rtn_quantize(ws, spec), spec) - ws
            loss += float(((d @ gram_s) * d).sum())
        if loss < best[0]:
            best = (loss, s, alpha)
    return best[1], best[2]


def prepare_awq(ctx: LayerContext, params: BaseModel) -> dict:
    assert isinstance(params, AwqParams)
    feeds = LayerFeeds(ctx.layer, ctx.linears)
    grams = HessianCollector(ctx.linears)  # Linears fed the same tensor share its X^T X
    try:
        ctx.replay()
    finally:
        grams.remove()
        feeds.remove()
    modules = dict(ctx.layer.named_modules())
    summary = {}
    for pair in feeds.pairs():
        first = pair.balanced[0]
        linears = [ctx.linears[n] for n in pair.balanced]
        mean_abs = feeds.abs_sums[first] / grams.tokens(first)
        s, alpha = _search_scale(grams.hessian(first), mean_abs, linears, [ctx.specs[n] for n in pair.balanced],
                                 params.grid)
        fold(pair, modules, s)
        summary[pair.op] = {"balanced": list(pair.balanced), "alpha": alpha}
        if not feeds.preserved():  # e.g. a norm that is not a per-channel gain: undo rather than break it
            fold(pair, modules, 1.0 / s)
            summary[pair.op] = {"balanced": list(pair.balanced), "skipped": "fold changed the layer's output"}
    return summary


def quantize_awq(
    linear: torch.nn.Linear, stats: LayerStats | None, spec: GridSpec, params: BaseModel
) -> QuantizedWeight:
    assert isinstance(params, AwqParams)
    if not params.clip or stats is None or stats.hessian is None:
        return quantize_rtn(linear, stats, spec, params)
    w = linear.weight.detach().float()  # (out, in)
    scale, zero = clipped_grid(w, stats.hessian.float(), spec, params.clip_grid, params.clip_min)  # (out, G)
    width = spec.width(w.shape[1])
    codes = quantize_codes(w, scale.repeat_interleave(width, 1), zero.repeat_interleave(width, 1), spec)
    return to_weight(codes, scale, zero, spec)


AWQ = register_method(
    Method(
        name="awq",
        quantize=quantize_awq,
        params=AwqParams,
        needs_hessian=True,
        prepare_layer=prepare_awq,
        description="AWQ: activation-aware channel scales folded into the previous op, clipped RTN",
    )
)
