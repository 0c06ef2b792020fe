"""Structured pruning of a Llama-family model, one decoder layer at a time on calibration activations.

windows (N, L) -> decoder-layer-0 inputs (capture.py) -> per layer i, on the inputs the already pruned
layers 0..i-1 produce: [replay collecting o_proj's input Hessian -> score q heads -> keep the best in every
KV group -> shrink q/o (o compensated)] -> [replay collecting down_proj's input Hessian (after the
attention was pruned) -> score channels -> shrink gate/up/down (down compensated)] -> replay -> inputs of
layer i+1. Finally the HF config gets the new num_attention_heads / intermediate_size / explicit head_dim.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from presso.compression.calibration.capture import LayerBatch, capture_layer_inputs, layer_output
from presso.compression.calibration.hessian import HessianCollector
from presso.compression.calibration.layers import decoder_layers
from presso.compression.calibration.sequential import sqnr_db
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.structured import select
from presso.compression.structured.shrink import shrink_attention, shrink_mlp
from presso.compression.structured.spec import Budget, Structured, structured_budget


@dataclass(frozen=True, slots=True)
class StructuredResult:
    spec: Structured
    budget: Budget
    kept_heads: tuple[tuple[int, ...], ...]  # per layer, q-head indices of the original model
    kept_channels: tuple[tuple[int, ...], ...]  # per layer, MLP channel indices of the original model
    output_sqnr_db: tuple[dict[str, float], ...]  # per layer: o_proj / down_proj output SQNR after pruning
    params_before: int
    params_after: int
    wall_s: float

    def to_report(self) -> dict:
        b = self.budget
        return {
            "spec": self.spec.model_dump(mode="json"),
            "heads_removed_per_kv_group": b.heads_removed_per_group,
            "num_attention_heads": b.num_heads, "num_key_value_heads": b.num_kv_heads,
            "head_dim": b.head_dim, "intermediate_size": b.intermediate,
            "decoder_linear_ratio_removed": b.achieved_ratio,
            "parameters": {"before": self.params_before, "after": self.params_after},
            "wall_time_s": self.wall_s,
            "layers": [{"kept_heads": list(h), "kept_channels": list(c), "output_sqnr_db": s}
                       for h, c, s in zip(self.kept_heads, self.kept_channels, self.output_sqnr_db, strict=True)],
        }


def _check_llama(model: torch.nn.Module) -> None:
    _, layers = decoder_layers(model)
    needed = ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    names = {n for n, _ in layers[0].named_modules()}
    if not all(n in names for n in needed):
        raise PressoInputError(f"recipe structured: model_type {model.config.model_type!r} is not a Llama-family "
                               "model (needs q/o_proj and gate/up/down_proj)")


def _hessian(layer, linear: torch.nn.Linear, batches: list[LayerBatch]) -> torch.Tensor:
    collector = HessianCollector({"x": linear})
    try:
        for b in batches:
            layer(b.hidden, **b.kwargs)
    finally:
        collector.remove()
    return collector.hessian("x")  # (in, in) fp32


def _prune_projection(linear: torch.nn.Linear, hessian: torch.Tensor, kept: torch.Tensor,
                      compensate: bool) -> tuple[torch.Tensor, float]:
    """-> new weight (out, k) and the projection's output SQNR (dB) on the calibration inputs."""
    w = linear.weight.data.float()  # (out, in)
    new = select.compensated(w, hessian, kept) if compensate else w[:, kept]
    delta = w.clone()
    delta[:, kept] -= new
    signal, noise = float(((w @ hessian) * w).sum()), float(((delta @ hessian) * delta).sum())
    return new, sqnr_db(signal, noise)


@torch.no_grad()
def prune_structured(model: torch.nn.Module, spec: Structured, windows: torch.Tensor, batch_size: int = 8,
                     progress: bool = True) -> StructuredResult:
    start = time.perf_counter()
    _check_llama(model)
    budget = structured_budget(spec, model.config.to_dict())
    params_before = sum(p.numel() for p in model.parameters())
    _, layers = decoder_layers(model)
    batches = capture_layer_inputs(model, windows, batch_size)
    kept_heads, kept_channels, sqnr = [], [], []
    group = model.config.num_attention_heads // budget.num_kv_heads
    for i, layer in enumerate(tqdm(layers, desc="structured pruning", unit="layer", disable=not progress)):
        attn, mlp, stats = layer.self_attn, layer.mlp, {}
        heads = torch.arange(model.config.num_attention_heads)
        if budget.heads_removed_per_group:
            h = _hessian(layer, attn.o_proj, batches)
            scores = select.group_scores(attn.o_proj.weight.data.float(), h, budget.head_dim)  # (H,)
            heads = select.keep_heads(scores, budget.num_kv_heads, group - budget.heads_removed_per_group)
            cols = select.head_columns(heads, budget.head_dim)
            new, stats["o_proj"] = _prune_projection(attn.o_proj, h, cols, spec.compensate)
            shrink_attention(attn, cols, new, budget.num_heads, budget.num_kv_heads)
        channels = torch.arange(mlp.down_proj.in_features)
        if budget.intermediate < mlp.down_proj.in_features:
            h = _hessian(layer, mlp.down_proj, batches)
            scores = select.group_scores(mlp.down_proj.weight.data.float(), h, 1)  # (I,)
            channels = select.keep_channels(scores, budget.intermediate)
            new, stats["down_proj"] = _prune_projection(mlp.down_proj, h, channels, spec.compensate)
            shrink_mlp(mlp, channels, new)
        kept_heads.append(tuple(heads.tolist()))
        kept_channels.append(tuple(channels.tolist()))
        sqnr.append(stats)
        if i < len(layers) - 1:
            batches = [LayerBatch(layer_output(layer(b.hidden, **b.kwargs)), b.kwargs) for b in batches]
    model.config.num_attention_heads = budget.num_heads
    model.config.head_dim = budget.head_dim
    model.config.intermediate_size = budget.intermediate
    return StructuredResult(spec, budget, tuple(kept_heads), tuple(kept_channels), tuple(sqnr), params_before,
                            sum(p.numel() for p in model.parameters()), time.perf_counter() - start)
