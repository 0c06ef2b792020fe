"""Structured outputs through the official `openai` client: response_format json_schema / json_object
(chat, streaming and not), vLLM's guided_regex / guided_grammar, bad grammars as 400s, and 64 concurrent
streams each with its own schema: every output parses and validates."""

from __future__ import annotations

import asyncio
import json
import re

import openai
import pytest


def _schema(i: int) -> dict:
    return {"type": "object", "additionalProperties": False, "required": [f"k{i}", "flag", "n"],
            "properties": {f"k{i}": {"enum": [f"v{i}", "other"]}, "flag": {"type": "boolean"},
                           "n": {"type": "integer", "minimum": 0, "maximum": 99}}}


def _valid(text: str, i: int) -> bool:
    obj = json.loads(text)
    return (set(obj) == {f"k{i}", "flag", "n"} and obj[f"k{i}"] in (f"v{i}", "other")
            and isinstance(obj["flag"], bool) and isinstance(obj["n"], int) and 0 <= obj["n"] <= 99)


def _format(i: int) -> dict:
    return {"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": _schema(i), "strict": True}}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_chat(client, server, stream):
    kwargs = dict(model=server.model, messages=[{"role": "user", "content": "Give me JSON"}], max_tokens=60,
                  temperature=0.9, seed=5, response_format=_format(3))
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs, stream=True)
                       if c.choices)
    else:
        out = client.chat.completions.create(**kwargs)
        text = out.choices[0].message.content
        assert out.choices[0].finish_reason == "stop"
    assert _valid(text, 3), text


def test_json_object_and_regex_and_grammar(client, server):
    out = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "JSON"}],
                                         max_tokens=40, temperature=0, response_format={"type": "json_object"})
    assert isinstance(json.loads(out.choices[0].message.content), dict)
    out = client.completions.create(model=server.model, prompt="Code:", max_tokens=12, temperature=1.0, seed=2,
                                    extra_body={"guided_regex": r"[A-Z]{3}-[0-9]{4}"})
    assert re.fullmatch(r"[A-Z]{3}-[0-9]{4}", out.choices[0].text), out.choices[0].text
    lark = 'start: "yes" | "no" | "maybe"'
    out = client.completions.create(model=server.model, prompt="Answer:", max_tokens=8, temperature=1.0, seed=4,
                                    extra_body={"guided_grammar": lark})
    assert out.choices[0].text in ("yes", "no", "maybe")


@pytest.mark.parametrize("extra,param", [
    ({"guided_regex": "([a-z"}, None),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"guided_regex": "a", "guided_grammar": "start: \"a\""}, "guided_grammar"),
])
def test_bad_constraints_are_400(client, server, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=server.model, prompt="x", max_tokens=4, extra_body=extra)
    if param:
        assert err.value.body["param"] == param


def test_64_concurrent_streams_each_with_its_own_schema(server):
    async def one(client, i):
        stream = await client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": f"item {i}"}], max_tokens=60,
            temperature=1.0, seed=i, response_format=_format(i), stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main():
        client = openai.AsyncOpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=300)
        try:
            return await asyncio.gather(*[one(client, i) for i in range(64)])
        finally:
            await client.close()

    texts = asyncio.run(main())
    bad = [(i, t) for i, t in enumerate(texts) if not _valid(t, i)]
    assert not bad, bad[:3]
