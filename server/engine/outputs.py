"""The frozen hand-offs between the two verbs of an engine step (DESIGN contract 4).

`Scheduler.schedule() -> SchedulerOutput` says which requests run which tokens at which positions with
which block tables; `ModelRunner.execute(SchedulerOutput) -> RunnerOutput` returns the sampled tokens and
logprobs; `Scheduler.update(SchedulerOutput, RunnerOutput)` turns them into RequestDeltas. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from presso.server.engine.types import SamplingParams, TokenLogprob


@dataclass(frozen=True, slots=True)
class ScheduledSeq:
    """One request's share of a step: `token_ids` at positions start_pos.. written into `block_ids`."""

    request_id: str
    token_ids: tuple[int, ...]
    start_pos: int
    block_ids: tuple[int, ...]
    sample: bool  # the chunk ends at the request's last known token: sample the next one
    params: SamplingParams
    output_token_ids: tuple[int, ...]  # generated so far (for penalties), only when a penalty is set
    num_generated: int  # tokens generated so far: the per-request seed's step counter
    prompt_logprobs_from: int | None  # first prompt position (>= 1) whose logprob this chunk reports
    prompt_logprob_targets: tuple[int, ...] = ()  # prompt tokens at positions prompt_logprobs_from..
    window_slot: int = 0  # the request's row of the exact recent-window ring (server/kv/window.py)
    banned_token_ids: tuple[int, ...] = ()  # masked this step: eos/stop tokens before min_tokens
    context_token_ids: tuple[int, ...] = ()  # prompt + generated, only when a repetition penalty is set

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True, slots=True)
class SchedulerOutput:
    seqs: tuple[ScheduledSeq, ...]
    num_batched_tokens: int
    preempted_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.seqs


@dataclass(frozen=True, slots=True)
class SampledToken:
    request_id: str
    token_id: int
    logprob: TokenLogprob | None


@dataclass(frozen=True, slots=True)
class RunnerOutput:
    """Sampled tokens (one per seq with sample=True) and prompt logprobs per chunk that asked for them."""

    sampled: tuple[SampledToken, ...]
    prompt_logprobs: tuple[tuple[str, tuple[TokenLogprob, ...]], ...] = ()
