"""Named recipes (`presso compress --recipe w4g64`): plain dicts validated like a user's YAML file.

All presets are symmetric (like llm-compressor's W8A16/W4A16) and target every Linear except lm_head.
Group 128 does not divide SmolLM2's 576 in-features; `w4g128`/`gptq-w4g128` then stop with an error
naming the layer (copy the preset into a YAML file with `group_fallback` to proceed).
"""

from __future__ import annotations

_GPTQ = {"damp": 0.01, "block_size": 128, "actorder": True, "clip": True}


def _step(method: str, bits: int, group, params: dict | None = None) -> dict:
    return {"method": method, "bits": bits, "group_size": group, "symmetric": True, "params": params or {}}


def _half(method: str, bits: int, group: int, params: dict | None = None, symmetric: bool = True) -> dict:
    """A step whose scales are stored as fp16 (16 instead of 32 bits per group)."""
    return {**_step(method, bits, group, params), "symmetric": symmetric, "scale_dtype": "float16"}


# The recommended presets, chosen on held-out domains (docs/results/quantization.md): bits per Linear
# weight counted as codes + fp16 scales (+ zero points); q2 adds a short KD stage against the dense model.
_IMATRIX = {"grid": 24, "min_ratio": 0.6}
_GPTQ_IMATRIX = {"imatrix": True, "actorder": True, "damp": 0.1, "clip": False}
RECOMMENDED: dict[str, dict] = {
    "q4": {"name": "q4", "steps": [_half("imatrix", 4, 32, _IMATRIX)]},
    # 3 bits: GPTQ's error compensation onto the imatrix grids (+59.5 % vs +110.8 % for imatrix alone on the
    # suite, docs/results/quantization.md); at 4 bits it overfits the mix (q4 stays imatrix)
    "q3": {"name": "q3", "steps": [_half("gptq", 3, 32, _GPTQ_IMATRIX)]},
    "q2": {"name": "q2", "steps": [_half("imatrix", 2, 32, _IMATRIX)], "distill": {"steps": 40}},
}


def _prune(method: str, sparsity) -> dict:
    return {"method": method, "sparsity": sparsity, "params": {}}


PRESETS: dict[str, dict] = {
    **RECOMMENDED,
    "w8": {"name": "w8", "steps": [_step("rtn", 8, "channel")]},
    "w4g64": {"name": "w4g64", "steps": [_step("rtn", 4, 64)]},
    "w4g128": {"name": "w4g128", "steps": [_step("rtn", 4, 128)]},
    "gptq-w4g64": {"name": "gptq-w4g64", "steps": [_step("gptq", 4, 64, _GPTQ)]},
    "gptq-w4g128": {"name": "gptq-w4g128", "steps": [_step("gptq", 4, 128, _GPTQ)]},
    "gptq-w3g64": {"name": "gptq-w3g64", "steps": [_step("gptq", 3, 64, _GPTQ)]},
    "gptq-w2g64": {"name": "gptq-w2g64", "steps": [_step("gptq", 2, 64, _GPTQ)]},
    "awq-w4g64": {"name": "awq-w4g64", "steps": [_step("awq", 4, 64)]},
    # Mixed precision (compression/mixed): GPTQ with one grid per Linear, chosen by measured sensitivity
    # so that the Linears average 3.0 / 3.5 bits per weight, scales included.
    **{f"mixed-gptq-{t}": {"name": f"mixed-gptq-{t}", "mixed": {
        "target_bits": float(t), "method": "gptq", "params": _GPTQ,
        "candidates": ["w2g64", "w3", "w3g64", "w4", "w4g64", "w8"],
        # sensitivities measure GPTQ without the clip search: per channel it costs ~20x GPTQ itself
        "error_params": {**_GPTQ, "clip": False}}} for t in ("3.0", "3.5")},
    # Pruning (compression/prune): 50 % unstructured and 2:4 per method; sparsegpt-2of4-w4g64 prunes and
    # quantizes in one OBS pass per row (row-exact, compression/prune/rowobs.py). The sequential orders are example YAMLs in docs/recipes/.
    **{f"{m}-{tag}": {"name": f"{m}-{tag}", "steps": [_prune(m, sparsity)]}
       for m in ("magnitude", "wanda", "sparsegpt") for tag, sparsity in (("50", 0.5), ("2of4", "2:4"))},
    "sparsegpt-2of4-w4g64": {"name": "sparsegpt-2of4-w4g64",
                             "steps": [{**_step("sparsegpt", 4, 64), "sparsity": "2:4"}]},
    # Structured pruning alone (MLP channels, least-squares compensated; see compression/structured).
    **{f"structured-{p}": {"name": f"structured-{p}", "structured": {"ratio": p / 100, "mlp": True,
                                                                      "heads": False, "compensate": True}}
       for p in (10, 20, 30)},
    # Additive quantization (compression/aqlm): every decoder Linear, written in AQLM's HF layout.
    # 2x8 and 1x16 are ~2 bits per weight, 1x8 ~1 bit (codebooks and scales add a little).
    **{f"aqlm-{s}": {"name": f"aqlm-{s}", "steps": [{"method": "aqlm", "params": {"scheme": s}}]}
       for s in ("2x8", "1x16", "1x8")},
}
