"""Collect per-layer K and V vectors from calibration windows with the dense HF model.

Post-RoPE keys and values come from the model's own KV cache (`out.past_key_values`); pre-RoPE keys
from a forward hook on each layer's key source (`key_source`): `self_attn.k_norm` where keys are normalised
before RoPE (Qwen3, Gemma 3), else `self_attn.k_proj`, else the key rows of a fused `self_attn.qkv_proj`
(Phi-3). Returns per layer K, V as (N, Hkv, D) fp32.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from presso.compression.calibration.layers import decoder_layers


def _layers(model) -> list:
    return list(decoder_layers(model)[1])


def key_source(layer, n_heads: int, n_kv: int, head_dim: int) -> tuple[torch.nn.Module, slice] | None:
    """The module whose output holds a layer's pre-RoPE keys, and the slice of its last dim that they are."""
    attn = getattr(layer, "self_attn", None)
    whole = slice(0, n_kv * head_dim)
    for name in ("k_norm", "k_proj"):
        module = getattr(attn, name, None)
        if module is not None:
            return module, whole if name == "k_proj" else slice(None)
    qkv = getattr(attn, "qkv_proj", None)
    if qkv is not None:
        return qkv, slice(n_heads * head_dim, (n_heads + n_kv) * head_dim)
    return None


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
            module, cols = key_source(layer, cfg.num_attention_heads, n_kv, head_dim)

            def hook(_mod, _inp, out, i=i, cols=cols):
                ks[i].append(out[..., cols].float().reshape(-1, n_kv, head_dim))  # (B*L, Hkv, D)
            hooks.append(module.register_forward_hook(hook))
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
