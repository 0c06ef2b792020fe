"""Round-to-nearest checkpoints in the compressed-tensors format, written by the compressed-tensors library.

The server's tests serve these (tiny quantized models) as a third-party writer's output: not presso's
compressor (presso.compression), only the same on-disk layout, `pack-quantized` (weight_packed,
weight_scale, weight_zero_point, weight_shape), so reading checkpoints presso did not write is tested.
"""

from __future__ import annotations

from pathlib import Path

import torch

LINEAR_TARGETS = ["Linear"]


def _rtn(w: torch.Tensor, bits: int, symmetric: bool, group: int | None, g_idx: torch.Tensor | None):
    """Scales and zero points (N, G) for weight (N, K) fp32, groups by g_idx when given."""
    n, k = w.shape
    if group is None:
        g_idx = torch.zeros(k, dtype=torch.long)
    elif g_idx is None:
        g_idx = torch.arange(k) // group
    num_groups = int(g_idx.max()) + 1
    lo = torch.full((n, num_groups), float("inf")).scatter_reduce(1, g_idx.expand(n, k), w, "amin")
    hi = torch.full((n, num_groups), float("-inf")).scatter_reduce(1, g_idx.expand(n, k), w, "amax")
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if symmetric:
        scale = torch.maximum(hi.abs(), lo.abs()) / ((qmax - qmin) / 2)
        zero = torch.zeros_like(scale)
    else:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
        scale = (hi - lo) / (qmax - qmin)
        zero = (qmin - lo / scale.clamp(min=1e-12)).round().clamp(qmin, qmax)
    return scale.clamp(min=1e-8), zero


def quantize_rtn(model_dir: Path | str, out_dir: Path | str, bits: int = 4, group_size: int | None = 64,
                 symmetric: bool = False) -> Path:
    """Write an RTN-quantized copy of a HF model dir (all Linear layers but lm_head) to `out_dir`."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        apply_quantization_config,
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    strategy = "group" if group_size else "channel"
    args = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric, strategy=strategy,
                            group_size=group_size)
    scheme = QuantizationScheme(targets=LINEAR_TARGETS, weights=args)
    config = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"])
    apply_quantization_config(model, config)
    with torch.no_grad():
        for _, module in model.named_modules():
            if not hasattr(module, "weight_scale"):
                continue
            scale, zero = _rtn(module.weight.float(), bits, symmetric, group_size, None)
            module.weight_scale.copy_(scale.reshape(module.weight_scale.shape))
            if hasattr(module, "weight_zero_point"):
                module.weight_zero_point.copy_(zero.reshape(module.weight_zero_point.shape))
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    model.save_pretrained(out_dir)
    compressor.update_config(str(out_dir))
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    return out_dir
