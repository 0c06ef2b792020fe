"""presso.server: the online half (engine, paged KV cache, layers, models, HTTP API, metrics).

It reads checkpoints only through presso.compression.checkpoint.
"""

if __name__ != "presso.server":
    # Run from the repo root, `import server` would find this folder; presso must never be a top-level
    # `server` (PyPI's `kernels` is probed by transformers).
    raise ImportError("this folder is the package presso.server; import it as presso.server")

