"""Admission checks of one request, shared by EngineCore and the API side of `--engine-process`.

(prompt ids, SamplingParams) -> ValueError naming the problem, before anything is queued: bad params, an
empty or too-long prompt, a request larger than the whole KV cache, out-of-vocabulary ids, a bad grammar.
The limits are plain numbers, so the API process checks requests without the model's process.
"""

from __future__ import annotations

from dataclasses import dataclass

from presso.server.engine.types import SamplingParams


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_model_len: int
    block_size: int
    num_blocks: int  # KV cache blocks in all
    vocab_size: int  # the logits' width


def check_fits(num_prompt_tokens: int, params: SamplingParams, limits: RequestLimits) -> None:
    """ValueError when a request can never run (empty, too long, larger than the whole cache)."""
    n, max_len = num_prompt_tokens, limits.max_model_len
    if n == 0:
        raise ValueError("prompt must contain at least one token")
    if n > max_len or (n == max_len and params.max_tokens > 0):
        raise ValueError(f"prompt has {n} tokens; the model's maximum context length is "
                         f"{max_len} tokens, including at least one generated token")
    worst = min(n + max(params.max_tokens, 1), max_len)
    if -(-worst // limits.block_size) > limits.num_blocks:
        raise ValueError(f"request needs up to {worst} tokens of KV cache but the cache holds only "
                         f"{limits.num_blocks * limits.block_size}")


def check_request(prompt_token_ids: list[int], params: SamplingParams, limits: RequestLimits, guided) -> None:
    """All checks; `guided` (GuidedDecoding) compiles and caches the request's grammar, if any."""
    params.validate()
    check_fits(len(prompt_token_ids), params, limits)
    vocab = limits.vocab_size
    if any(not isinstance(t, int) or t < 0 or t >= vocab for t in prompt_token_ids):
        raise ValueError(f"prompt token ids must be ints in [0, {vocab})")
    for name, ids in (("logit_bias", [t for t, _ in params.logit_bias]), ("stop_token_ids", params.stop_token_ids)):
        if any(t >= vocab for t in ids):
            raise ValueError(f"{name}: token ids must be below the vocabulary size {vocab}")
    if params.guide is not None:
        guided.grammar(params.guide)  # compiled and validated now: a bad grammar is the caller's
