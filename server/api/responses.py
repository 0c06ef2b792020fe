"""POST /v1/responses: the Responses API on the chat path (one output, text or function calls).

The body becomes a chat request (responses_protocol.py), runs as one choice, and comes back as a
`response` object: a `message` item with `output_text`, or `function_call` items; status `incomplete`
with reason max_output_tokens when the budget ran out. Streaming sends the Responses event sequence
(response.created ... response.output_text.delta ... response.completed), each as `event:` + `data:`.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from presso.server.api import sse as s
from presso.server.api.chat import chat_jobs, chat_message
from presso.server.api.errors import APIError, validation_message
from presso.server.api.generation import ChoiceRun, streaming_response, watch_disconnect
from presso.server.api.responses_protocol import ResponsesRequest
from presso.server.api.state import ServerState


def _chat(body: ResponsesRequest):
    try:
        return body.to_chat()
    except ValidationError as exc:
        message, param = validation_message(exc.errors())
        raise APIError(400, message, param=param, code="invalid_value") from None
    except ValueError as exc:
        raise APIError(400, str(exc), code="invalid_value") from None


def _output(message: dict) -> list[dict]:
    if message.get("tool_calls"):
        return [{"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:24]}", "call_id": c["id"],
                 "name": c["function"]["name"], "arguments": c["function"]["arguments"], "status": "completed"}
                for c in message["tool_calls"]]
    return [{"type": "message", "id": f"msg_{uuid.uuid4().hex[:24]}", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": message["content"] or "", "annotations": []}]}]


def _response(rid: str, body: ResponsesRequest, model: str, created: int, status: str, output: list,
              usage: dict | None, reason: str | None = None) -> dict:
    return {"id": rid, "object": "response", "created_at": created, "status": status, "model": model,
            "output": output, "usage": usage, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if reason == "length" else None,
            "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
            "temperature": body.temperature, "top_p": body.top_p, "parallel_tool_calls": body.parallel_tool_calls,
            "tool_choice": body.tool_choice or "auto", "tools": [t.model_dump() for t in body.tools or ()],
            "text": (body.text.model_dump(by_alias=True) if body.text else {"format": {"type": "text"}}),
            "metadata": body.metadata or {}}


def _usage(prompt: int, generated: int) -> dict:
    return {"input_tokens": prompt, "output_tokens": generated, "total_tokens": prompt + generated,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


async def create_response(body: ResponsesRequest, request: Request):
    state: ServerState = request.app.state.presso
    state.check_model(body.model)
    chat = _chat(body)
    ids, jobs = await asyncio.to_thread(chat_jobs, state, chat)
    state.admit(len(jobs))
    rid = f"resp_{uuid.uuid4().hex}"
    run = ChoiceRun(state.engine, state.metrics, rid, jobs, [])
    events = run.events()
    model, created = state.settings.served_model_name, s.now()
    if body.stream:
        return await streaming_response(request, run, events, lambda first: _stream(
            state, body, chat, rid, model, created, len(ids), first, events))
    text, reason, generated = "", "abort", 0
    watcher = asyncio.create_task(watch_disconnect(request, run))
    try:
        async for ev in events:
            text += ev.text
            generated = ev.num_generated_tokens
            reason = ev.finish_reason or reason
    finally:
        watcher.cancel()
        run.abort()
    message, reason = chat_message(state, chat, text, reason)
    status = "incomplete" if reason == "length" else "completed"
    return JSONResponse(_response(rid, body, model, created, status, _output(message),
                                  _usage(len(ids), generated), reason))


def _event(kind: str, seq: int, **fields) -> str:
    payload = json.dumps({"type": kind, "sequence_number": seq, **fields}, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n"


async def _stream(state, body, chat, rid, model, created, prompt_tokens, first, events):
    seq = iter(range(1_000_000))
    shell = _response(rid, body, model, created, "in_progress", [], None)
    yield _event("response.created", next(seq), response=shell)
    yield _event("response.in_progress", next(seq), response=shell)
    text, reason, generated = "", "abort", 0
    msg_id = f"msg_{uuid.uuid4().hex[:24]}"
    started = False
    async for ev in s.chain(first, events):
        text += ev.text
        generated = ev.num_generated_tokens
        reason = ev.finish_reason or reason
        if ev.text and not chat.tools_active():  # with tools the text may turn out to be calls: sent at the end
            if not started:
                started = True
                item = {"type": "message", "id": msg_id, "status": "in_progress", "role": "assistant", "content": []}
                yield _event("response.output_item.added", next(seq), output_index=0, item=item)
                yield _event("response.content_part.added", next(seq), item_id=msg_id, output_index=0,
                             content_index=0, part={"type": "output_text", "text": "", "annotations": []})
            yield _event("response.output_text.delta", next(seq), item_id=msg_id, output_index=0,
                         content_index=0, delta=ev.text)
    message, reason = chat_message(state, chat, text, reason)
    output = _output(message)
    if output[0]["type"] == "message":
        output[0]["id"] = msg_id
        part = output[0]["content"][0]
        if not started:
            yield _event("response.output_item.added", next(seq), output_index=0,
                         item={**output[0], "status": "in_progress", "content": []})
            yield _event("response.content_part.added", next(seq), item_id=msg_id, output_index=0,
                         content_index=0, part={**part, "text": ""})
            if part["text"]:
                yield _event("response.output_text.delta", next(seq), item_id=msg_id, output_index=0,
                             content_index=0, delta=part["text"])
        yield _event("response.output_text.done", next(seq), item_id=msg_id, output_index=0, content_index=0,
                     text=part["text"])
        yield _event("response.content_part.done", next(seq), item_id=msg_id, output_index=0, content_index=0,
                     part=part)
        yield _event("response.output_item.done", next(seq), output_index=0, item=output[0])
    else:
        for k, item in enumerate(output):
            yield _event("response.output_item.added", next(seq), output_index=k, item={**item, "arguments": ""})
            yield _event("response.function_call_arguments.delta", next(seq), item_id=item["id"], output_index=k,
                         delta=item["arguments"])
            yield _event("response.function_call_arguments.done", next(seq), item_id=item["id"], output_index=k,
                         arguments=item["arguments"])
            yield _event("response.output_item.done", next(seq), output_index=k, item=item)
    status = "incomplete" if reason == "length" else "completed"
    final = _response(rid, body, model, created, status, output, _usage(prompt_tokens, generated), reason)
    yield _event("response.completed" if status == "completed" else "response.incomplete", next(seq), response=final)
