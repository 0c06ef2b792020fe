"""One streamed OpenAI request over httpx, timed on the client: the runner's unit of work.

Job -> POST /v1/completions or /v1/chat/completions with stream=true and include_usage -> SSE lines
-> RequestRecord (arrival time of every content chunk, usage token counts, or the error). Works with
any OpenAI-compatible server; token counts come from the server's usage chunk when it sends one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from loadtest.config import LoadtestInputError, RunConfig
from loadtest.workload import Job


@dataclass(frozen=True, slots=True)
class RequestRecord:
    index: int
    start: float  # seconds since the run started
    e2e: float  # seconds from send to the end of the stream (or the failure)
    chunk_times: tuple[float, ...]  # seconds since send, one per chunk that carried text
    prompt_tokens: int | None
    output_tokens: int  # usage.completion_tokens, else the number of text chunks
    max_tokens: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] if self.chunk_times else None


def headers(config: RunConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}


def discover_model(config: RunConfig) -> str:
    """The first model id GET /v1/models lists (what a server serves when it serves one model)."""
    url = f"{config.base_url.rstrip('/')}/v1/models"
    try:
        r = httpx.get(url, headers=headers(config), timeout=30)
        r.raise_for_status()
        return r.json()["data"][0]["id"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise LoadtestInputError(f"cannot list models at {url} ({exc}); pass --model") from None


def request_body(config: RunConfig, model: str, job: Job) -> tuple[str, dict]:
    body = {"model": model, "max_tokens": job.max_tokens, "temperature": config.temperature, "stream": True,
            "stream_options": {"include_usage": True}, **config.extra_body}
    if config.api == "chat":
        body["messages"] = [{"role": "user", "content": job.prompt}]
        return "/v1/chat/completions", body
    body["prompt"] = job.prompt
    return "/v1/completions", body


def _chunk_text(event: dict) -> str:
    choices = event.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "text" in choice:
        return choice.get("text") or ""
    return (choice.get("delta") or {}).get("content") or ""


async def send(http: httpx.AsyncClient, config: RunConfig, model: str, job: Job, run_start: float) -> RequestRecord:
    path, body = request_body(config, model, job)
    sent = time.perf_counter()
    chunks: list[float] = []
    usage: dict = {}
    error = None
    try:
        async with http.stream("POST", config.base_url.rstrip("/") + path, json=body, headers=headers(config)) as r:
            if r.status_code != 200:
                text = (await r.aread()).decode("utf-8", "replace")
                error = f"HTTP {r.status_code}: {text[:200]}"
            else:
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    event = json.loads(payload)
                    if "error" in event:
                        error = f"stream error: {str(event['error'])[:200]}"
                        break
                    if _chunk_text(event):
                        chunks.append(time.perf_counter() - sent)
                    usage = event.get("usage") or usage
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    end = time.perf_counter()
    return RequestRecord(
        index=job.index, start=sent - run_start, e2e=end - sent, chunk_times=tuple(chunks),
        prompt_tokens=usage.get("prompt_tokens"), output_tokens=int(usage.get("completion_tokens", len(chunks))),
        max_tokens=job.max_tokens, error=error,
    )
