"""Rotary position embeddings (RoPE) with the Llama-family scaling variants.

inv_freq comes from the config: default, `linear` (positions / factor), `llama3` (frequency-band
rescaling), `dynamic`/`yarn`/others through transformers' own ROPE_INIT_FUNCTIONS. cos/sin are computed
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
    return params


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
    """(head_dim/2,) fp32 inverse frequencies and the attention scaling factor for cos/sin."""
    p = rope_parameters(cfg)
    rotary_dim = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
    base = float(p["rope_theta"])
    inv = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim))
    kind = p["rope_type"]
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / p["factor"], 1.0
    if kind == "llama3":
        return _llama3(inv, p), 1.0
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    if kind not in ROPE_INIT_FUNCTIONS:
        raise ValueError(f"config rope_type {kind!r} is not supported")
    hf_cfg = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "model_type"},
                                  model_type=cfg.get("model_type", "llama"))
    inv, scaling = ROPE_INIT_FUNCTIONS[kind](hf_cfg, "cpu")
    return inv.float(), float(scaling)


class Rotary(nn.Module):
    def __init__(self, cfg: dict, head_dim: int):
        super().__init__()
        inv, self.scaling = inv_frequencies(cfg, head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)  # (D/2,) fp32
        self._table = (torch.empty(0, 2 * len(inv)), torch.empty(0, 2 * len(inv)))  # cos, signed sin (N, D) fp32

    def _grow(self, n: int) -> None:
        size = max(1024, 1 << (n - 1).bit_length())
        positions = torch.arange(size, device=self.inv_freq.device).float()
        freqs = positions[:, None] * self.inv_freq[None, :]  # (N, D/2) fp32
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
    half swap [x2, x1] times the signed sin [-s, s] (negation is exact, so fp32 matches transformers)."""
    swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)  # (T, H, D): [x2, x1]
    return x * cos + swapped * signed_sin
