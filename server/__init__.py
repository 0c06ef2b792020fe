"""presso.server: the online half (engine, paged KV cache, layers, models, HTTP API, metrics).

It reads checkpoints only through presso.compression.checkpoint.
"""

if __name__ != "presso.server":
    # Run from the repo root, `import server` would find this folder; presso must never be a top-level
    # `server` (PyPI's `kernels` is probed by transformers).
    raise ImportError("this folder is the package presso.server; import it as presso.server")


_EXPORTS = {
    "AsyncEngine": "presso.server.engine.async_engine", "EngineConfig": "presso.server.engine.config",
    "LLM": "presso.server.engine.llm", "Completion": "presso.server.engine.llm",
    "EngineStats": "presso.server.engine.types", "RequestDelta": "presso.server.engine.types",
    "SamplingParams": "presso.server.engine.types", "TokenLogprob": "presso.server.engine.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Lazy exports: `presso` CLI commands that never serve do not pay for importing torch."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'presso.server' has no attribute {name!r}")
