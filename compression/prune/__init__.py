"""presso.compression.prune: weight pruning as recipe steps (magnitude, Wanda, SparseGPT; unstructured or N:M).

recipe step `sparsity:` -> SparsitySpec (spec.py) -> per Linear a PruneFn registered in the methods
registry (methods.py; SparseGPT's OBS core in obs.py) -> PrunedWeight (weight, keep-mask, optional grid)
-> calibration/sequential.py records it -> sparse checkpoint writer (export.py: compressed-tensors
`sparse-bitmask` / `sparse-24-bitmask` / `dense`) and the eval loader for those files (loader.py).
"""

from presso.compression.prune.spec import SparsitySpec, parse_sparsity
from presso.compression.prune.types import PrunedWeight

__all__ = ["PrunedWeight", "SparsitySpec", "parse_sparsity"]
