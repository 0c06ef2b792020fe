"""Tool calling for /v1/chat/completions: render tools and tool turns into the prompt, constrain
`tool_choice` required/named with a grammar, parse the model's calls back out (a parser registry).

Rendering: the tokenizer's chat template gets `tools=` (JSON schemas) and the turns; a template that does
not render tools (SmolLM2's does not) gets the Hermes convention instead: a system message listing the
tools and asking for `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, earlier assistant calls
written back in that form and tool results as `<tool_response>` turns. Output: TOOL_PARSERS[name](text)
-> (content or None, [(function name, arguments JSON)]); finish_reason becomes "tool_calls" when any call
was parsed. `required` and a named choice are enforced with a Lark grammar whose calls embed each tool's
parameter schema (%json), so the output always parses.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from presso.server.api.protocol import ChatCompletionRequest, ChatMessage
from presso.server.api.tool_protocol import NamedToolChoice

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_COMPACT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
HERMES_SYSTEM = (  # Hermes' convention, short: a small model's context is small
    "You may call these tools (JSON schemas): <tools>{tools}</tools>\n"
    'To call one, answer <tool_call>{{"name": <tool name>, "arguments": <arguments object>}}</tool_call> '
    "(one block per call)."
)


def _tool_schemas(body: ChatCompletionRequest) -> list[dict]:
    return [{"type": "function", "function": t.function.model_dump(exclude_none=True)} for t in body.tools or ()]


def _call_text(name: str, arguments: str) -> str:
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        args = arguments
    return f"{OPEN}{json.dumps({'name': name, 'arguments': args})}{CLOSE}"


def template_messages(tokenizer, body: ChatCompletionRequest) -> tuple[list[dict], list[dict] | None]:
    """(messages for apply_chat_template, tools= argument or None)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    native = "tools" in template and "tool_calls" in template
    use_tools = body.tools_active()
    out: list[dict] = []
    for m in body.messages:
        out.append(_message(m, native))
    if use_tools and not native:
        system = HERMES_SYSTEM.format(tools=json.dumps(_tool_schemas(body), separators=(",", ":")))
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{system}"}
        else:
            out.insert(0, {"role": "system", "content": system})
    return out, (_tool_schemas(body) if use_tools and native else None)


def _message(m: ChatMessage, native: bool) -> dict:
    if m.role == "assistant" and m.tool_calls:
        if native:
            calls = [{"type": "function", "id": c.id, "function": {"name": c.function.name,
                      "arguments": json.loads(c.function.arguments or "{}")}} for c in m.tool_calls]
            return {"role": "assistant", "content": m.text(), "tool_calls": calls}
        text = "\n".join(_call_text(c.function.name, c.function.arguments) for c in m.tool_calls)
        return {"role": "assistant", "content": (m.text() + "\n" if m.text() else "") + text}
    if m.role == "tool" and not native:
        return {"role": "user", "content": f"<tool_response>\n{m.text()}\n</tool_response>"}
    out = {"role": m.role, "content": m.text()}
    if m.role == "tool" and m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def tool_guide(body: ChatCompletionRequest) -> tuple[str, str] | None:
    """A Lark grammar forcing tool calls for tool_choice `required` or a named function; else None."""
    choice = body.tool_choice
    if not body.tools or choice in (None, "none", "auto"):
        return None
    tools = [t.function for t in body.tools]
    if isinstance(choice, NamedToolChoice):
        tools = [f for f in tools if f.name == choice.function.name]
    variants = [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                 "properties": {"name": {"const": f.name}, "arguments": f.parameters}} for f in tools]
    schema = variants[0] if len(variants) == 1 else {"anyOf": variants}
    schema = {**schema, "x-guidance": _COMPACT}
    repeat = ' ("\\n" call)*' if body.parallel_tool_calls and not isinstance(choice, NamedToolChoice) else ""
    lark = f'start: call{repeat}\ncall: "{OPEN}" %json {json.dumps(schema)} "{CLOSE}"\n'
    return ("grammar", lark)


_HERMES = re.compile(re.escape(OPEN) + r"\s*(.*?)\s*" + re.escape(CLOSE), re.DOTALL)


def parse_hermes(text: str) -> tuple[str | None, list[tuple[str, str]]]:
    """Calls in <tool_call>{"name": ..., "arguments": ...}</tool_call> blocks; the rest is content."""
    calls, kept, last = [], [], 0
    for match in _HERMES.finditer(text):
        try:
            obj = json.loads(match.group(1))
            name, args = obj["name"], obj.get("arguments", {})
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # not a call: stays content
        calls.append((str(name), args if isinstance(args, str) else json.dumps(args)))
        kept.append(text[last:match.start()])
        last = match.end()
    if not calls:
        return text, []
    content = ("".join(kept) + text[last:]).strip()
    return content or None, calls


TOOL_PARSERS: dict[str, Callable[[str], tuple[str | None, list[tuple[str, str]]]]] = {"hermes": parse_hermes}


def tool_calls_json(calls: list[tuple[str, str]]) -> list[dict]:
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": name, "arguments": args}} for name, args in calls]


def safe_prefix(text: str) -> int:
    """How much of streamed `text` can go out as content now: everything before a (possibly partial)
    opening tag; the rest waits for the end of the choice."""
    start = text.find(OPEN)
    if start >= 0:
        return start
    for k in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-k:]):
            return len(text) - k
    return len(text)
