"""Knowledge-distillation recovery: fine-tune a compressed checkpoint against its dense original.

Only what the checkpoint format stores besides its discrete codes trains (quantization scales / zero
points, AQLM codebooks and scales, norms, kept values of sparse weights), so the result has the same
tensors, shapes, dtypes and size as its source. Entry points: `distill(DistillOptions)` (`presso distill`)
and a recipe's `distill:` block (spec.py, run by compress() through stage.py). Names resolve lazily so
the recipe schema can import spec.py without pulling in torch-heavy modules (and import cycles).
"""

from __future__ import annotations

import importlib

_EXPORTS = {"DistillOptions": "run", "distill": "run", "TrainConfig": "train", "DistillSpec": "spec"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
