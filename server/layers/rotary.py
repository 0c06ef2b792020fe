"""Rotary position embeddings (RoPE) with the Llama-family scaling variants.

inv_freq comes from the config: default, `linear` (positions / factor), `llama3` (frequency-band
rescaling), `dynamic`/`yarn`/`longrope`/others through transformers' own ROPE_INIT_FUNCTIONS. A partial
rotary factor (Phi-3/4) rotates only the first head_dim * factor dims. `longrope` (Phi-3 "su"): positions
below original_max_position_embeddings use the short factors, later ones the long factors. transformers
picks one set per forward call from the call's largest position, which for generate() is the same rule
for every decoded token; only a prompt longer than the original length differs there (transformers rotates
its early tokens with the long factors too). A per-position rule keeps a key's rotation a function of its
position alone, which chunked prefill, preemption by recompute and prefix caching all need. cos/sin are computed
in fp32 exactly as transformers does (cat(freqs, freqs), rotate_half), so fp32 outputs match it bit for
bit; they are computed once per position into a table that doubles when a longer position comes (every
entry is elementwise in its position, so a table row equals computing that position alone), and each
step gathers its rows: pre-RoPE KV codecs rotate keys at every layer of every step.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def rope_parameters(cfg: dict) -> dict:
    """Merge the config's rope fields (old `rope_theta`/`rope_scaling`, new `rope_parameters`)."""
    params = dict(cfg.get("rope_parameters") or {})
    params.update(cfg.get("rope_scaling") or {})
    params.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    if params["rope_type"] == "su":  # the early name of longrope in Phi-3 configs
        params["rope_type"] = "longrope"
    params.setdefault("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0))
    return params


def _hf_config(cfg: dict, p: dict):
    """transformers' config object for this config.json dict, with the merged rope parameters."""
    from transformers import AutoConfig

    fields = {k: v for k, v in cfg.items() if k not in ("model_type", "rope_scaling")}
    return AutoConfig.for_model(**{**fields, "rope_parameters": p}, model_type=cfg.get("model_type", "llama"))


def _llama3(inv_freq: torch.Tensor, p: dict) -> torch.Tensor:
    factor, low, high = p["factor"], p.get("low_freq_factor", 1.0), p.get("high_freq_factor", 4.0)
    old_len = p["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def inv_frequencies(cfg: dict, head_dim: int) -> tuple[torch.Tensor, float]:
    """(rotary_dim/2,) fp32 inverse frequencies and the attention scaling factor for cos/sin."""
    p = rope_parameters(cfg)
    rotary_dim = int(head_dim * p["partial_rotary_factor"])
    base = float(p["rope_theta"])
    inv = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim))
    kind = p["rope_type"]
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / p["factor"], 1.0
    if kind == "llama3":
        return _llama3(inv, p), 1.0
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    if kind not in ROPE_INIT_FUNCTIONS:
        raise ValueError(f"config rope_type {kind!r} is not supported")
    inv, scaling = ROPE_INIT_FUNCTIONS[kind](_hf_config(cfg, p), "cpu")
    return inv.float(), float(scaling)


def long_frequencies(cfg: dict) -> tuple[torch.Tensor, int] | None:
    """longrope only: the long-factor inverse frequencies and the position from which they apply."""
    p = rope_parameters(cfg)
    if p["rope_type"] != "longrope":
        return None
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf = _hf_config(cfg, p)
    original = int(hf.rope_parameters["original_max_position_embeddings"])
    inv, _ = ROPE_INIT_FUNCTIONS["longrope"](hf, "cpu", seq_len=original + 1)
    return inv.float(), original


class Rotary(nn.Module):
    def __init__(self, cfg: dict, head_dim: int):
        super().__init__()
        inv, self.scaling = inv_frequencies(cfg, head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)  # (D/2,) fp32
        self.long = long_frequencies(cfg)  # longrope: (long inv_freq (D/2,), first position using it)
        self._table = (torch.empty(0, 2 * len(inv)), torch.empty(0, 2 * len(inv)))  # cos, signed sin (N, D) fp32

    def _grow(self, n: int) -> None:
        size = max(1024, 1 << (n - 1).bit_length())
        positions = torch.arange(size, device=self.inv_freq.device).float()
        freqs = positions[:, None] * self.inv_freq[None, :]  # (N, D/2) fp32
        if self.long is not None:
            inv_long, start = self.long
            long_freqs = positions[:, None] * inv_long.to(positions.device)[None, :]
            freqs = torch.where(positions[:, None] >= start, long_freqs, freqs)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * self.scaling, emb.sin() * self.scaling
        half = sin.shape[-1] // 2
        self._table = (cos, torch.cat((-sin[:, :half], sin[:, half:]), dim=-1))

    def reserve(self, positions: torch.Tensor) -> None:
        """Grow the table to cover positions (T,) long (reads their max back: a host sync)."""
        if positions.numel() and (int(positions.max()) >= self._table[0].shape[0]
                                  or self._table[0].device != self.inv_freq.device):
            self._grow(int(positions.max()) + 1)

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (T,) long -> cos, signed sin (T, 1, D) in dtype (broadcast over heads).

        The sin's first half is negated in the table, so apply_rotary needs only a half swap.
        """
        if not torch.compiler.is_compiling():  # a compiled step reserve()d its positions beforehand
            self.reserve(positions)
        cos, sin = (t[positions] for t in self._table)  # (T, D) fp32
        return cos.to(dtype)[:, None, :], sin.to(dtype)[:, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x (T, H, D) rotated: x*cos + rotate_half(x)*sin, with rotate_half(x) = [-x2, x1] written as the
    half swap [x2, x1] times the signed sin [-s, s] (negation is exact, so fp32 matches transformers).
    With partial rotary (cos narrower than D) only the first cos.shape[-1] dims rotate; the rest pass."""
    rot = cos.shape[-1]
    if rot < x.shape[-1]:
        return torch.cat((apply_rotary(x[..., :rot], cos, signed_sin), x[..., rot:]), dim=-1)
    swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)  # (T, H, D): [x2, x1]
    return x * cos + swapped * signed_sin
