"""presso.compression.methods: weight quantizers by name (`rtn`, `gptq`, `awq`, pruning methods, `aqlm`).

recipe step (method name + params) -> registry entry -> per-Linear QuantizedWeight (presso.kernels.quant:
packed integer codes, scales, zero points) that the checkpoint writer exports in the compressed-tensors
format, or an AQLMWeight that compression/aqlm/checkpoint.py writes in AQLM's layout.
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
