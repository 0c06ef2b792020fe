"""Sampling fields beyond the basics, through the official `openai` client against a live server:
logit_bias, stop_token_ids, min_tokens, ignore_eos, min_p, repetition_penalty (streaming and not); and
OpenAI fields presso does not implement (or values it cannot honour) are refused with a 400 naming them,
never silently ignored."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

PROMPT = "It is a truth universally acknowledged"


def _tokens(server, text: str) -> list[int]:
    r = httpx.post(f"{server.base_url}/tokenize", json={"prompt": text}, headers=server.headers())
    return r.json()["tokens"]


def _greedy(client, server, **extra):
    out = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8, temperature=0,
                                    logprobs=0, **extra)
    choice = out.choices[0]
    return choice, [_tokens(server, t)[0] for t in choice.logprobs.tokens]


def test_logit_bias_bans_and_forces_tokens(client, server):
    _, ids = _greedy(client, server)
    first = ids[0]
    _, banned = _greedy(client, server, logit_bias={str(first): -100})
    assert banned[0] != first and first not in banned
    forced_id = 42
    choice = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=6, temperature=0.9, seed=1,
                                       logit_bias={str(forced_id): 100})
    forced = httpx.post(f"{server.base_url}/detokenize", json={"tokens": [forced_id] * 6}, headers=server.headers())
    assert choice.choices[0].text == forced.json()["prompt"]


def test_stop_token_ids_and_min_tokens(client, server):
    plain = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8, temperature=0)
    first = _tokens(server, plain.choices[0].text)[0]
    stopped = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8, temperature=0,
                                        extra_body={"stop_token_ids": [first]})
    assert stopped.choices[0].finish_reason == "stop" and stopped.usage.completion_tokens == 1
    held = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8, temperature=0,
                                     extra_body={"stop_token_ids": [first], "min_tokens": 4})
    assert held.usage.completion_tokens >= 4  # the stop token is masked until 4 tokens exist
    streamed = list(client.completions.create(model=server.model, prompt=PROMPT, max_tokens=8, temperature=0,
                                              stream=True, extra_body={"stop_token_ids": [first], "min_tokens": 4}))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == held.choices[0].text


def test_ignore_eos_runs_to_max_tokens(client, server):
    out = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=30, temperature=1.0, seed=3,
                                    extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 30 and out.choices[0].finish_reason == "length"


def test_min_p_one_is_greedy_and_repetition_penalty_changes_greedy(client, server):
    greedy = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=12, temperature=0)
    only_top = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=12, temperature=1.5, seed=7,
                                         extra_body={"min_p": 1.0})
    assert only_top.choices[0].text == greedy.choices[0].text
    heavy = client.completions.create(model=server.model, prompt=PROMPT, max_tokens=12, temperature=0,
                                      extra_body={"repetition_penalty": 10.0})
    assert heavy.choices[0].text != greedy.choices[0].text


@pytest.mark.parametrize("field,value", [
    ("response_format", {"type": "yaml"}),
    ("tool_choice", "required"),
    ("functions", [{"name": "f"}]),
])
def test_unsupported_chat_fields_are_refused(client, server, field, value):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=2, extra_body={field: value})
    assert err.value.status_code == 400 and err.value.body["param"] == field


@pytest.mark.parametrize("field,value", [("best_of", 3), ("suffix", " the end"), ("logit_bias", {"x": 1})])
def test_unsupported_or_bad_completion_fields_are_refused(client, server, field, value):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=server.model, prompt=PROMPT, max_tokens=2, extra_body={field: value})
    assert err.value.body["param"] == field


def test_neutral_values_and_unknown_extensions_are_accepted(client, server):
    out = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "Hi"}],
                                         max_tokens=2, response_format={"type": "text"}, tool_choice="none",
                                         extra_body={"some_vendor_flag": True})
    assert out.choices[0].message.content is not None


@pytest.mark.parametrize("body", [
    {"prompt": "abc\ud800def", "max_tokens": 2},
    {"messages": [{"role": "user", "content": "x\udfff"}], "max_tokens": 2},
])
def test_lone_surrogate_is_a_400_not_a_500(server, body):
    route = "chat/completions" if "messages" in body else "completions"
    payload = json.dumps({"model": server.model, **body})  # ensure_ascii: the surrogate travels as \\ud800
    r = httpx.post(f"{server.v1}/{route}", content=payload, timeout=30,
                   headers={**server.headers(), "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert "surrogate" in r.json()["error"]["message"]
