"""presso.compression.mixed: mixed precision, one bit width per Linear chosen to meet a size target.

recipe `mixed` section (schema.py) -> measured per-Linear sensitivities (sensitivity.py) -> exact byte
accounting (budget.py) -> knapsack allocation (allocate.py) -> ordinary recipe steps (expand.py), which
the usual sequential calibration + quantizer (GPTQ by default) then run. recipes/schema.py imports
schema.py, so this package's import stays free of the recipes package (expand.py is imported by path).
"""

from presso.compression.mixed.allocate import Option, allocate
from presso.compression.mixed.budget import linear_bytes
from presso.compression.mixed.schema import MixedSpec, parse_size

__all__ = ["MixedSpec", "Option", "allocate", "linear_bytes", "parse_size"]
