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


CHARS_PER_TOKEN = 12  # a slice of 12 x ctx characters holds > ctx tokens of any real text here


def spread_windows(tokenizer, text: str, ctx: int, count: int) -> torch.Tensor:
    """`count` windows of `ctx` tokens spread evenly over `text` -> (count, ctx) int64. Window i: the slice
    of CHARS_PER_TOKEN x ctx characters at character i * (len // count), tokenized alone (no special tokens),
    its first token dropped (it may be a cut word), the next ctx kept. The evaluation suite's protocol: a
    fixed cost per text (only the slices are tokenized) that samples its beginning, middle and end."""
    if ctx < 2 or count < 1:
        raise PressoInputError(f"--ctx must be at least 2 and --windows positive, got {ctx} and {count}")
    stride = len(text) // count
    out = []
    for i in range(count):
        span = CHARS_PER_TOKEN * ctx
        while True:  # widen a slice that holds too few tokens, up to the end of the text
            piece = text[i * stride : i * stride + span]
            ids = tokenizer(piece, add_special_tokens=False, return_attention_mask=False)["input_ids"]
            if len(ids) > ctx or i * stride + span >= len(text):
                break
            span *= 2
        if len(ids) <= ctx:
            raise PressoInputError(f"text of {len(text)} characters is too short for --windows {count} x --ctx {ctx}")
        out.append(torch.tensor(ids[1 : ctx + 1], dtype=torch.long))
    return torch.stack(out)


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
