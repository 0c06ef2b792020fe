"""ProcessEngine: the AsyncEngine interface with the EngineCore in its own process (`--engine-process`).

The vLLM v1 EngineCore pattern: this (API) process keeps the tokenizer, checks requests, detokenizes
and streams; the core process (engine/core_process.py) schedules and runs the model. Commands go down
one pipe, and each engine step comes back as one frame with every request's new tokens (engine/ipc.py).
The event loop reads that pipe with `add_reader` (no thread, no executor hop per step), so the model's
Python never competes with the HTTP layer for one GIL. Every method is called on the event loop's
thread (before start(), on the caller's). close() ends the core process; it also exits by itself when
this process dies (EOF on its command pipe, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

from presso.server.engine import ipc
from presso.server.engine.checks import RequestLimits, check_request
from presso.server.engine.config import EngineConfig
from presso.server.engine.streams import DeltaStreams
from presso.server.engine.types import EngineStats, RequestDelta, SamplingParams

log = logging.getLogger(__name__)


class EngineProcessError(RuntimeError):
    """The engine-core process is gone (crashed, killed or closed)."""


class ProcessEngine(DeltaStreams):
    def __init__(self, config: EngineConfig):
        from transformers import AutoTokenizer

        from presso.compression.checkpoint import resolve_model_dir
        from presso.server.engine.guided import GuidedDecoding

        self.config = config.validate()
        self.model_dir = resolve_model_dir(config.model)
        self.max_num_seqs = config.max_num_seqs
        cmd_r, self._cmd_w = os.pipe()
        self._event_r, event_w = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-m", "presso.server.engine.core_process", str(cmd_r),
                                      str(event_w)], pass_fds=(cmd_r, event_w))
        os.close(cmd_r)
        os.close(event_w)
        self._reader = ipc.FrameReader()
        fields = {**dataclasses.asdict(config), "model": str(self.model_dir), "engine_process": False}
        setup = {"config": fields, "log_level": logging.getLogger().getEffectiveLevel() or logging.INFO}
        ipc.write_all(self._cmd_w, ipc.encode(("setup", json.dumps(setup))))
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)  # while the core loads the model
        info = self._hello()
        self.max_model_len = info["max_model_len"]
        self.kernels = info["kernels"]
        self.limits = RequestLimits(**info["limits"])
        self.guided = GuidedDecoding(self.tokenizer, info["vocab_size"], info["eos_token_ids"])
        self._stats = ipc.stats_from_wire(info["stats"])
        os.set_blocking(self._cmd_w, False)
        self._out = bytearray()  # commands not yet written (the pipe was full)
        self._queues: dict[str, asyncio.Queue] = {}
        self._adds_sent = self._adds_seen = 0
        self._syncs: dict[int, asyncio.Future] = {}
        self._tokens = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dead = False

    def _hello(self) -> dict:
        messages = []
        while not messages:
            messages = ipc.read_messages(self._event_r, self._reader, None)
            if messages is None:
                code = self.proc.wait()
                raise EngineProcessError(f"the engine-core process exited with status {code} while loading")
        kind, payload = messages[0]
        if kind == "error":
            self.proc.wait()
            raise ValueError(payload)
        return json.loads(payload)

    # ---- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._loop is not None:
            return
        if self._dead:
            raise EngineProcessError("the engine-core process is gone")
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self._event_r, False)
        self._loop.add_reader(self._event_r, self._on_readable)
        self._flush()

    async def shutdown(self) -> None:
        """Abort every live request and wait until the core has freed them; start() may be awaited again."""
        if self._loop is None:
            return
        for request_id in list(self._queues):
            self.abort(request_id)
        if not self._dead:
            token = next(self._tokens)
            future = self._loop.create_future()
            self._syncs[token] = future
            self._send(("sync", token))
            await future
        self._detach()

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._event_r)
            self._loop.remove_writer(self._cmd_w)
        self._loop = None
        os.set_blocking(self._event_r, True)

    def close(self, timeout: float = 10.0) -> None:
        """End the core process (after shutdown(), or instead of it when the loop is gone)."""
        if self.proc.poll() is None:
            try:
                os.set_blocking(self._cmd_w, True)
                ipc.write_all(self._cmd_w, bytes(self._out) + ipc.encode(("close",)))
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._cmd_w, self._event_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._dead = True

    # ---- requests ------------------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt_token_ids: list[int],
                    params: SamplingParams) -> AsyncIterator[RequestDelta]:
        if self._loop is None:
            raise RuntimeError("ProcessEngine.start() has not been awaited")
        if self._dead:
            raise EngineProcessError("the engine-core process is gone")
        if request_id in self._queues:
            raise ValueError(f"duplicate request id {request_id!r}")
        prompt = list(prompt_token_ids)
        check_request(prompt, params, self.limits, self.guided)  # ValueError: nothing is queued
        grammar = self.guided.grammar(params.guide) if params.guide is not None else None
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[request_id] = queue
        self._adds_sent += 1
        self._send(("add", request_id, prompt, ipc.params_to_wire(params), time.monotonic(), grammar))
        return self._stream(request_id, queue)

    def abort(self, request_id: str) -> None:
        """Cancel a request (no-op for unknown or finished ids); the core answers with its abort delta."""
        if request_id in self._queues and not self._dead:
            self._send(("abort", request_id))

    def compile_guide(self, guide: tuple[str, str] | None) -> None:
        if guide is not None:
            self.guided.grammar(guide)

    def stats(self) -> EngineStats:
        """The core's latest snapshot, with requests sent but not yet seen by the core counted as waiting."""
        pending = self._adds_sent - self._adds_seen
        stats = self._stats
        return dataclasses.replace(stats, num_waiting=stats.num_waiting + pending) if pending else stats

    # ---- the pipes -----------------------------------------------------------------------------------
    def _send(self, message: tuple) -> None:
        self._out += ipc.encode(message)
        self._flush()

    def _flush(self) -> None:
        try:
            while self._out:
                del self._out[:os.write(self._cmd_w, self._out)]
        except BlockingIOError:
            pass
        except (BrokenPipeError, OSError):
            self._out.clear()
            return
        if self._loop is not None:
            if self._out:
                self._loop.add_writer(self._cmd_w, self._flush)
            else:
                self._loop.remove_writer(self._cmd_w)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._event_r, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self._on_exit()
            return
        for msg in self._reader.feed(data):
            if msg[0] == "step":
                _, deltas, stats, self._adds_seen = msg
                self._stats = ipc.stats_from_wire(stats)
                for wire in deltas:
                    queue = self._queues.get(wire[0])
                    if queue is not None:
                        queue.put_nowait(ipc.delta_from_wire(wire))
            elif msg[0] == "sync":
                _, token, stats, self._adds_seen = msg
                self._stats = ipc.stats_from_wire(stats)
                future = self._syncs.pop(token, None)
                if future is not None and not future.done():
                    future.set_result(None)

    def _on_exit(self) -> None:
        """The core process died: end every live stream with an abort and refuse new requests."""
        self._dead = True
        log.error("the engine-core process exited (status %s)", self.proc.poll())
        self._loop.remove_reader(self._event_r)
        for rid, queue in list(self._queues.items()):
            queue.put_nowait(RequestDelta(rid, (), None, None, True, "abort", 0, 0, 0))
        for future in self._syncs.values():
            if not future.done():
                future.set_result(None)
        self._syncs.clear()
