"""POST /v1/chat/completions: the tokenizer's chat template, n choices, logprobs, SSE streaming."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from presso.server.api import sse as s
from presso.server.api.generation import ChoiceRun, watch_disconnect
from presso.server.api.logprobs import chat_logprobs
from presso.server.api.params import encode_chat, resolve_max_tokens, sampling_params
from presso.server.api.protocol import ChatCompletionRequest
from presso.server.api.state import ServerState


def _jobs(state: ServerState, body: ChatCompletionRequest):
    engine = state.engine
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    ids = encode_chat(engine.tokenizer, messages)
    requested = body.max_completion_tokens or body.max_tokens
    max_tokens = resolve_max_tokens(len(ids), requested, engine.max_model_len)
    k = (body.top_logprobs or 0) if body.logprobs else None
    return ids, [(ids, sampling_params(body, i, max_tokens, k, None)) for i in range(body.n)]


async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    state: ServerState = request.app.state.presso
    state.check_model(body.model)
    ids, jobs = _jobs(state, body)
    state.admit(len(jobs))
    rid = s.new_id("chatcmpl")
    run = ChoiceRun(state.engine, state.metrics, rid, jobs, body.stop_list())
    events = run.events()
    model = state.settings.served_model_name
    tok = state.engine.tokenizer
    if body.stream:
        first = await s.prime(events)
        chunks = _stream(body, rid, len(ids), first, events, model, tok)
        return StreamingResponse(s.guarded(chunks, run.abort), media_type="text/event-stream")
    texts, reasons, generated = [""] * body.n, ["abort"] * body.n, [0] * body.n
    logprobs: list[list] = [[] for _ in range(body.n)]
    watcher = asyncio.create_task(watch_disconnect(request, run))
    try:
        async for ev in events:
            texts[ev.index] += ev.text
            generated[ev.index] = ev.num_generated_tokens
            if body.logprobs and ev.logprobs:
                logprobs[ev.index] += chat_logprobs(tok, ev.logprobs, ev.token_ids)
            if ev.finish_reason is not None:
                reasons[ev.index] = ev.finish_reason
    finally:
        watcher.cancel()
        run.abort()
    choices = [{"index": i, "message": {"role": "assistant", "content": texts[i]},
                "logprobs": {"content": logprobs[i]} if body.logprobs else None,
                "finish_reason": reasons[i]} for i in range(body.n)]
    return JSONResponse({"id": rid, "object": "chat.completion", "created": s.now(), "model": model,
                         "choices": choices, "usage": s.usage(len(ids), sum(generated))})


async def _stream(body, rid, prompt_tokens, first, events, model, tok):
    created = s.now()
    generated = [0] * body.n

    def chunk(choices, usage=None):
        return s.sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                      "choices": choices, "usage": usage})

    for i in range(body.n):
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}])

    async for ev in s.chain(first, events):
        generated[ev.index] = ev.num_generated_tokens
        lp = {"content": chat_logprobs(tok, ev.logprobs, ev.token_ids)} if body.logprobs and ev.logprobs else None
        if ev.text or lp or ev.finish_reason is not None:
            delta = {"content": ev.text} if ev.text else {}
            yield chunk([{"index": ev.index, "delta": delta, "logprobs": lp, "finish_reason": ev.finish_reason}])
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], s.usage(prompt_tokens, sum(generated)))
    yield s.SSE_DONE
