"""KV-cache codecs' numeric ops: int8 per token-head, KIVI-style 2-bit, and residual VQ (RVQ).

`reference.py` is the spec of every bit layout (encode/decode + plain attention over decoded K/V);
`cpu.py` attends over RVQ codes directly (q·k from per-query codebook tables, p·V by accumulating
probabilities per codebook entry, without decoding the cache) and unpacks KIVI-2bit pages by table.
`triton_scalar.py` (int8, KIVI) and `triton_rvq.py` (RVQ encode/decode/attend over codes) are the GPU
kernels; the codecs pick a backend by their pages' device through presso.kernels.registry.
"""

from presso.kernels.kvcache import cpu, reference  # noqa: F401  (registers the ops)

try:  # the GPU backends register only where triton imports
    from presso.kernels.kvcache import triton_rvq as _triton_rvq  # noqa: F401
    from presso.kernels.kvcache import triton_scalar as _triton_scalar  # noqa: F401
except ImportError:
    pass
