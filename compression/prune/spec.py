"""Sparsity spec of a recipe step: an unstructured ratio in (0, 1) or an N:M pattern such as "2:4".

recipe `sparsity:` value -> SparsitySpec (parsed at the pydantic edge, schema.py) -> mask selection
(masks.py, obs.py). N:M follows NVIDIA's convention: at most N weights are kept in every group of M
consecutive input columns of a row ("2:4" and "4:8" are both 50 % sparse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class SparsitySpec:
    """Unstructured when `m` is None (prune `ratio` of each row); else keep `n` of every `m` columns."""

    ratio: float  # fraction of weights pruned (for N:M: 1 - n/m)
    n: int | None = None
    m: int | None = None

    @property
    def structured(self) -> bool:
        return self.m is not None

    @property
    def label(self) -> str:
        return f"{self.n}:{self.m}" if self.m is not None else f"{self.ratio:g}"

    @property
    def structure(self) -> str:
        """compressed-tensors `sparsity_structure` value ("2:4", "4:8" or "unstructured")."""
        return f"{self.n}:{self.m}" if self.m is not None else "unstructured"


def parse_sparsity(value: float | str) -> SparsitySpec:
    """float in (0, 1) or "N:M" string with 0 < N < M <= 64 -> SparsitySpec; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a ratio in (0, 1) or an 'N:M' string, got {value!r}")
    if isinstance(value, str):
        match = _NM.match(value)
        if match is None:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"expected a ratio in (0, 1) or an 'N:M' string such as '2:4', got {value!r}") \
                    from None
        else:
            n, m = int(match.group(1)), int(match.group(2))
            if not 0 < n < m <= 64:
                raise ValueError(f"N:M needs 0 < N < M <= 64, got {n}:{m}")
            return SparsitySpec(1.0 - n / m, n, m)
    if not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"an unstructured sparsity ratio must lie strictly between 0 and 1, got {value!r}")
    return SparsitySpec(float(value))
