"""/v1/responses through the official `openai` client (`client.responses.create`): text in and out,
instructions, the token budget as status incomplete, streaming events, structured output, function tools
(forced), a call's output sent back as an input item, and the fields presso refuses."""

from __future__ import annotations

import json

import openai
import pytest


def test_text_response_and_usage(client, server):
    r = client.responses.create(model=server.model, input="It is a truth universally", max_output_tokens=6,
                                temperature=0, instructions="Continue the sentence.")
    assert r.object == "response" and r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output[0].type == "message" and r.output_text == r.output[0].content[0].text and r.output_text
    assert r.usage.output_tokens == 6 and r.usage.total_tokens == r.usage.input_tokens + 6
    chat = client.chat.completions.create(model=server.model, max_tokens=6, temperature=0, messages=[
        {"role": "system", "content": "Continue the sentence."}, {"role": "user", "content": "It is a truth universally"}])
    assert chat.choices[0].message.content == r.output_text  # the same prompt and decoding as chat


def test_streaming_events(client, server):
    kwargs = dict(model=server.model, input=[{"role": "user", "content": "Hello there"}], max_output_tokens=8,
                  temperature=0)
    plain = client.responses.create(**kwargs)
    events = list(client.responses.create(**kwargs, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == plain.output_text
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text and events[-1].response.usage.output_tokens == 8


def test_structured_output_and_function_call_round_trip(client, server):
    schema = {"type": "object", "additionalProperties": False, "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    r = client.responses.create(model=server.model, input="JSON please", max_output_tokens=40, temperature=0.7,
                                text={"format": {"type": "json_schema", "name": "flag", "schema": schema}})
    assert set(json.loads(r.output_text)) == {"ok"}
    tool = {"type": "function", "name": "lookup", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["q"], "properties": {"q": {"enum": ["a", "b"]}}}}
    r = client.responses.create(model=server.model, input="Look it up", tools=[tool], max_output_tokens=120,
                                temperature=0.7, tool_choice={"type": "function", "name": "lookup"})
    call = r.output[0]
    assert call.type == "function_call" and call.name == "lookup" and json.loads(call.arguments)["q"] in ("a", "b")
    follow = client.responses.create(model=server.model, tools=[tool], max_output_tokens=5, temperature=0, input=[
        {"role": "user", "content": "Look it up"},
        {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "the answer is 42"}])
    assert follow.output[0].type == "message" and follow.usage.input_tokens > r.usage.input_tokens


@pytest.mark.parametrize("extra,param", [({"previous_response_id": "resp_1"}, "previous_response_id"),
                                         ({"reasoning": {"effort": "high"}}, "reasoning")])
def test_unsupported_fields_are_400(client, server, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=server.model, input="x", max_output_tokens=2, extra_body=extra)
    assert err.value.body["param"] == param
