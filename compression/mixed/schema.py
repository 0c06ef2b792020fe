"""The `mixed` section of a recipe (pydantic, the user-input edge): a size target and candidate grids.

    mixed:
      target_bits: 3.5          # average bits per weight over the targeted Linears (scales included)
      # target_size: 60MB       # or: bytes of the whole checkpoint's weight files (MB = 1e6, MiB = 2^20)
      candidates: [2, 3, 4, 8]  # ints: bits at `group_size`; strings: w3 (per channel), w3g64, w4g128
      method: gptq              # the quantizer that runs on the chosen bits (and whose error is measured)
      group_size: 64
      params: {actorder: true}  # the method's params
      samples: 16               # calibration windows used by the sensitivity pass
      error_params: {clip: false}  # cheaper settings for measuring (GPTQ's per-channel clip search is slow)

The allocator (allocate.py) turns this into ordinary recipe steps (expand.py) before calibration.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from presso.compression.methods.grid import GridSpec

_CANDIDATE = re.compile(r"w([2348])(?:g(32|64|128))?")
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(value: str | int) -> int:
    """'60MB' -> 60_000_000, '57.2MiB' -> bytes, 123 -> 123. Raises ValueError naming the value."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(str(value))
    if match is None:
        raise ValueError(f"cannot read size {value!r} (examples: 60MB, 57.5MiB, 60000000)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").lower()])


def candidate_label(spec: GridSpec) -> str:
    return f"w{spec.bits}" + ("" if spec.group_size is None else f"g{spec.group_size}")


class MixedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target_bits: float | None = Field(None, gt=1, le=16)
    target_size: str | int | None = None
    candidates: list[int | str] = Field(default_factory=lambda: [2, 3, 4, 8], min_length=1)
    method: str = "gptq"
    group_size: Literal[32, 64, 128, "channel"] = 64
    symmetric: bool = True
    params: dict[str, Any] = Field(default_factory=dict)
    targets: list[str] | None = None  # None: the recipe steps' default (every Linear)
    ignore: list[str] | None = None  # None: the recipe steps' default (lm_head, embeddings)
    samples: int = Field(16, ge=1, description="calibration windows for the sensitivity pass")
    error_method: str | None = Field(None, description="quantizer whose error is measured (default: method)")
    error_params: dict[str, Any] | None = Field(None, description="its params (default: `params`, same method)")

    @field_validator("candidates")
    @classmethod
    def _candidates_parse(cls, value: list[int | str]) -> list[int | str]:
        for item in value:
            if isinstance(item, int) and item not in (2, 3, 4, 8):
                raise ValueError(f"candidate {item}: bits must be 2, 3, 4 or 8")
            if isinstance(item, str) and _CANDIDATE.fullmatch(item) is None:
                raise ValueError(f"candidate {item!r}: expected bits (2|3|4|8) or w<bits>[g32|g64|g128]")
        return value

    @field_validator("target_size")
    @classmethod
    def _size_parses(cls, value: str | int | None) -> str | int | None:
        if value is not None and parse_size(value) <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("method", "error_method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        from presso.compression.methods.registry import available_methods, get_method

        if value is not None and value not in available_methods():
            raise ValueError(f"unknown method {value!r} (known: {', '.join(available_methods())})")
        if value is not None and get_method(value).codebook:
            raise ValueError(f"method {value} has no integer grid whose bits mixed precision could choose")
        return value

    @model_validator(mode="after")
    def _one_target_and_valid_params(self) -> MixedSpec:
        if (self.target_bits is None) == (self.target_size is None):
            raise ValueError("give exactly one of target_bits and target_size")
        from presso.compression.methods.registry import get_method

        try:
            get_method(self.method).params.model_validate(self.params)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"params.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return self

    def grid_specs(self) -> list[GridSpec]:
        """Candidates as grids, de-duplicated, in the order given."""
        specs: list[GridSpec] = []
        for item in self.candidates:
            if isinstance(item, int):
                group = None if self.group_size == "channel" else self.group_size
                spec = GridSpec(item, group, self.symmetric)
            else:
                match = _CANDIDATE.fullmatch(item)
                assert match is not None  # checked by the validator
                spec = GridSpec(int(match.group(1)), int(match.group(2)) if match.group(2) else None, self.symmetric)
            if spec not in specs:
                specs.append(spec)
        return specs

    def with_target(self, bits: float | None, size: str | None) -> MixedSpec:
        """A copy with the CLI's --target-bits / --target-size replacing the recipe's target."""
        if bits is None and size is None:
            return self
        data = self.model_dump()
        data.update(target_bits=bits, target_size=size)
        return MixedSpec.model_validate(data)
