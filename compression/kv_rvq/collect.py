"""Collect per-layer K and V vectors from calibration windows with the dense HF model.

Post-RoPE keys and values come from the model's own KV cache (`out.past_key_values`); pre-RoPE keys
from a forward hook on each layer's `self_attn.k_proj`. Returns per layer K, V as (N, Hkv, D) fp32.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from presso.compression.checkpoint.errors import PressoInputError


def _layers(model) -> list:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise PressoInputError(f"--kv: KV codebooks are calibrated for Llama-family models (model.layers); "
                               f"{type(model).__name__} is not one")
    return list(layers)


@torch.inference_mode()
def collect_kv(model, windows: torch.Tensor, keys: str = "post_rope", progress: bool = True):
    """windows (B, L) int64 -> ([K_i (B*L, Hkv, D)], [V_i (B*L, Hkv, D)]) per decoder layer."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    n_layers = len(_layers(model))
    ks: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    vs: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    hooks = []
    if keys == "pre_rope":
        for i, layer in enumerate(_layers(model)):
            def hook(_mod, _inp, out, i=i):
                ks[i].append(out.float().reshape(-1, n_kv, head_dim))  # (B*L, Hkv, D)
            hooks.append(layer.self_attn.k_proj.register_forward_hook(hook))
    try:
        for b in tqdm(range(windows.shape[0]), desc="collect K/V", unit="win", disable=not progress):
            out = model(input_ids=windows[b : b + 1], use_cache=True)
            for i, layer_cache in enumerate(out.past_key_values.layers):
                # (1, Hkv, L, D) -> (L, Hkv, D)
                vs[i].append(layer_cache.values[0].transpose(0, 1).float())
                if keys == "post_rope":
                    ks[i].append(layer_cache.keys[0].transpose(0, 1).float())
    finally:
        for h in hooks:
            h.remove()
    return [torch.cat(k) for k in ks], [torch.cat(v) for v in vs]
