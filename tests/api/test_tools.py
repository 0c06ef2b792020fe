"""Tool calling through the official `openai` client: forced (named, required) calls parse and match the
tool's schema, streaming delivers them as tool_calls deltas, assistant calls and tool results round-trip
into the prompt, and the Hermes parser reads calls out of free text."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import build_tiny_model
from live_server import start_server

from presso.server.api.tools import parse_hermes, safe_prefix

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                   "properties": {"city": {"enum": ["Paris", "Lima"]}, "unit": {"enum": ["C", "F"]}}}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "additionalProperties": False, "required": ["tz"],
                                        "properties": {"tz": {"enum": ["UTC", "CET"]}}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The tiny model with a 2048-token context: tool schemas make long prompts for its 384-token vocabulary."""
    model = build_tiny_model(tmp_path_factory.mktemp("tools-model"), "llama", max_positions=2048)
    live = start_server(model, tmp_path_factory.mktemp("tools-srv"), "--kv-cache-memory", "64MiB")
    yield live
    live.stop()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.v1, api_key="none", max_retries=0, timeout=120)


def _check_weather(call):
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    assert args["city"] in ("Paris", "Lima") and args["unit"] in ("C", "F")


def test_named_tool_choice_forces_a_valid_call(client, server):
    out = client.chat.completions.create(model=server.model, messages=ASK, tools=[WEATHER, CLOCK], max_tokens=200,
                                         temperature=0.8, seed=1,
                                         tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    _check_weather(choice.message.tool_calls[0])


def test_required_single_call_and_streaming(client, server):
    kwargs = dict(model=server.model, messages=ASK, tools=[WEATHER, CLOCK], max_tokens=200, temperature=0.8,
                  seed=2, tool_choice="required", parallel_tool_calls=False)
    out = client.chat.completions.create(**kwargs)
    calls = out.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name in ("get_weather", "get_time")
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    streamed = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert len(streamed) == 1 and streamed[0].function.name == calls[0].function.name
    assert json.loads(streamed[0].function.arguments) == json.loads(calls[0].function.arguments)
    assert not any(d.content for d in deltas)  # the call's text is not leaked as content


def test_tool_turns_round_trip_and_none_means_text(client, server):
    base = client.chat.completions.create(model=server.model, messages=ASK, tools=[WEATHER], tool_choice="none",
                                          max_tokens=5, temperature=0)
    assert base.choices[0].message.tool_calls is None and base.choices[0].finish_reason in ("length", "stop")
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": '{"city": "Paris", "unit": "C"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"},
    ]
    out = client.chat.completions.create(model=server.model, messages=history, tools=[WEATHER], tool_choice="none",
                                         max_tokens=5, temperature=0)
    assert out.usage.prompt_tokens > base.usage.prompt_tokens + 10  # the call and its result are in the prompt


@pytest.mark.parametrize("kwargs,param", [
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
])
def test_bad_tool_requests_are_400(client, server, kwargs, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=server.model, messages=ASK, max_tokens=4, **kwargs)
    assert err.value.body["param"] == param


def test_hermes_parser_and_stream_holdback():
    text = 'Sure.\n<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>\n<tool_call>{bad}</tool_call>'
    content, calls = parse_hermes(text)
    assert calls == [("f", '{"x": 1}')] and content == "Sure.\n\n<tool_call>{bad}</tool_call>"
    assert parse_hermes("no calls here") == ("no calls here", [])
    assert safe_prefix("Hello <tool") == len("Hello ") and safe_prefix("a <tool_call>{") == 2
    assert safe_prefix("plain") == 5
