"""Pydantic schema of a quantization recipe: an ordered list of steps (the user-input edge).

A step names a method (`rtn`, `gptq`, `awq`, ...), which Linears it targets and ignores, the integer grid
(bits, group size, symmetry, what to do when a group does not divide a layer's in-features) and the
method's own params (validated later against the method's schema, see load.py). Example:

    format_version: 1
    steps:
      - method: gptq
        targets: ["re:.*layers\\..*_proj"]   # `re:` regex (full match), glob, exact name or class name
        ignore: [lm_head]
        bits: 4
        group_size: 64                       # 32 | 64 | 128 | channel
        symmetric: true
        group_fallback: error                # error | largest-divisor | channel
        params: {damp: 0.01, actorder: true}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_IGNORE = ["lm_head", "re:.*embed_tokens", "re:.*wte", "re:.*wpe"]
GROUP_SIZES = (32, 64, 128)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(description="registered method name (rtn, gptq, awq, ...)")
    targets: list[str] = Field(default_factory=lambda: ["Linear"], min_length=1)
    ignore: list[str] = Field(default_factory=lambda: list(DEFAULT_IGNORE))
    bits: Literal[2, 3, 4, 8]
    group_size: Literal[32, 64, 128, "channel"] = "channel"
    symmetric: bool = True
    group_fallback: Literal["error", "largest-divisor", "channel"] = "error"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from presso.compression.methods.registry import available_methods

        if value not in available_methods():
            raise ValueError(f"unknown method {value!r} (known: {', '.join(available_methods())})")
        return value

    @field_validator("targets", "ignore")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip():
                raise ValueError("empty module pattern")
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return value


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = 1
    name: str | None = None
    steps: list[Step] = Field(min_length=1)
