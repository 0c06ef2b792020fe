"""POST /v1/chat/completions: the tokenizer's chat template, n choices, logprobs, SSE streaming, tool calls
(server/api/tools.py: rendered into the prompt, forced by a grammar for required/named choices, parsed
out of the text; streamed content stops at a call's opening tag and the calls follow as one delta)."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse

from presso.server.api import sse as s
from presso.server.api.generation import ChoiceRun, streaming_response, watch_disconnect
from presso.server.api.logprobs import chat_logprobs
from presso.server.api.params import compile_guide, encode_chat, resolve_max_tokens, sampling_params
from presso.server.api.protocol import ChatCompletionRequest
from presso.server.api.state import ServerState
from presso.server.api.tools import TOOL_PARSERS, safe_prefix, template_messages, tool_calls_json, tool_guide


def chat_jobs(state: ServerState, body: ChatCompletionRequest):
    engine = state.engine
    messages, tools = template_messages(engine.tokenizer, body)
    ids = encode_chat(engine.tokenizer, messages, tools, engine.max_model_len)
    requested = body.max_completion_tokens or body.max_tokens
    max_tokens = resolve_max_tokens(len(ids), requested, engine.max_model_len)
    k = (body.top_logprobs or 0) if body.logprobs else None
    guide = (tool_guide(body) if body.tools_active() else None) or body.guide()  # a forced call wins
    compile_guide(engine, guide)
    return ids, [(ids, sampling_params(body, i, max_tokens, k, None, guide)) for i in range(body.n)]


def chat_message(state: ServerState, body: ChatCompletionRequest, text: str, reason: str) -> tuple[dict, str]:
    """The choice's message and finish_reason, with tool calls parsed out when tools are in play."""
    if body.tools_active():
        content, calls = TOOL_PARSERS[state.settings.tool_call_parser](text)
        if calls:
            return ({"role": "assistant", "content": content, "tool_calls": tool_calls_json(calls)},
                    "tool_calls" if reason == "stop" else reason)
    return {"role": "assistant", "content": text}, reason


async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    state: ServerState = request.app.state.presso
    state.check_model(body.model)
    ids, jobs = await asyncio.to_thread(chat_jobs, state, body)  # template + tokenizing off the loop
    state.admit(len(jobs))
    rid = s.new_id("chatcmpl")
    run = ChoiceRun(state.engine, state.metrics, rid, jobs, body.stop_list())
    events = run.events()
    model = state.settings.served_model_name
    tok = state.engine.tokenizer
    if body.stream:
        return await streaming_response(request, run, events, lambda first: _stream(
            state, body, rid, len(ids), first, events, model, tok))
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
    choices = []
    for i in range(body.n):
        message, reason = chat_message(state, body, texts[i], reasons[i])
        choices.append({"index": i, "message": message, "logprobs": {"content": logprobs[i]} if body.logprobs else None,
                        "finish_reason": reason})
    return JSONResponse({"id": rid, "object": "chat.completion", "created": s.now(), "model": model,
                         "choices": choices, "usage": s.usage(len(ids), sum(generated))})


async def _stream(state, body, rid, prompt_tokens, first, events, model, tok):
    created = s.now()
    generated = [0] * body.n
    tools = body.tools_active()
    text, sent = [""] * body.n, [0] * body.n  # with tools: the whole text, and how much went out as content

    def chunk(choices, usage=None):
        return s.sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                      "choices": choices, "usage": usage})

    for i in range(body.n):
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}])

    async for ev in s.chain(first, events):
        i = ev.index
        generated[i] = ev.num_generated_tokens
        lp = {"content": chat_logprobs(tok, ev.logprobs, ev.token_ids)} if body.logprobs and ev.logprobs else None
        piece, reason, calls = ev.text, ev.finish_reason, None
        if tools:
            text[i] += ev.text
            upto = len(text[i]) if reason is not None else safe_prefix(text[i])
            piece, sent[i] = text[i][sent[i]:upto], max(sent[i], upto)
            if reason is not None:
                message, reason = chat_message(state, body, text[i], reason)
                calls = message.get("tool_calls")
                if calls:  # the text from the first call on was held back: send only the calls
                    piece = ""
        if piece or lp or reason is not None:
            delta = {"content": piece} if piece else {}
            if calls:
                delta["tool_calls"] = [{"index": k, **c} for k, c in enumerate(calls)]
            yield chunk([{"index": i, "delta": delta, "logprobs": lp, "finish_reason": reason}])
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], s.usage(prompt_tokens, sum(generated)))
    yield s.SSE_DONE
