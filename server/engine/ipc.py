"""The wire between the API process and the engine-core process (`--engine-process`).

Frames are a 4-byte little-endian length then a `marshal`-encoded tuple of plain values (ints, floats,
strings, tuples, None): no pickle, no objects constructed from the bytes. Both ends are this package's
own code running the same Python, so marshal's version-specific format is not a concern.

API -> core:  ("add", rid, prompt ids, params tuple, arrival monotonic s, compiled grammar | None)
              ("abort", rid)   ("sync", token)   ("close",)
core -> API:  ("hello", info dict)   ("error", message)
              ("step", deltas, stats tuple, adds seen)   ("sync", token, stats tuple, adds seen)
One "step" frame carries every request's new tokens of one engine step.
"""

from __future__ import annotations

import dataclasses
import marshal
import os
import select
import struct

from presso.server.engine.types import EngineStats, RequestDelta, SamplingParams, TokenLogprob

_HEADER = struct.Struct("<I")
_PARAM_FIELDS = tuple(f.name for f in dataclasses.fields(SamplingParams))
_STATS_FIELDS = tuple(f.name for f in dataclasses.fields(EngineStats))


def encode(message: tuple) -> bytes:
    body = marshal.dumps(message)
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Accumulates bytes read from a pipe and yields the complete frames' messages."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        self._buf += data
        out, pos, n = [], 0, len(self._buf)
        while n - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf, pos)
            if n - pos - _HEADER.size < size:
                break
            start = pos + _HEADER.size
            out.append(marshal.loads(bytes(self._buf[start:start + size])))
            pos = start + size
        del self._buf[:pos]
        return out


def read_messages(fd: int, reader: FrameReader, timeout: float | None) -> list[tuple] | None:
    """Messages available on `fd` within `timeout` seconds (None: wait for at least one); None at EOF."""
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(fd, 1 << 20)
        if not data:
            return None
        messages = reader.feed(data)
        if messages or timeout is not None:
            return messages


def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a blocking or non-blocking fd (waiting for room when the pipe is full)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def params_to_wire(params: SamplingParams) -> tuple:
    return tuple(getattr(params, name) for name in _PARAM_FIELDS)


def params_from_wire(values: tuple) -> SamplingParams:
    return SamplingParams(*values)


def stats_to_wire(stats: EngineStats) -> tuple:
    return tuple(getattr(stats, name) for name in _STATS_FIELDS)


def stats_from_wire(values: tuple) -> EngineStats:
    return EngineStats(*values)


def _lp_to_wire(lp: TokenLogprob | None) -> tuple | None:
    return None if lp is None else (lp.token_id, lp.logprob, lp.top)


def _lp_from_wire(values: tuple | None) -> TokenLogprob | None:
    return None if values is None else TokenLogprob(*values)


def delta_to_wire(d: RequestDelta) -> tuple:
    logprobs = None if d.logprobs is None else tuple(_lp_to_wire(lp) for lp in d.logprobs)
    prompt = None if d.prompt_logprobs is None else tuple(_lp_to_wire(lp) for lp in d.prompt_logprobs)
    return (d.request_id, tuple(d.new_token_ids), logprobs, prompt, d.finished, d.finish_reason,
            d.num_prompt_tokens, d.num_generated_tokens, d.num_cached_prompt_tokens, d.queue_time_s)


def delta_from_wire(values: tuple) -> RequestDelta:
    rid, tokens, logprobs, prompt, *rest = values
    return RequestDelta(
        rid, tokens, None if logprobs is None else tuple(_lp_from_wire(v) for v in logprobs),
        None if prompt is None else tuple(_lp_from_wire(v) for v in prompt), *rest)
