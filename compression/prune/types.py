"""What a pruning step produces for one Linear: the final weight, its keep-mask, and any integer grid.

PruneFn(linear, stats, sparsity, grid, params) -> PrunedWeight, where `grid` is None (prune only), a
GridSpec (joint prune + quantize: the method fits the grid), or the QuantizedWeight of an earlier
quantize step (quantize -> prune: kept weights must stay on that fixed grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.compression.methods.grid import GridSpec, spec_of, to_weight, zero_of
from presso.compression.methods.registry import QuantizedWeight

Grid = GridSpec | QuantizedWeight | None


@dataclass(frozen=True, slots=True)
class PrunedWeight:
    weight: torch.Tensor  # (out, in) fp32, exactly 0 where pruned (the dequantized values when quantized)
    keep: torch.Tensor  # (out, in) bool, False = pruned
    quantized: QuantizedWeight | None  # codes == zero point where pruned (dequantize to exact 0)

    @property
    def sparsity(self) -> float:
        return 1.0 - float(self.keep.float().mean())


def mask_codes(qw: QuantizedWeight, keep: torch.Tensor) -> QuantizedWeight:
    """Set pruned codes to their group's zero point (w_hat = 0 exactly); kept codes are unchanged."""
    assert qw.g_idx is None, "contiguous groups only"
    spec, zero = spec_of(qw), zero_of(qw)  # zero (out, G) int8
    full = zero.repeat_interleave(spec.width(qw.in_features), 1)  # (out, in)
    return to_weight(torch.where(keep, qw.codes, full), qw.scale, zero, spec)


def without_update(w: torch.Tensor, keep: torch.Tensor, grid: Grid) -> PrunedWeight:
    """Prune by mask only (magnitude, Wanda, or any method without a weight update)."""
    if grid is None:
        return PrunedWeight(w * keep, keep, None)
    assert isinstance(grid, QuantizedWeight), "a method without weight update cannot fit a grid"
    qw = mask_codes(grid, keep)
    return PrunedWeight(qw.dequantize(), keep, qw)
