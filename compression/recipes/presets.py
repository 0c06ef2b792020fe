"""Named recipes (`presso compress --recipe w4g64`): plain dicts validated like a user's YAML file.

All presets are symmetric (like llm-compressor's W8A16/W4A16) and target every Linear except lm_head.
Group 128 does not divide SmolLM2's 576 in-features; `w4g128`/`gptq-w4g128` then stop with an error
naming the layer (copy the preset into a YAML file with `group_fallback` to proceed).
"""

from __future__ import annotations

_GPTQ = {"damp": 0.01, "block_size": 128, "actorder": True, "clip": True}


def _step(method: str, bits: int, group, params: dict | None = None) -> dict:
    return {"method": method, "bits": bits, "group_size": group, "symmetric": True, "params": params or {}}


PRESETS: dict[str, dict] = {
    "w8": {"name": "w8", "steps": [_step("rtn", 8, "channel")]},
    "w4g64": {"name": "w4g64", "steps": [_step("rtn", 4, 64)]},
    "w4g128": {"name": "w4g128", "steps": [_step("rtn", 4, 128)]},
    "gptq-w4g64": {"name": "gptq-w4g64", "steps": [_step("gptq", 4, 64, _GPTQ)]},
    "gptq-w4g128": {"name": "gptq-w4g128", "steps": [_step("gptq", 4, 128, _GPTQ)]},
    "gptq-w3g64": {"name": "gptq-w3g64", "steps": [_step("gptq", 3, 64, _GPTQ)]},
    "gptq-w2g64": {"name": "gptq-w2g64", "steps": [_step("gptq", 2, 64, _GPTQ)]},
    "awq-w4g64": {"name": "awq-w4g64", "steps": [_step("awq", 4, 64)]},
}
