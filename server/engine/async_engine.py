"""AsyncEngine: the asyncio face of the engine, used by the HTTP layer.

`add_request` validates synchronously (ValueError before anything is queued) and returns an async
iterator of RequestDeltas. A background task steps the EngineCore in a worker thread (model steps never
block the event loop) and routes each step's deltas to the requests' queues. That one thread also builds
the EngineCore: torch's OpenMP runtime (libgomp) keeps a thread team per calling thread and, once the
process holds more OpenMP threads than cores, stops spinning between parallel regions, so model steps
on a second team were 2x slower here (SmolLM2 int4 batch 1, 2 threads: 14 -> 28 ms per step). `abort` is synchronous and
thread-safe: it frees the request's blocks at once when no step is running, else right after the step.
Closing a request's iterator early (client gone) aborts it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore
from presso.server.engine.streams import DeltaStreams
from presso.server.engine.types import EngineStats, RequestDelta, SamplingParams, TokenLogprob

__all__ = ["AsyncEngine", "open_engine", "EngineConfig", "EngineStats", "RequestDelta", "SamplingParams", "TokenLogprob"]

log = logging.getLogger(__name__)


def open_engine(config: EngineConfig):
    """The serving engine `config` asks for: the EngineCore in a worker thread of this process (AsyncEngine)
    or in its own process (ProcessEngine, `engine_process=True`); both have the same async interface."""
    if config.engine_process:
        from presso.server.engine.process_engine import ProcessEngine

        return ProcessEngine(config)
    return AsyncEngine.from_config(config)


class AsyncEngine(DeltaStreams):
    def __init__(self, core: EngineCore, executor: ThreadPoolExecutor):
        self.core = core
        self.tokenizer = core.tokenizer
        self.model_dir = core.model_dir
        self.max_model_len = core.max_model_len
        self.max_num_seqs = core.config.max_num_seqs
        self._lock = threading.Lock()  # guards core (scheduler + runner)
        self._pending_lock = threading.Lock()  # guards the two pending lists below
        self._pending_adds: list[tuple[str, list[int], SamplingParams, float]] = []
        self._pending_aborts: set[str] = set()
        self._queues: dict[str, asyncio.Queue] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = executor  # the one thread that runs torch: it built `core` (module docstring)

    @classmethod
    def from_config(cls, config: EngineConfig) -> AsyncEngine:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="presso-engine")
        try:
            core = executor.submit(EngineCore, config).result()
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(core, executor)

    # ---- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="presso-engine-loop")

    def close(self) -> None:
        """End the engine thread (after shutdown(); ProcessEngine.close ends its core process)."""
        self._executor.shutdown(wait=True)

    async def shutdown(self) -> None:
        """Stop stepping, abort what is still queued or running; start() may be awaited again later."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)  # the step in flight
        for request_id in list(self._queues):
            self.abort(request_id)

    # ---- requests ------------------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt_token_ids: list[int],
                    params: SamplingParams) -> AsyncIterator[RequestDelta]:
        if self._task is None:
            raise RuntimeError("AsyncEngine.start() has not been awaited")
        if request_id in self._queues:
            raise ValueError(f"duplicate request id {request_id!r}")
        prompt = list(prompt_token_ids)
        self.core.check(prompt, params)  # ValueError: nothing is queued
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[request_id] = queue
        with self._pending_lock:
            self._pending_adds.append((request_id, prompt, params, time.monotonic()))
        self._wake.set()
        return self._stream(request_id, queue)

    def abort(self, request_id: str) -> None:
        """Cancel a request (no-op for unknown or finished ids). Thread-safe, never blocks on a step."""
        with self._pending_lock:
            before = len(self._pending_adds)
            self._pending_adds = [a for a in self._pending_adds if a[0] != request_id]
            if len(self._pending_adds) != before:
                self._deliver_threadsafe([self._abort_delta(request_id)])
                return
        if self._lock.acquire(blocking=False):
            try:
                aborted = self.core.abort(request_id)
            finally:
                self._lock.release()
            if aborted:
                self._deliver_threadsafe([self._abort_delta(request_id)])
        else:
            with self._pending_lock:
                self._pending_aborts.add(request_id)

    def _abort_delta(self, request_id: str) -> RequestDelta:
        return RequestDelta(request_id, (), None, None, True, "abort", 0, 0, 0)

    def compile_guide(self, guide: tuple[str, str] | None) -> None:
        """Compile (and cache) a structured-output grammar now, off the event loop: the engine thread and
        add_request's check then find it compiled. ValueError for a bad grammar."""
        if guide is not None:
            self.core.guided.grammar(guide)

    def stats(self) -> EngineStats:
        """The core's stats, with requests accepted but not yet handed to the scheduler counted as waiting."""
        stats = self.core.stats()
        with self._pending_lock:
            pending = len(self._pending_adds)
        return dataclasses.replace(stats, num_waiting=stats.num_waiting + pending) if pending else stats

    # ---- the stepping loop ---------------------------------------------------------------------------
    def _step(self) -> list[RequestDelta]:
        """Runs in the worker thread: admit new requests, one engine step, then late aborts."""
        with self._lock:
            with self._pending_lock:
                adds, self._pending_adds = self._pending_adds, []
            deltas = []
            for request_id, prompt, params, arrival in adds:
                try:
                    self.core.add_request(request_id, prompt, params, arrival)
                except ValueError:
                    deltas.append(self._abort_delta(request_id))
            deltas += self.core.step()
            with self._pending_lock:
                aborts, self._pending_aborts = self._pending_aborts, set()
            for request_id in aborts:
                if self.core.abort(request_id):
                    deltas.append(self._abort_delta(request_id))
            return deltas

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.core.has_work() and not self._pending_adds:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                deltas = await loop.run_in_executor(self._executor, self._step)
            except Exception:  # keep serving: the core already isolates failing requests
                log.exception("engine loop step failed")
                await asyncio.sleep(0.01)
                continue
            self._deliver(deltas)

    def _deliver(self, deltas: list[RequestDelta]) -> None:
        for delta in deltas:
            queue = self._queues.get(delta.request_id)
            if queue is not None:
                queue.put_nowait(delta)

    def _deliver_threadsafe(self, deltas: list[RequestDelta]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(deltas)
        else:
            loop.call_soon_threadsafe(self._deliver, deltas)
