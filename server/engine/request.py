"""Mutable per-request state owned by the scheduler (pure Python).

Holds the prompt and generated tokens, the request's KV blocks, how many of its tokens are already in
the cache, and what has been reported to the caller. Only the scheduler mutates it.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from presso.server.engine.types import SamplingParams, TokenLogprob


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True, eq=False)
class Request:
    request_id: str
    prompt_token_ids: tuple[int, ...]
    params: SamplingParams
    eos_token_ids: frozenset[int] = frozenset()
    token_ids: list[int] = field(default_factory=list)  # prompt + generated
    block_ids: list[int] = field(default_factory=list)
    window_slot: int = -1  # row of the KV cache's exact recent-window ring while running
    num_computed_tokens: int = 0
    num_cached_prompt_tokens: int = 0
    num_hashed_blocks: int = 0
    last_hash: int | None = None
    num_preemptions: int = 0
    status: Status = Status.WAITING
    finish_reason: str | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None
    sent_first_delta: bool = False
    arrival_time: float = field(default_factory=time.monotonic)
    first_scheduled_time: float | None = None

    def __post_init__(self):
        self.token_ids = list(self.prompt_token_ids)
        if self.params.prompt_logprobs is not None:
            self.prompt_logprobs = [None]

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_generated(self) -> int:
        return len(self.token_ids) - len(self.prompt_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[len(self.prompt_token_ids):]

    @property
    def wants_prompt_logprobs(self) -> bool:
        """True while prompt logprobs are requested and not all collected yet."""
        return self.prompt_logprobs is not None and len(self.prompt_logprobs) < self.num_prompt_tokens

    def banned_token_ids(self) -> tuple[int, ...]:
        """Tokens the sampler must not pick now: eos and stop tokens until min_tokens are generated."""
        p = self.params
        if self.num_generated >= p.min_tokens:
            return ()
        return tuple(sorted(set(p.stop_token_ids) | (set() if p.ignore_eos else set(self.eos_token_ids))))

    def stop_reason(self, token_id: int, max_model_len: int) -> str | None:
        """'stop' on a stop/eos token (from min_tokens on), 'length' at max_tokens or the model's context."""
        p = self.params
        stops = token_id in p.stop_token_ids or (not p.ignore_eos and token_id in self.eos_token_ids)
        if stops and self.num_generated >= max(p.min_tokens, 1):
            return "stop"
        if self.num_generated >= p.max_tokens or self.num_tokens >= max_model_len:
            return "length"
        return None
