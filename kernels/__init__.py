"""presso.kernels: numeric ops, the bottom layer of presso.

Each op family has `reference.py` (readable spec of the bit layout), `cpu.py` (fast torch path) and
`triton.py` (GPU). Nothing here imports presso.server or presso.compression.
"""

if __name__ != "presso.kernels":
    # Run from the repo root, `import kernels` would find this folder; presso must never be a top-level
    # `kernels` (PyPI's `kernels` is probed by transformers).
    raise ImportError("this folder is the package presso.kernels; import it as presso.kernels")

