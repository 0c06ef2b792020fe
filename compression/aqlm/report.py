"""Sizes and summary figures for an AQLM checkpoint's report.json.

Bits per weight are counted from what is stored: codes + fp16 codebooks + fp16 scales (+ bias) of the
quantized linears, against the same linears in fp32. Embeddings (and the tied lm_head) are stated
separately because AQLM leaves them dense.
"""

from __future__ import annotations

import math

import torch

from presso.compression.aqlm.module import AQLMLinear


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def size_summary(model: torch.nn.Module) -> dict:
    linear_params = linear_bytes = codebook_bytes = 0
    for module in model.modules():
        if isinstance(module, AQLMLinear):
            linear_params += module.in_features * module.out_features
            codebook_bytes += _nbytes(module.codebooks)
            linear_bytes += _nbytes(module.codes) + _nbytes(module.codebooks) + _nbytes(module.scales)
            linear_bytes += _nbytes(module.bias)
    embed = model.get_input_embeddings().weight
    dense = {k: v for k, v in model.state_dict().items() if not k.endswith((".codes", ".codebooks", ".scales"))}
    dense_bytes = sum(_nbytes(v) for k, v in dense.items() if k != "lm_head.weight" or not model.config.tie_word_embeddings)
    return {
        "quantized_linear_params": linear_params,
        "quantized_linear_bytes": linear_bytes,
        "quantized_linear_codebook_bytes": codebook_bytes,
        "quantized_linear_fp32_bytes": 4 * linear_params,
        "quantized_linear_bits_per_weight": 8.0 * linear_bytes / max(linear_params, 1),
        "quantized_linear_x_smaller_than_fp32": 4.0 * linear_params / max(linear_bytes, 1),
        "embedding_params": embed.numel(),
        "embedding_bytes": _nbytes(embed),
        "embedding_dtype": str(embed.dtype).removeprefix("torch."),
        "dense_tensor_bytes": dense_bytes,
        "model_bytes": linear_bytes + dense_bytes,
    }


def sqnr_summary(stats: list[dict]) -> dict:
    """Mean / min output SQNR over the quantized linears (finite values)."""
    values = [s["output_sqnr_db"] for s in stats if math.isfinite(s["output_sqnr_db"])]
    return {
        "output_sqnr_db_mean": sum(values) / max(len(values), 1),
        "output_sqnr_db_min": min(values, default=math.nan),
    }
