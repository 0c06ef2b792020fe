"""Size metrics of a checkpoint: bytes on disk, parameter count, bits per weight."""

from __future__ import annotations

from pathlib import Path

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
_QUANT_METADATA = ("_packed", "_scale", "_zero_point", "_g_idx", "_shape", "_global_scale")


def weight_bytes_on_disk(model_dir: Path) -> int:
    """Bytes of the weight files (not tokenizer/config) in a checkpoint directory."""
    return sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def parameter_count(model: torch.nn.Module) -> int:
    """Logical parameters of the model: weight-only-coded linears (AQLM keeps codes in buffers, not
    parameters) count as in_features x out_features; `parameters()` counts tied embeddings once."""
    # compressed-tensors keeps packed codes and quantization metadata (weight_packed, weight_scale, ...)
    # as parameters; those linears are counted by their logical shape below instead.
    total = sum(p.numel() for name, p in model.named_parameters() if not name.endswith(_QUANT_METADATA))
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter) and hasattr(module, "in_features") \
                and hasattr(module, "out_features"):
            total += module.in_features * module.out_features
    return total


def bits_per_weight(disk_bytes: int, params: int) -> float:
    return 8.0 * disk_bytes / max(params, 1)
