"""Run one API request as several engine requests and merge their deltas into per-choice events.

(prompt ids, SamplingParams) per choice -> AsyncEngine.add_request (one per choice, ids `<base>-<i>`)
-> RequestDelta stream -> IncrementalDetokenizer (stop strings) -> ChoiceEvent stream. Leaving the
iterator early (client gone, error) aborts every engine request still running, which frees its blocks.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi.responses import StreamingResponse

from presso.server.api import sse
from presso.server.api.detok import IncrementalDetokenizer
from presso.server.api.errors import APIError
from presso.server.metrics.registry import RequestTimer, ServerMetrics


@dataclass(frozen=True, slots=True)
class ChoiceEvent:
    index: int
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple | None  # TokenLogprob per token in token_ids
    prompt_logprobs: tuple | None  # first event only, when asked for
    finish_reason: str | None  # set on the last event of the choice
    num_prompt_tokens: int
    num_generated_tokens: int


_DONE = object()


class ChoiceRun:
    """Drives the engine requests of one API call; iterate `events()` exactly once."""

    _live: weakref.WeakSet[ChoiceRun] = weakref.WeakSet()  # runs whose events() is still going

    def __init__(self, engine, metrics: ServerMetrics, request_id: str, jobs: list[tuple[list[int], object]],
                 stops: list[str]):
        self.engine = engine
        self.metrics = metrics
        self.ids = [f"{request_id}-{i}" for i in range(len(jobs))]
        self.jobs = jobs  # (prompt token ids, SamplingParams) per choice
        self.stops = stops
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        # Handed to the engine now, in the same event-loop turn as the admission check: the next request's
        # check already sees these as waiting. A refused job (ValueError) withdraws the ones before it.
        self._streams = []
        try:
            for rid, (prompt_ids, params) in zip(self.ids, jobs, strict=True):
                self._streams.append(engine.add_request(rid, prompt_ids, params))
        except ValueError as exc:
            for rid in self.ids[:len(self._streams)]:
                engine.abort(rid)
            raise APIError(400, str(exc), code="invalid_value") from None

    async def _pump(self, index: int) -> None:
        rid = self.ids[index]
        prompt_ids = self.jobs[index][0]
        detok = IncrementalDetokenizer(self.engine.tokenizer, self.stops)
        timer = RequestTimer(self.metrics, arrival=time.perf_counter())
        generated, finish = 0, None
        try:
            async for delta in self._streams[index]:
                generated = delta.num_generated_tokens
                timer.on_tokens(len(delta.new_token_ids), delta.queue_time_s)
                piece = detok.push(delta.new_token_ids, final=delta.finished)
                finish = delta.finish_reason if delta.finished else None
                if piece.stopped:
                    finish = "stop"
                    self.engine.abort(rid)
                await self._queue.put(ChoiceEvent(
                    index, piece.text, tuple(delta.new_token_ids), delta.logprobs, delta.prompt_logprobs,
                    finish, delta.num_prompt_tokens, generated,
                ))
                if finish is not None:
                    return
        except Exception as exc:
            await self._queue.put(exc)
        finally:
            # Runs on cancellation too (client gone): every admitted request is counted exactly once.
            timer.finish(finish or "abort", len(prompt_ids), generated)
            await self._queue.put(_DONE)

    @classmethod
    def in_flight(cls) -> int:
        return len(cls._live)

    @classmethod
    def cut_off_all(cls, error: BaseException) -> int:
        """End every live run with `error` (streams: an SSE error event, then [DONE]); -> how many."""
        runs = list(cls._live)
        for run in runs:
            run._queue.put_nowait(error)
            run.abort()
        return len(runs)

    async def events(self) -> AsyncIterator[ChoiceEvent]:
        ChoiceRun._live.add(self)
        self._tasks = [asyncio.create_task(self._pump(i)) for i in range(len(self.jobs))]
        remaining = len(self._tasks)
        try:
            while remaining:
                item = await self._queue.get()
                if item is _DONE:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            ChoiceRun._live.discard(self)
            self.abort()

    def abort(self) -> None:
        for rid in self.ids:
            self.engine.abort(rid)
        for task in self._tasks:
            task.cancel()


async def watch_disconnect(request, run: ChoiceRun, interval: float = 0.25) -> None:
    """Abort `run` when the HTTP client goes away (non-streaming requests have no other signal)."""
    while not await request.is_disconnected():
        await asyncio.sleep(interval)
    run.abort()


async def streaming_response(request, run: ChoiceRun, events: AsyncIterator, make_chunks):
    """The SSE response of a streaming request. The client is watched from the start: one that leaves
    while its request is still queued (nothing sent yet, so no failed write to notice it) is aborted
    before it costs a prefill. make_chunks(first event) -> the SSE chunk iterator."""
    watcher = asyncio.create_task(watch_disconnect(request, run))
    try:
        first = await sse.prime(events)
    except BaseException:
        watcher.cancel()
        raise

    def on_exit() -> None:
        watcher.cancel()
        run.abort()

    return StreamingResponse(sse.guarded(make_chunks(first), on_exit), media_type="text/event-stream")
