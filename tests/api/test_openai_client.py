"""The official `openai` client against a live presso server: completions, chat, streaming, n, seed,
logprobs, stop strings, echo scoring, tokenize/detokenize, models."""

from __future__ import annotations

import math

import httpx
import pytest


def test_models_lists_the_served_name(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == [server.model]


def test_completion_usage_matches_tokenize(client, server):
    prompt = "It is a truth universally acknowledged"
    out = client.completions.create(model=server.model, prompt=prompt, max_tokens=7, temperature=0)
    count = httpx.post(f"{server.base_url}/tokenize", json={"prompt": prompt}, headers=server.headers()).json()
    assert out.usage.prompt_tokens == count["count"] > 0
    assert out.usage.completion_tokens == 7 and out.choices[0].finish_reason == "length"
    assert out.usage.total_tokens == out.usage.prompt_tokens + 7


def test_tokenize_detokenize_round_trip(server):
    text = "a single man in possession of a good fortune"
    ids = httpx.post(f"{server.base_url}/tokenize", json={"prompt": text}, headers=server.headers()).json()
    back = httpx.post(f"{server.base_url}/detokenize", json={"tokens": ids["tokens"]}, headers=server.headers())
    assert back.json()["prompt"] == text


def test_greedy_is_deterministic_and_streaming_agrees(client, server):
    kwargs = dict(model=server.model, prompt="However little known the feelings", max_tokens=24, temperature=0)
    a = client.completions.create(**kwargs).choices[0].text
    b = client.completions.create(**kwargs).choices[0].text
    assert a == b and a
    chunks = list(client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert streamed == a
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_chat_uses_the_template(client, server):
    messages = [{"role": "user", "content": "Who is Mr. Darcy?"}]
    out = client.chat.completions.create(model=server.model, messages=messages, max_tokens=5, temperature=0)
    count = httpx.post(f"{server.base_url}/tokenize", json={"messages": messages}, headers=server.headers()).json()
    assert out.usage.prompt_tokens == count["count"]
    assert out.choices[0].message.role == "assistant"
    streamed = client.chat.completions.create(model=server.model, messages=messages, max_tokens=5,
                                              temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == out.choices[0].message.content


def test_n_and_seed_reproducibility(client, server):
    kwargs = dict(model=server.model, prompt="the rightful property", max_tokens=12, temperature=1.0, n=2, seed=7)
    first = client.completions.create(**kwargs)
    again = client.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    other = client.completions.create(**{**kwargs, "seed": 8})
    assert [c.text for c in other.choices] != [c.text for c in first.choices]


def test_logprobs_shapes(client, server):
    out = client.completions.create(model=server.model, prompt="a wife", max_tokens=5, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        assert chosen <= 0 and 1 <= len(top) <= 3
        assert chosen == pytest.approx(max(top.values()), abs=1e-4)  # greedy picks the most likely
    chat = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=3, temperature=0, logprobs=True, top_logprobs=2)
    content = chat.choices[0].logprobs.content
    assert len(content) == 3 and all(len(c.top_logprobs) == 2 for c in content)


def test_stop_string_across_tokens(client, server):
    kwargs = dict(model=server.model, prompt="It is a truth", max_tokens=40, temperature=0)
    full = client.completions.create(**kwargs).choices[0].text
    assert len(full) > 12
    stop = full[5:11]  # six characters, very likely spanning a token boundary
    cut = client.completions.create(**kwargs, stop=[stop]).choices[0]
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"
    streamed = client.completions.create(**kwargs, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut.text


def test_echo_scoring_matches_presso_eval(client, server, tiny_llama_dir, sample_text_file, cli):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ids = tok(sample_text_file.read_text(), add_special_tokens=False)["input_ids"][:128]
    out = client.completions.create(model=server.model, prompt=ids, max_tokens=0, echo=True, logprobs=0)
    scored = out.choices[0].logprobs.token_logprobs
    assert scored[0] is None and len(scored) == 128
    api_ppl = math.exp(-sum(scored[1:]) / 127)
    result = cli("eval", "--model", str(tiny_llama_dir), "--text", str(sample_text_file), "--ctx", "128",
                 "--max-tokens", "128", "--json")
    import json

    eval_ppl = json.loads(result.stdout.strip().splitlines()[-1])["perplexity"]
    assert api_ppl == pytest.approx(eval_ppl, rel=0.005)
    assert out.usage.completion_tokens == 0
