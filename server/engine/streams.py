"""The per-request delta stream both engine front ends hand to the API layer.

AsyncEngine (core stepping in a worker thread) and ProcessEngine (core in its own process) each put a
request's RequestDeltas on an asyncio.Queue; `_stream` yields them until the finished one. A consumer that
leaves early (client disconnect) aborts the request, so its KV blocks are freed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from presso.server.engine.types import RequestDelta


class DeltaStreams:
    _queues: dict[str, asyncio.Queue]

    def abort(self, request_id: str) -> None:
        raise NotImplementedError

    async def _stream(self, request_id: str, queue: asyncio.Queue) -> AsyncIterator[RequestDelta]:
        finished = False
        try:
            while not finished:
                delta: RequestDelta = await queue.get()
                finished = delta.finished
                yield delta
        finally:
            if not finished:  # the consumer went away: free the request's blocks
                self.abort(request_id)
            self._queues.pop(request_id, None)
