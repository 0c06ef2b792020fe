"""Weight-only integer matmul (`wq_linear`): reference spec, fast CPU (torch packed int8/int4), Triton."""

from presso.kernels.quant import cpu, reference  # noqa: F401  (registers the backends)
from presso.kernels.quant.types import QuantizedWeight

try:  # the GPU backend registers only where triton imports
    from presso.kernels.quant import triton as _triton  # noqa: F401
except ImportError:
    pass

__all__ = ["QuantizedWeight"]
