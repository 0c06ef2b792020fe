"""Continuous-batching scheduler: which requests run which tokens this step (pure Python, no torch).

Each step has a token budget (`max_num_batched_tokens`). Running requests go first, oldest first: a decode
costs one token, an unfinished prompt continues in a chunk of whatever budget is left (chunked prefill
mixed with decodes). Waiting requests are admitted while budget, sequence slots and KV blocks last, reusing
cached prefix blocks. When a running request needs a block and none is free, the newest running request
is preempted by recompute: its blocks are freed and it re-enters the front of the queue with its
generated tokens, to be prefilled again later.

Data flow: add() -> schedule() -> [ModelRunner.execute] -> update() -> RequestDeltas.
"""

from __future__ import annotations

import time
from collections import deque

from presso.server.engine.checks import RequestLimits, check_fits
from presso.server.engine.outputs import RunnerOutput, ScheduledSeq, SchedulerOutput
from presso.server.engine.request import Request, Status
from presso.server.engine.types import RequestDelta
from presso.server.kv.block_manager import BlockManager


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int,
                 max_model_len: int):
        assert max_num_seqs > 0 and max_num_batched_tokens > 0 and max_model_len > 0
        self.bm = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_model_len = max_model_len
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.requests: dict[str, Request] = {}
        self.num_preemptions = 0
        self._window_slots = list(range(max_num_seqs - 1, -1, -1))  # one per running request

    # ---- admission and cancellation ------------------------------------------------------------------
    def check(self, prompt_token_ids, params) -> None:
        """Raise ValueError when a request can never run (empty, too long, larger than the whole cache)."""
        check_fits(len(prompt_token_ids), params, RequestLimits(self.max_model_len, self.bm.block_size,
                                                                 self.bm.num_blocks, vocab_size=0))

    def add(self, request: Request) -> None:
        if request.request_id in self.requests:
            raise ValueError(f"duplicate request id {request.request_id!r}")
        self.check(request.prompt_token_ids, request.params)
        self.requests[request.request_id] = request
        self.waiting.append(request)

    def abort(self, request_id: str) -> Request | None:
        """Remove a request wherever it is and free its blocks; None if unknown or already finished."""
        req = self.requests.pop(request_id, None)
        if req is None:
            return None
        if req.status is Status.RUNNING:
            self.running.remove(req)
        else:
            self.waiting.remove(req)
        self._finish(req, "abort")
        return req

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # ---- schedule ------------------------------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        budget = self.max_num_batched_tokens
        seqs: list[ScheduledSeq] = []
        preempted: list[str] = []
        for req in list(self.running):
            if budget == 0:
                break
            if req.status is not Status.RUNNING:  # preempted earlier in this loop
                continue
            n = min(req.num_tokens - req.num_computed_tokens, budget)
            if n <= 0:
                continue
            if not self._grow(req, req.num_computed_tokens + n, preempted):
                break
            seqs.append(self._scheduled(req, n))
            budget -= n
        while not preempted and self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            req = self.waiting[0]
            cached = [] if req.wants_prompt_logprobs else self.bm.find_cached_prefix(req.token_ids)
            self.bm.take_cached(cached)
            num_cached = len(cached) * self.bm.block_size
            n = min(req.num_tokens - num_cached, budget)
            new = self.bm.allocate(self.bm.blocks_needed(num_cached + n) - len(cached))
            if new is None:
                self.bm.free(cached)
                break
            self.waiting.popleft()
            req.block_ids = cached + new
            req.window_slot = self._window_slots.pop()
            req.num_computed_tokens = num_cached
            if req.num_preemptions == 0:
                req.num_cached_prompt_tokens = num_cached
                self.bm.count_lookup(req.num_prompt_tokens, num_cached)
            req.status = Status.RUNNING
            if req.first_scheduled_time is None:
                req.first_scheduled_time = time.monotonic()
            self.running.append(req)
            seqs.append(self._scheduled(req, n))
            budget -= n
        return SchedulerOutput(tuple(seqs), self.max_num_batched_tokens - budget, tuple(preempted))

    def _grow(self, req: Request, num_tokens: int, preempted: list[str]) -> bool:
        """Give `req` blocks for `num_tokens`, preempting the newest running requests; False if req itself was."""
        need = self.bm.blocks_needed(num_tokens) - len(req.block_ids)
        while need > 0:
            new = self.bm.allocate(need)
            if new is not None:
                req.block_ids.extend(new)
                return True
            victim = self.running[-1]
            self._preempt(victim)
            preempted.append(victim.request_id)
            if victim is req:
                return False
        return True

    def _release_window(self, req: Request) -> None:
        if req.window_slot >= 0:
            self._window_slots.append(req.window_slot)
            req.window_slot = -1

    def _preempt(self, req: Request) -> None:
        self.running.remove(req)
        self.bm.free(req.block_ids)
        self._release_window(req)
        req.block_ids = []
        req.num_computed_tokens = 0
        req.num_hashed_blocks, req.last_hash = 0, None
        req.num_preemptions += 1
        req.status = Status.WAITING
        self.waiting.appendleft(req)
        self.num_preemptions += 1

    def _scheduled(self, req: Request, n: int) -> ScheduledSeq:
        start = req.num_computed_tokens
        p = req.params
        plp_from, targets = None, ()
        if req.wants_prompt_logprobs:
            plp_from = len(req.prompt_logprobs)  # next prompt position to report; its logits sit at plp_from-1
            targets = tuple(req.prompt_token_ids[plp_from:min(start + n + 1, req.num_prompt_tokens)])
        penalties = p.presence_penalty != 0.0 or p.frequency_penalty != 0.0
        return ScheduledSeq(
            request_id=req.request_id, token_ids=tuple(req.token_ids[start:start + n]), start_pos=start,
            block_ids=tuple(req.block_ids), sample=start + n == req.num_tokens, params=p,
            output_token_ids=tuple(req.output_token_ids) if penalties else (),
            num_generated=req.num_generated, prompt_logprobs_from=plp_from, prompt_logprob_targets=targets,
            window_slot=req.window_slot, banned_token_ids=req.banned_token_ids(),
            context_token_ids=tuple(req.token_ids) if p.repetition_penalty != 1.0 else (),
        )

    # ---- update --------------------------------------------------------------------------------------
    def update(self, out: SchedulerOutput, result: RunnerOutput) -> list[RequestDelta]:
        """Advance each scheduled request by what the runner computed; emit deltas, free finished ones."""
        sampled = {s.request_id: s for s in result.sampled}
        plps = dict(result.prompt_logprobs)
        deltas = []
        for seq in out.seqs:
            req = self.requests.get(seq.request_id)
            if req is None or req.status is not Status.RUNNING:  # aborted while the step ran
                continue
            req.num_computed_tokens += seq.num_tokens
            req.num_hashed_blocks, req.last_hash = self.bm.cache_full_blocks(
                req.block_ids, req.token_ids, req.num_computed_tokens, req.num_hashed_blocks, req.last_hash)
            if seq.request_id in plps and req.wants_prompt_logprobs:
                room = req.num_prompt_tokens - len(req.prompt_logprobs)
                req.prompt_logprobs.extend(plps[seq.request_id][:room])
            if not seq.sample:
                continue
            new, lps, reason = (), None, None
            if req.params.max_tokens == 0:
                reason = "length"
            else:
                tok = sampled[seq.request_id]
                req.token_ids.append(tok.token_id)
                new = (tok.token_id,)
                lps = (tok.logprob,) if tok.logprob is not None else None
                reason = req.stop_reason(tok.token_id, self.max_model_len)
            deltas.append(self._delta(req, new, lps, reason))
            if reason is not None:
                self.requests.pop(req.request_id, None)
                self.running.remove(req)
                self._finish(req, reason)
        return deltas

    def fail(self, out: SchedulerOutput) -> list[RequestDelta]:
        """The step raised: abort exactly the requests it carried; the others are untouched."""
        deltas = []
        for seq in out.seqs:
            req = self.abort(seq.request_id)
            if req is not None:
                deltas.append(self._delta(req, (), None, "abort"))
        return deltas

    def _delta(self, req: Request, new, lps, reason) -> RequestDelta:
        plp, queue_time = None, None
        if not req.sent_first_delta:
            req.sent_first_delta = True
            plp = tuple(req.prompt_logprobs) if req.prompt_logprobs is not None else None
            if req.first_scheduled_time is not None:
                queue_time = req.first_scheduled_time - req.arrival_time
        return RequestDelta(
            request_id=req.request_id, new_token_ids=new, logprobs=lps, prompt_logprobs=plp,
            finished=reason is not None, finish_reason=reason, num_prompt_tokens=req.num_prompt_tokens,
            num_generated_tokens=req.num_generated, num_cached_prompt_tokens=req.num_cached_prompt_tokens,
            queue_time_s=queue_time,
        )

    def _finish(self, req: Request, reason: str) -> None:
        if req.block_ids:
            self.bm.free(req.block_ids)
        req.block_ids = []
        self._release_window(req)
        req.status = Status.FINISHED
        req.finish_reason = reason
