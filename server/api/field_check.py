"""Checks on a raw request body before the pydantic models parse it.

OpenAI fields presso does not implement are refused with a 400 naming them (UNSUPPORTED), never silently
ignored; other unknown fields (vendor extensions) are ignored and logged once per name. Strings with lone
UTF-16 surrogates (e.g. "\\ud800") are refused: no tokenizer can encode them.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

log = logging.getLogger(__name__)

# OpenAI request fields presso does not implement -> the values that mean "not used" (accepted)
UNSUPPORTED: dict[str, tuple] = {
    "functions": (None, []), "function_call": (None, "none"),  # the deprecated names of tools/tool_choice
    "best_of": (None, 1), "suffix": (None, ""), "prediction": (None,), "audio": (None,),
    "modalities": (None, ["text"]), "reasoning_effort": (None,), "web_search_options": (None,),
    "store": (None, False),
}
KNOWN_IGNORED = {"user", "metadata", "service_tier", "stream_options", "safety_identifier", "prompt_cache_key"}
_logged: set[str] = set()


def _surrogate_path(value: Any, path: str) -> str | None:
    """The first field path holding a string with a lone surrogate, or None."""
    if isinstance(value, str):
        return path if any(0xD800 <= ord(c) <= 0xDFFF for c in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _surrogate_path(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def check_fields(data: Any, model: type[BaseModel]) -> Any:
    """Refuse unsupported OpenAI fields and lone surrogates; log unknown extensions once."""
    if not isinstance(data, dict):
        return data
    where = _surrogate_path(data, "")
    if where:
        raise ValueError(f"{where.split('.')[0]}: {where} contains a lone UTF-16 surrogate (invalid Unicode)")
    for name, value in data.items():
        if name in UNSUPPORTED and value not in UNSUPPORTED[name]:
            raise ValueError(f"{name}: presso does not support `{name}` (got {value!r}); remove it")
        if name not in model.model_fields and name not in UNSUPPORTED and name not in KNOWN_IGNORED \
                and name not in _logged:
            _logged.add(name)
            log.warning("ignoring request field %r (not an OpenAI field presso knows)", name)
    return data
