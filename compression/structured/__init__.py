"""presso.compression.structured: remove whole attention heads and MLP channels (smaller matmuls).

recipe `structured:` block (spec.py) -> per-layer budget of heads / channels -> sequential calibration pass
scoring and removing them, with least-squares compensation (select.py, shrink.py, prune.py) -> a smaller
dense Llama that later recipe steps quantize or prune further; the HF config stays valid.
Only spec.py is re-exported here: the recipe schema imports it, and prune.py imports the calibration
package, which imports the recipes (import prune_structured from presso.compression.structured.prune).
"""

from presso.compression.structured.spec import Budget, Structured, structured_budget

__all__ = ["Budget", "Structured", "structured_budget"]
