"""presso's paged attention as a transformers attention implementation (the generic model path).

transformers' attention modules call `ALL_ATTENTION_FUNCTIONS[config._attn_implementation](module, q, k, v,
mask, scaling=..., **kwargs)` with post-RoPE q (1, H, T, D) and k/v (1, Hkv, T, D). Registered under
ATTN_NAME, that call lands in `paged_attention`, which looks up the engine step being run (set by
GenericCausalLM.forward through `step_context`) and attends through layer `module.layer_idx`'s handle on
presso's paged KV cache (LayerKV.attend: write this step's K/V, then the codec's own attention), so every
KV codec, chunked prefill and continuous batching work as on the native path. The name is not registered
as a mask function, so transformers builds no attention mask: causality and sequence boundaries come from
the PagedBatch.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch

from presso.kernels.attention.types import PagedBatch
from presso.server.kv.cache import KVCache

ATTN_NAME = "presso_paged"


@dataclass(frozen=True, slots=True)
class StepContext:
    """What one engine step's attention calls need: where each sequence's pages are, and the cache."""

    batch: PagedBatch
    kv: KVCache
    num_kv_heads: int
    head_dim: int


_STEP: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar("presso_generic_step", default=None)


@contextlib.contextmanager
def step_context(ctx: StepContext):
    token = _STEP.set(ctx)
    try:
        yield
    finally:
        _STEP.reset(token)


class GenericAttentionError(ValueError):
    """The transformers model asked for attention presso's paged cache cannot give."""


def paged_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    **kwargs) -> tuple[torch.Tensor, None]:
    """q (1, H, T, D), k/v (1, Hkv, T, D) -> attention output (1, T, H, D) in q's dtype, no weights."""
    ctx = _STEP.get()
    if ctx is None:
        raise GenericAttentionError(f"attention {ATTN_NAME!r} runs only inside a presso engine step")
    if query.shape[0] != 1:
        raise GenericAttentionError("the generic path runs one flattened token batch per step (batch dim 1)")
    if kwargs.get("softcap") is not None:
        raise GenericAttentionError("attention logit soft-capping is not supported on the generic path")
    _check_window(kwargs.get("sliding_window"), ctx.batch)
    layer = getattr(module, "layer_idx", None)
    if layer is None:
        raise GenericAttentionError(f"{type(module).__name__} has no layer_idx: cannot find its KV cache layer")
    q = query[0].transpose(0, 1)  # (T, H, D)
    k = key[0].transpose(0, 1)  # (T, Hkv, D)
    v = value[0].transpose(0, 1)
    if k.shape[1:] != (ctx.num_kv_heads, ctx.head_dim):
        raise GenericAttentionError(f"layer {layer}: keys have {k.shape[1]} heads of {k.shape[2]}, the KV cache "
                                    f"was sized for {ctx.num_kv_heads} of {ctx.head_dim} (from config.json)")
    scale = scaling if scaling is not None else ctx.head_dim ** -0.5
    out = ctx.kv.layers[layer].attend(q, k, v, ctx.batch, scale)  # (T, H, D)
    return out.to(query.dtype)[None], None


def _check_window(window: int | None, batch: PagedBatch) -> None:
    """Full attention equals sliding-window attention only while every context fits in the window."""
    if not window:
        return
    longest = max([batch.decode_max_len, *(s.ctx_len for s in batch.prefills)])
    if longest > window:
        raise GenericAttentionError(f"a {longest}-token context exceeds this model's sliding window ({window}); "
                                    "the generic path attends over the full context only")


def register() -> None:
    """Make ATTN_NAME a valid `attn_implementation` (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, paged_attention)
