"""Keep-masks from importance scores: unstructured per output row, or N:M per group of M columns.

score (out, in) fp32, higher = more important -> keep (out, in) bool. Unstructured: exactly
round(ratio * in) weights pruned in every row (Wanda's per-output comparison group; magnitude uses it too,
so both are exact per row). N:M: exactly M - N pruned in every group of M consecutive columns of a row.
Ties break by column index (torch.topk), so a mask is deterministic.
"""

from __future__ import annotations

import torch

from presso.compression.prune.spec import SparsitySpec


def keep_mask(score: torch.Tensor, sparsity: SparsitySpec) -> torch.Tensor:
    """score (out, C) -> keep (out, C) bool."""
    rows, cols = score.shape
    if sparsity.m is not None:
        m = sparsity.m
        assert cols % m == 0, (cols, m)
        groups = score.reshape(rows, cols // m, m)  # (out, C/M, M)
        drop = groups.topk(m - sparsity.n, dim=2, largest=False).indices
        keep = torch.ones_like(groups, dtype=torch.bool).scatter_(2, drop, False)
        return keep.reshape(rows, cols)
    pruned = int(round(sparsity.ratio * cols))
    keep = torch.ones_like(score, dtype=torch.bool)
    if pruned:
        keep.scatter_(1, score.topk(pruned, dim=1, largest=False).indices, False)
    return keep


def check_divisible(name: str, in_features: int, sparsity: SparsitySpec) -> str | None:
    """Why an N:M pattern cannot apply to a layer (None when it can)."""
    if sparsity.m is not None and in_features % sparsity.m:
        return f"layer {name}: in_features {in_features} is not a multiple of M={sparsity.m}"
    return None
