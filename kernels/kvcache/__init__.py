"""KV-cache codecs' numeric ops: int8 per token-head, KIVI-style 2-bit, and residual VQ (RVQ).

`reference.py` is the spec of every bit layout (encode/decode + plain attention over decoded K/V);
`cpu.py` attends over RVQ codes directly (q·k from per-query codebook tables, p·V by accumulating
probabilities per codebook entry, without decoding the cache) and unpacks KIVI-2bit pages by table.
"""

from presso.kernels.kvcache import cpu, reference  # noqa: F401  (registers the ops)
