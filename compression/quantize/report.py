"""report.json for a quantized checkpoint: size, per-layer error, perplexity, time, memory.

bits per weight: (a) of the quantized Linears alone, from the bytes their packed codes, scales, zero
points and shapes (AQLM: codes, fp16 codebooks and scales) take in the written safetensors files; (b) of the whole checkpoint (all weight bytes
x 8 / logical parameters). Bytes are compared with the same parameters stored as fp32 and as bf16.
Per-layer SQNR: of the weights, and of the Linear's outputs on the calibration inputs (via the Hessian).

Pruning (keys read by the sweep): `sparsity` = fraction of the targeted Linears' weights that a pruning
step forced to zero (by its keep-mask; quantization's own zeros do not count), per layer and global.
`effective_bits_per_weight` = 8 x bytes of the whole checkpoint's compact representation / logical
parameters (embeddings included as stored), where each pruned Linear counts as: kept weights x value bits
(the quantized bit width, or the stored dtype's width when pruned only) + 1 bit of mask per weight + its
scales, zero points and shape as stored; e.g. 2:4 with 4-bit values: 4 x 2/4 + 1 = 3 bits plus scales,
unstructured s with b-bit values: (1 - s) x b + 1. A bitmask-format checkpoint stores exactly that, so
its effective and on-disk bits agree; pack-quantized and `dense` ones store pruned weights in place.
"""

from __future__ import annotations

import resource
from pathlib import Path

from presso.compression.calibration.sequential import QuantizeResult
from presso.compression.checkpoint.safetensors_check import tensor_bytes
from presso.compression.eval.stats import weight_bytes_on_disk

QUANT_TENSORS = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx",
                 "codes", "codebooks", "scales")  # compressed-tensors pack-quantized, then AQLM's layout
SPARSE_TENSORS = ("weight", "shape", "compressed", "bitmask", "row_offsets")  # pruned only (bitmask or dense)
GRID_TENSORS = ("weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx")


def _effective_bytes(q, name: str, sizes: dict[str, int], nbytes: int) -> float:
    """Bytes of one Linear in the compact pruned representation (see the module docstring)."""
    if q.mask is None or f"{name}.bitmask" in sizes:  # dense, or already stored as values + bitmask
        return float(nbytes)
    numel, kept = q.mask.numel(), int(q.mask.sum())
    if q.weight is not None:
        value_bits = q.plan.spec.bits
        extra = sum(sizes.get(f"{name}.{t}", 0) for t in GRID_TENSORS)
    else:
        value_bits = 8.0 * sizes.get(f"{name}.weight", 0) / numel
        extra = 0
    return kept * value_bits / 8.0 + numel / 8.0 + extra


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def build_report(opts, out: Path, result: QuantizeResult, params: int, before: float | None,
                 after: float | None, wall_s: float) -> dict:
    sizes = tensor_bytes(out)
    layers, q_bytes, q_params = [], 0, 0
    pruned, targeted, saved = 0, 0, 0.0  # pruned / all weights of targeted Linears; compact-vs-disk bytes
    for q in result.layers:
        name, spec = q.plan.name, q.plan.spec
        numel = q.weight.out_features * q.weight.in_features if q.weight is not None else q.mask.numel()
        nbytes = sum(sizes.get(f"{name}.{t}", 0) for t in (QUANT_TENSORS if q.weight is not None else SPARSE_TENSORS))
        if q.weight is not None:
            q_bytes, q_params = q_bytes + nbytes, q_params + numel
        effective = _effective_bytes(q, name, sizes, nbytes)
        saved += nbytes - effective
        pruned, targeted = pruned + round(q.sparsity * numel), targeted + numel
        prune = q.prune_plan
        layers.append({
            "name": name, "method": "+".join(p.method for p in q.steps) or q.plan.method,
            "bits": spec.bits if spec else None, "group_size": (spec.group_size or "channel") if spec else None,
            "symmetric": spec.symmetric if spec else None,
            "fallback": q.plan.fallback, "bits_per_weight": 8.0 * nbytes / numel,
            "sparsity": q.sparsity, "sparsity_pattern": prune.sparsity.label if prune else None,
            "effective_bits_per_weight": 8.0 * effective / numel,
            "weight_sqnr_db": q.weight_sqnr_db, "output_sqnr_db": q.output_sqnr_db,
        })
    disk = weight_bytes_on_disk(out)
    out_sqnr = [x["output_sqnr_db"] for x in layers if x["output_sqnr_db"] is not None]
    return {
        "recipe": opts.recipe,
        "source_model": str(opts.model_dir),
        "bits_per_weight": {"quantized_linears": 8.0 * q_bytes / max(q_params, 1),
                            "checkpoint": 8.0 * disk / max(params, 1)},
        "sparsity": pruned / max(targeted, 1),
        "effective_bits_per_weight": 8.0 * (disk - saved) / max(params, 1),
        "bytes": {
            "checkpoint_weights": disk, "quantized_linears": q_bytes,
            "source_on_disk": weight_bytes_on_disk(opts.model_dir),
            "original_fp32": 4 * params, "original_bf16": 2 * params,
            "ratio_vs_fp32": 4 * params / disk, "ratio_vs_bf16": 2 * params / disk,
        },
        "parameters": {"total": params, "quantized": q_params},
        "calibration": None if opts.calib is None else
        {"text": opts.calib, "samples": opts.calib_samples, "length": opts.calib_len,
         "tokens": opts.calib_samples * opts.calib_len},
        "perplexity": None if before is None else {
            "text": opts.eval_text, "max_tokens": opts.eval_tokens, "ctx": opts.eval_ctx,
            "before": before, "after": after, "delta_pct": 100.0 * (after / before - 1.0),
        },
        "sqnr_db": {
            "weight_min": min((x["weight_sqnr_db"] for x in layers), default=None),  # no layers: pruning only
            "weight_mean": sum(x["weight_sqnr_db"] for x in layers) / len(layers) if layers else None,
            "output_min": min(out_sqnr) if out_sqnr else None,
            "output_mean": sum(out_sqnr) / len(out_sqnr) if out_sqnr else None,
        },
        "fallbacks": [{"name": x["name"], "fallback": x["fallback"]} for x in layers if x["fallback"]],
        "prepare": result.prepare,
        "layers": layers,
        "wall_time_s": wall_s,
        "peak_rss_bytes": peak_rss_bytes(),
    }
