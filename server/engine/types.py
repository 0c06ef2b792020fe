"""The engine's public value types: sampling parameters in, token deltas and stats out.

Pure Python (no torch): the scheduler, the HTTP layer and tests all import these. Requests enter as
(prompt token ids, SamplingParams); each engine step emits one RequestDelta per request that progressed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FINISH_REASONS = ("stop", "length", "abort")
GUIDE_KINDS = ("json_schema", "json_object", "regex", "grammar")  # structured outputs (engine/guided.py)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens for one request. top_k=0 means off; logprobs=None means none returned."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    min_tokens: int = 0  # eos and stop tokens are masked until this many tokens are generated
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias added to its logit), OpenAI's logit_bias
    min_p: float = 0.0  # drop tokens whose probability is below min_p x the top token's (after temperature)
    repetition_penalty: float = 1.0  # HF/CTRL: logits of prompt and generated tokens /p if > 0 else *p
    guide: tuple[str, str] | None = None  # structured output: (json_schema|json_object|regex|grammar, spec)

    def validate(self) -> SamplingParams:
        """Raise ValueError naming the field for out-of-range values; return self."""
        checks = (
            ("max_tokens", isinstance(self.max_tokens, int) and self.max_tokens >= 0, "must be an int >= 0"),
            ("temperature", _finite(self.temperature) and self.temperature >= 0.0, "must be >= 0"),
            ("top_p", _finite(self.top_p) and 0.0 < self.top_p <= 1.0, "must be in (0, 1]"),
            ("top_k", isinstance(self.top_k, int) and self.top_k >= 0, "must be an int >= 0 (0 = off)"),
            ("seed", self.seed is None or isinstance(self.seed, int), "must be an int or None"),
            ("stop_token_ids", all(isinstance(t, int) and t >= 0 for t in self.stop_token_ids),
             "must be non-negative ints"),
            ("logprobs", self.logprobs is None or (isinstance(self.logprobs, int) and 0 <= self.logprobs <= 20),
             "must be None or an int in [0, 20]"),
            ("prompt_logprobs", self.prompt_logprobs is None
             or (isinstance(self.prompt_logprobs, int) and 0 <= self.prompt_logprobs <= 20),
             "must be None or an int in [0, 20]"),
            ("presence_penalty", _finite(self.presence_penalty) and -2.0 <= self.presence_penalty <= 2.0,
             "must be in [-2, 2]"),
            ("frequency_penalty", _finite(self.frequency_penalty) and -2.0 <= self.frequency_penalty <= 2.0,
             "must be in [-2, 2]"),
            ("min_tokens", isinstance(self.min_tokens, int) and 0 <= self.min_tokens <= max(self.max_tokens, 0),
             "must be an int in [0, max_tokens]"),
            ("logit_bias", all(isinstance(t, int) and t >= 0 and _finite(b) and -100.0 <= b <= 100.0
                               for t, b in self.logit_bias), "must map token ids >= 0 to biases in [-100, 100]"),
            ("min_p", _finite(self.min_p) and 0.0 <= self.min_p <= 1.0, "must be in [0, 1]"),
            ("repetition_penalty", _finite(self.repetition_penalty) and 0.0 < self.repetition_penalty <= 10.0,
             "must be in (0, 10]"),
            ("guide", self.guide is None or (len(self.guide) == 2 and self.guide[0] in GUIDE_KINDS
                                             and isinstance(self.guide[1], str)),
             f"must be None or (kind, spec) with kind in {GUIDE_KINDS}"),
        )
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One position's chosen token, its log-probability and the `top` most likely (id, logprob) pairs."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RequestDelta:
    """What one engine step produced for one request (prompt_logprobs only on the first delta)."""

    request_id: str
    new_token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] | None
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None
    finished: bool
    finish_reason: str | None
    num_prompt_tokens: int
    num_generated_tokens: int
    num_cached_prompt_tokens: int
    queue_time_s: float | None = None  # arrival to first scheduling; first delta only


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot of the engine for metrics and /health."""

    num_running: int
    num_waiting: int
    num_blocks_total: int
    num_blocks_free: int
    block_size: int
    kv_bytes_per_token: int
    kv_cache_dtype: str
    prefix_cache_queries: int
    prefix_cache_hits: int
    num_preemptions: int
    weight_bytes: int
    bits_per_weight: float
    num_parameters: int
    model_impl: str = "native"  # native | generic (transformers' modeling code on the paged KV)
    model_type: str = ""  # config.json model_type
