"""The in-memory stages of `presso compress`, between loading the fp32 model and writing the checkpoint.

model (fp32, loaded) + recipe + calibration windows -> Transformed: [structured pruning, which shrinks the
Linears] -> [mixed precision, which turns a `mixed` section into per-Linear steps on the final shapes] ->
the recipe's steps (sequential prune / quantize with calibration replay) -> [tied-embedding RTN] -> [KV
codebooks of the model as served]. Each optional stage runs only when the recipe (or --kv) asks for it;
pipeline.py writes what they produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.compression.calibration import quantize_model
from presso.compression.calibration.sequential import QuantizedLayer, QuantizeResult
from presso.compression.checkpoint.kv_codebooks import RVQSpec
from presso.compression.kv_rvq import stage as kv_stage
from presso.compression.quantize.embedding import quantize_embedding
from presso.compression.recipes import resolve_plan
from presso.compression.recipes.schema import Recipe
from presso.compression.structured.prune import StructuredResult, prune_structured


@dataclass(frozen=True, slots=True)
class Transformed:
    recipe: Recipe  # as run: a `mixed` section expanded into steps
    result: QuantizeResult  # per-Linear results of the recipe's steps (empty when there are none)
    structured: StructuredResult | None = None
    mixed: dict | None = None  # the allocator's summary (presso.json / report.json)
    embedding: QuantizedLayer | None = None  # the packed input embedding
    kv: kv_stage.KVCalibration | None = None

    @property
    def quantized(self) -> bool:
        return self.embedding is not None or any(q.weight is not None for q in self.result.layers)

    @property
    def layers(self) -> list[QuantizedLayer]:
        return self.result.layers + ([self.embedding] if self.embedding is not None else [])


def transform(model: torch.nn.Module, recipe: Recipe, windows: torch.Tensor | None, kv_spec: RVQSpec | None,
              opts) -> Transformed:
    """Run every stage the recipe asks for on `model` in place; opts: CompressOptions."""
    structured = None  # first: the steps then quantize the smaller model
    if recipe.structured is not None:
        structured = prune_structured(model, recipe.structured, windows, opts.batch_size, opts.progress)
    mixed = None
    if recipe.mixed is not None:
        from presso.compression.mixed.expand import expand_mixed

        recipe, mixed = expand_mixed(recipe, model, windows, opts.target_bits, opts.target_size, opts.progress)
    plans = resolve_plan(recipe, model)
    result = quantize_model(model, plans, windows, opts.batch_size, opts.progress) if plans else QuantizeResult([], {})
    embedding = quantize_embedding(model, recipe.embeddings) if recipe.embeddings is not None else None
    kv = kv_stage.calibrate(model, windows, kv_spec, opts.progress)  # K/V of the model as served
    return Transformed(recipe, result, structured, mixed, embedding, kv)
