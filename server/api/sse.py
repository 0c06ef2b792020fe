"""Server-sent events and the bits every OpenAI response carries (ids, timestamps, usage)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from presso.server.api.errors import APIError, error_body


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


SSE_DONE = "data: [DONE]\n\n"


async def prime(events: AsyncIterator):
    """Await the first event before any byte is sent, so refusals still get a proper HTTP status."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


async def chain(first, rest: AsyncIterator) -> AsyncIterator:
    """The primed first event (if any), then the rest."""
    if first is not None:
        yield first
    async for item in rest:
        yield item


async def guarded(chunks: AsyncIterator[str], on_exit) -> AsyncIterator[str]:
    """Stream chunks; a failure mid-stream becomes an SSE error event; leaving always runs on_exit()."""
    try:
        async for chunk in chunks:
            yield chunk
    except APIError as exc:
        yield sse(error_body(exc.status, exc.message, exc.param, exc.code))
        yield SSE_DONE
    except Exception as exc:
        yield sse(error_body(500, f"internal error: {type(exc).__name__}"))
        yield SSE_DONE
    finally:
        on_exit()
