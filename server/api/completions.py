"""POST /v1/completions: text completion, echo + logprobs prompt scoring, n choices, SSE streaming."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse

from presso.server.api import sse as s
from presso.server.api.generation import ChoiceEvent, ChoiceRun, streaming_response, watch_disconnect
from presso.server.api.logprobs import CompletionLogprobs
from presso.server.api.params import compile_guide, encode_prompt, resolve_max_tokens, sampling_params
from presso.server.api.protocol import CompletionRequest
from presso.server.api.state import ServerState


@dataclass(slots=True)
class _Choice:
    prompt_ids: list[int]
    prompt_text: str
    logprobs: CompletionLogprobs
    text: str = ""
    lp: dict | None = None
    finish_reason: str | None = None
    generated: int = 0
    started: bool = False


def _prepare(state: ServerState, body: CompletionRequest):
    engine = state.engine
    tok = engine.tokenizer
    score_only = body.max_tokens == 0
    guide = body.guide()
    compile_guide(engine, guide)
    jobs, choices = [], []
    for prompt in body.prompts():
        ids = encode_prompt(tok, prompt, engine.max_model_len)
        max_tokens = resolve_max_tokens(len(ids), 1 if score_only else body.max_tokens, engine.max_model_len)
        prompt_lp = body.logprobs if body.echo and body.logprobs is not None else None
        text = prompt if isinstance(prompt, str) else tok.decode(ids)
        for i in range(body.n):
            jobs.append((ids, sampling_params(body, i, max_tokens, body.logprobs, prompt_lp, guide)))
            offset = 0 if body.echo else len(text)
            choices.append(_Choice(ids, text, CompletionLogprobs(tok, offset)))
    return jobs, choices, score_only


def _apply(choice: _Choice, ev: ChoiceEvent, body: CompletionRequest, score_only: bool) -> tuple[str, dict | None]:
    """Fold one event into a choice; return the text and logprobs it contributes to the output."""
    text, lp = "", None
    if not choice.started:
        choice.started = True
        if body.echo:
            text = choice.prompt_text
            if body.logprobs is not None and ev.prompt_logprobs is not None:
                lp = choice.logprobs.block(ev.prompt_logprobs, choice.prompt_ids)
    if not score_only:
        text += ev.text
        choice.generated = ev.num_generated_tokens
        if body.logprobs is not None and ev.logprobs is not None and ev.token_ids:
            lp = CompletionLogprobs.merge(lp, choice.logprobs.block(ev.logprobs, ev.token_ids))
    if ev.finish_reason is not None:
        choice.finish_reason = "length" if score_only else ev.finish_reason
    choice.text += text
    choice.lp = CompletionLogprobs.merge(choice.lp, lp) if lp is not None else choice.lp
    return text, lp


def _prompt_tokens(choices: list[_Choice], n: int) -> int:
    return sum(len(c.prompt_ids) for c in choices[::n])


async def create_completion(body: CompletionRequest, request: Request):
    state: ServerState = request.app.state.presso
    state.check_model(body.model)
    jobs, choices, score_only = await asyncio.to_thread(_prepare, state, body)  # tokenizing off the loop
    state.admit(len(jobs))
    rid = s.new_id("cmpl")
    stops = [] if score_only else body.stop_list()
    run = ChoiceRun(state.engine, state.metrics, rid, jobs, stops)
    events = run.events()
    if body.stream:
        model = state.settings.served_model_name
        return await streaming_response(request, run, events, lambda first: _stream(
            body, rid, choices, score_only, first, events, model))
    watcher = asyncio.create_task(watch_disconnect(request, run))
    try:
        async for ev in events:
            _apply(choices[ev.index], ev, body, score_only)
    finally:
        watcher.cancel()
        run.abort()
    out = [{"index": i, "text": c.text, "logprobs": c.lp if body.logprobs is not None else None,
            "finish_reason": c.finish_reason or "abort"} for i, c in enumerate(choices)]
    return JSONResponse({
        "id": rid, "object": "text_completion", "created": s.now(), "model": state.settings.served_model_name,
        "choices": out, "usage": s.usage(_prompt_tokens(choices, body.n), sum(c.generated for c in choices)),
    })


async def _stream(body, rid, choices, score_only, first, events, model):
    created = s.now()

    def chunk(choice_list, usage=None):
        return s.sse({"id": rid, "object": "text_completion", "created": created, "model": model,
                      "choices": choice_list, "usage": usage})

    async for ev in s.chain(first, events):
        text, lp = _apply(choices[ev.index], ev, body, score_only)
        if text or ev.finish_reason is not None or lp is not None:
            yield chunk([{"index": ev.index, "text": text, "logprobs": lp,
                          "finish_reason": choices[ev.index].finish_reason}])
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], s.usage(_prompt_tokens(choices, body.n), sum(c.generated for c in choices)))
    yield s.SSE_DONE
