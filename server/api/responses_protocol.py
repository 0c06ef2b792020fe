"""The /v1/responses request body and its translation to a chat request (the one generation path).

input (a string, or message / function_call / function_call_output items) + instructions -> chat
messages; flat function tools -> chat tools; text.format -> response_format; max_output_tokens ->
max_completion_tokens. Fields of the Responses API presso cannot honour (previous_response_id, stored
conversations, built-in tools, reasoning) are refused with a 400 naming them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from presso.server.api.field_check import check_fields
from presso.server.api.protocol import ChatCompletionRequest

UNSUPPORTED = {"previous_response_id": (None,), "conversation": (None,), "reasoning": (None,),
               "background": (None, False), "include": (None, []), "prompt": (None,), "store": (None, False)}


class InputText(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["input_text", "output_text", "text"]
    text: str


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[InputText]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class FunctionCallItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = "{}"


class FunctionOutputItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call_output"]
    call_id: str
    output: str


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = "response"
    schema_: dict | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: TextFormat = Field(default_factory=TextFormat)


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    input: str | list[MessageItem | FunctionCallItem | FunctionOutputItem]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    stream: bool = False
    tools: list[FunctionTool] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool = True
    text: TextConfig | None = None
    metadata: dict | None = None
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data):
        if isinstance(data, dict):
            for name, allowed in UNSUPPORTED.items():
                if name in data and data[name] not in allowed:
                    raise ValueError(f"{name}: presso does not support `{name}` in /v1/responses; remove it")
        return check_fields(data, cls)

    def to_chat(self) -> ChatCompletionRequest:
        """The same request as /v1/chat/completions sees it (validated there too)."""
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        items = [MessageItem(role="user", content=self.input)] if isinstance(self.input, str) else self.input
        for item in items:
            if isinstance(item, MessageItem):
                messages.append({"role": item.role, "content": item.text()})
            elif isinstance(item, FunctionCallItem):
                call = {"id": item.call_id, "type": "function",
                        "function": {"name": item.name, "arguments": item.arguments}}
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            else:
                messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
        body: dict = {"model": self.model, "messages": messages, "temperature": self.temperature,
                      "top_p": self.top_p, "max_completion_tokens": self.max_output_tokens,
                      "parallel_tool_calls": self.parallel_tool_calls}
        if self.tools:
            body["tools"] = [{"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
                             for t in self.tools]
        choice = self.tool_choice
        if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
            choice = {"type": "function", "function": {"name": choice["name"]}}  # flat in the Responses API
        if choice is not None:
            body["tool_choice"] = choice
        fmt = self.text.format if self.text else None
        if fmt is not None and fmt.type == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt is not None and fmt.type == "json_schema":
            if fmt.schema_ is None:
                raise ValueError("text: format json_schema needs a schema")
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.schema_}}
        return ChatCompletionRequest.model_validate(body)
