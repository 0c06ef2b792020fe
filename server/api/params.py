"""Translate OpenAI request fields into engine inputs: prompt token ids and SamplingParams per choice.

Length checks happen here, before anything is queued: a prompt that alone fills the context is 400
naming `prompt`, a prompt + max_tokens that overflow it is 400 naming `max_tokens` (OpenAI's statuses,
code context_length_exceeded).
"""

from __future__ import annotations

import functools

from presso.server.api.errors import APIError
from presso.server.engine import SamplingParams


@functools.lru_cache(maxsize=8)
def _max_chars_per_token(tokenizer) -> int:
    """The longest vocabulary entry in characters: no token covers more of a text than this."""
    return max((len(t) for t in tokenizer.get_vocab()), default=1)


def encode_prompt(tokenizer, prompt: str | list[int], max_model_len: int | None = None) -> list[int]:
    if isinstance(prompt, str):
        if max_model_len is not None and len(prompt) > max_model_len * _max_chars_per_token(tokenizer):
            # certainly too long: refused before spending any time tokenizing it
            raise APIError(400, f"The prompt ({len(prompt)} characters) exceeds this model's maximum context length "
                           f"of {max_model_len} tokens.", param="prompt", code="context_length_exceeded")
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    else:
        vocab = len(tokenizer)
        bad = [t for t in prompt if t < 0 or t >= vocab]
        if bad:
            raise APIError(400, f"prompt: token id {bad[0]} is outside the vocabulary (0..{vocab - 1})",
                           param="prompt", code="invalid_value")
        ids = list(prompt)
    if not ids:
        raise APIError(400, "prompt: the prompt is empty after tokenization", param="prompt", code="invalid_value")
    return ids


def encode_chat(tokenizer, messages: list[dict], tools: list[dict] | None = None,
                max_model_len: int | None = None) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise APIError(400, "messages: this model's tokenizer has no chat template; use /v1/completions",
                       param="messages", code="invalid_value")
    try:
        text = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # template errors (role order, ...) are the caller's input
        raise APIError(400, f"messages: the chat template rejected them: {exc}", param="messages") from None
    return encode_prompt(tokenizer, text, max_model_len)


def resolve_max_tokens(prompt_len: int, requested: int | None, max_model_len: int) -> int:
    if prompt_len >= max_model_len:
        raise APIError(400, f"The prompt has {prompt_len} tokens; this model's maximum context length is "
                       f"{max_model_len} tokens.", param="prompt", code="context_length_exceeded")
    room = max_model_len - prompt_len
    if requested is None:
        return room
    if requested > room:
        raise APIError(400, f"max_tokens: {requested} + {prompt_len} prompt tokens exceeds the maximum context "
                       f"length of {max_model_len} tokens", param="max_tokens", code="context_length_exceeded")
    return requested


def compile_guide(engine, guide: tuple[str, str] | None) -> None:
    """Compile a request's grammar in the tokenizing thread (big grammars take 100 ms+); a bad one is 400."""
    try:
        engine.compile_guide(guide)
    except ValueError as exc:
        raise APIError(400, str(exc), code="invalid_value") from None


def sampling_params(body, choice: int, max_tokens: int, logprobs: int | None,
                    prompt_logprobs: int | None, guide: tuple[str, str] | None = None) -> SamplingParams:
    """One choice's parameters; with a seed, choice i uses seed + i so n choices differ reproducibly.
    `guide`: the request's structured-output constraint, built (and compiled) once by the caller."""
    top_k = body.top_k if body.top_k and body.top_k > 0 else 0
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=top_k,
        seed=None if body.seed is None else body.seed + choice,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        min_tokens=body.min_tokens,
        logit_bias=body.bias_pairs(),
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        ignore_eos=body.ignore_eos,
        stop_token_ids=tuple(body.stop_token_ids or ()),
        guide=guide,
    )
    try:
        params.validate()
    except ValueError as exc:
        raise APIError(400, str(exc), code="invalid_value") from None
    return params
