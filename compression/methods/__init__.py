"""presso.compression.methods: weight quantizers by name (`rtn`, `gptq`, `awq`; others register later).

recipe step (method name + params) -> registry entry -> per-Linear QuantizedWeight (integer codes,
scales, zero points) that the checkpoint writer packs in the compressed-tensors format.
"""

from presso.compression.methods.registry import (
    LayerStats,
    Method,
    QuantizedWeight,
    available_methods,
    get_method,
    register_method,
)

__all__ = ["LayerStats", "Method", "QuantizedWeight", "available_methods", "get_method", "register_method"]
