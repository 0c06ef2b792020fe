"""presso.compression: the offline stage.

HF model dir -> recipes (quantize, prune, AQLM, KV-RVQ) -> checkpoint dir (+ report.json); also the
real data sources (`presso pull`, `presso data pull`) and evaluation (`presso eval`).
It never imports presso.server.
"""

if __name__ != "presso.compression":
    # Run from the repo root, `import compression` would find this folder; presso must never be a top-level
    # `compression` (PyPI's `kernels` is probed by transformers).
    raise ImportError("this folder is the package presso.compression; import it as presso.compression")

