"""`aqlm`: additive quantization (AQLM, arXiv 2401.06118) as a method of the recipe pipeline.

recipe step `{method: aqlm, params: {scheme: 2x8, ...}}` -> for each targeted Linear, inside the shared
sequential calibration (its input Hessian, then its dequantized weight feeding the next decoder layer)
-> compression/aqlm/layer.py -> AQLMWeight (codes, codebooks, scales) -> compression/aqlm/checkpoint.py
writes AQLM's Hugging Face layout. A codebook method: the step sets no `bits`/`group_size`.
"""

from __future__ import annotations

import torch

from presso.compression.aqlm.config import AQLMParams
from presso.compression.aqlm.layer import AQLMWeight, quantize_layer
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.registry import LayerStats, Method, register_method


def quantize_aqlm(linear: torch.nn.Linear, stats: LayerStats | None, spec, params: AQLMParams) -> AQLMWeight:
    """linear (N, K) + its input Hessian -> AQLMWeight; `spec` is unused (no integer grid)."""
    assert stats is not None and stats.hessian is not None, "aqlm needs_hessian: the pipeline supplies it"
    cfg = params.config()
    if linear.in_features % cfg.in_group:
        raise PressoInputError(f"aqlm: in_features {linear.in_features} is not a multiple of {cfg.in_group}")
    return quantize_layer(linear.weight, stats.hessian, cfg, seed=params.seed)


AQLM = register_method(Method(
    name="aqlm", quantize=quantize_aqlm, params=AQLMParams, needs_hessian=True, codebook=True,
    description="additive quantization: codebooks + beam search on the output error (AQLM's HF layout)",
))
