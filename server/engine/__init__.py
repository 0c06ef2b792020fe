"""The engine: scheduler (pure Python), model runner + sampler, EngineCore, AsyncEngine, offline LLM.

The public Python API: `from presso.server.engine import LLM, SamplingParams`. The exports are lazy, so
`presso` CLI commands that never serve do not pay for importing torch.
"""

_EXPORTS = {
    "AsyncEngine": "presso.server.engine.async_engine", "EngineConfig": "presso.server.engine.config",
    "LLM": "presso.server.engine.llm", "Completion": "presso.server.engine.llm",
    "EngineStats": "presso.server.engine.types", "RequestDelta": "presso.server.engine.types",
    "SamplingParams": "presso.server.engine.types", "TokenLogprob": "presso.server.engine.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'presso.server.engine' has no attribute {name!r}")
