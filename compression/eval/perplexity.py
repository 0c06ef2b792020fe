"""Perplexity with the GPTQ-paper protocol: text joined, tokenized once, non-overlapping windows.

token ids (N,) -> windows (W, ctx) int64 -> model logits (1, ctx, V) per window -> summed NLL of the
ctx-1 next-token predictions per window -> exp(mean NLL over all scored tokens).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from presso.compression.checkpoint.errors import PressoInputError

LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # (B, T) int64 -> (B, T, V) float


@dataclass(frozen=True, slots=True)
class PerplexityResult:
    perplexity: float
    nll_sum: float
    tokens_scored: int
    windows: int
    ctx: int


def token_windows(ids: torch.Tensor, ctx: int, max_tokens: int | None = None) -> torch.Tensor:
    """Cut (N,) token ids into (W, ctx) non-overlapping windows; the ragged tail is dropped."""
    if ctx < 2:
        raise PressoInputError(f"--ctx must be at least 2, got {ctx}")
    if max_tokens is not None and max_tokens < 1:
        raise PressoInputError(f"--max-tokens must be positive, got {max_tokens}")
    usable = ids[:max_tokens] if max_tokens is not None else ids
    count = usable.numel() // ctx
    if count == 0:
        raise PressoInputError(f"text has {usable.numel()} tokens, fewer than one window of --ctx {ctx}")
    return usable[: count * ctx].view(count, ctx)


def window_nll(logits: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Sum of next-token NLL. logits (B, T, V), window (B, T) -> (B,) float64."""
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V) fp32
    picked = logprobs.gather(-1, window[:, 1:, None]).squeeze(-1)  # (B, T-1)
    return -picked.double().sum(dim=-1)


NllFn = Callable[[torch.Tensor], float]  # (1, T) int64 window -> summed NLL of its T-1 predictions


@torch.inference_mode()
def perplexity_from_nll(nll_fn: NllFn, windows: torch.Tensor, progress: bool = True) -> PerplexityResult:
    nll_sum = 0.0
    for i in tqdm(range(windows.shape[0]), desc="perplexity", unit="win", disable=not progress):
        nll_sum += float(nll_fn(windows[i : i + 1]))
    scored = windows.shape[0] * (windows.shape[1] - 1)
    return PerplexityResult(
        perplexity=math.exp(nll_sum / scored),
        nll_sum=nll_sum,
        tokens_scored=scored,
        windows=windows.shape[0],
        ctx=windows.shape[1],
    )


def perplexity(logits_fn: LogitsFn, windows: torch.Tensor, progress: bool = True) -> PerplexityResult:
    return perplexity_from_nll(lambda w: float(window_nll(logits_fn(w), w).sum()), windows, progress)
